"""A pass rides out a short outage: real servers stopped and started mid-pass.

A worker stops the server while it holds an item, so the outage begins with
an item in hand, and a thread starts the server again a few seconds later.
The pass must finish with every item processed and none lost. Whatever the
test does, the server is started again in a ``finally`` and waited for.

These tests take a shared server away from every other test running at the
time: run them alone. Redis is stopped with ``SHUTDOWN SAVE`` (not
``NOSAVE``), since the CI server keeps no other copy of its data and a
restart would otherwise empty every queue on it; the dump is removed once
the server is back, so that no later restart brings stale keys back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bridge

from conftest import spec_for

pytestmark = [pytest.mark.usefixtures("empty_registry"), pytest.mark.exclusive]

REDIS_DIR = Path("/var/lib/redis")
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    str(REDIS_DIR),
    "--logfile",
    "/var/log/redis/ci.log",
]


def _run(*command: str) -> bool:
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    return done.returncode == 0


def _postgres(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, "-m", "fast")


def _postgres_stop() -> None:
    _postgres("stop")


def _postgres_start() -> None:
    _postgres("start")


def _postgres_answers() -> bool:
    return _run("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432")


def _redis_stop() -> None:
    _run("redis-cli", "shutdown", "save")


def _redis_start() -> None:
    _run(*REDIS_START)


def _redis_answers() -> bool:
    done = subprocess.run(["redis-cli", "ping"], capture_output=True, timeout=30, check=False)
    if done.stdout.strip() != b"PONG":
        return False
    with contextlib.suppress(FileNotFoundError):
        (REDIS_DIR / "dump.rdb").unlink()
    return True


def _rabbitmq_stop() -> None:
    _run("rabbitmqctl", "stop_app")


def _rabbitmq_start() -> None:
    _run("rabbitmqctl", "start_app")


def _rabbitmq_answers() -> bool:
    return _run("rabbitmqctl", "await_startup", "--timeout", "5")


SERVERS: dict[str, tuple[Callable[[], None], Callable[[], None], Callable[[], bool]]] = {
    "postgres": (_postgres_stop, _postgres_start, _postgres_answers),
    "redis": (_redis_stop, _redis_start, _redis_answers),
    "rabbitmq": (_rabbitmq_stop, _rabbitmq_start, _rabbitmq_answers),
}


class Outage:
    """Stops one real server on :meth:`begin`; a thread starts it ``down_for`` s later."""

    def __init__(self, kind: str, down_for: float | None) -> None:
        self.stop, self.start, self.answers = SERVERS[kind]
        self.down_for = down_for
        self.began: float | None = None
        self.stopping_took = 0.0
        self.back: float | None = None
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        asked = time.monotonic()
        self.stop()
        self.began = time.monotonic()
        self.stopping_took = self.began - asked
        if self.down_for is not None:
            self._thread = threading.Thread(target=self._restart, daemon=True)
            self._thread.start()

    def _restart(self) -> None:
        assert self.began is not None
        time.sleep(max(0.0, self.began + (self.down_for or 0) - time.monotonic()))
        self.start()
        self.back = time.monotonic()

    def end(self) -> None:
        """Make sure the server runs and answers, whatever happened."""
        if self._thread is not None:
            self._thread.join(timeout=120)
        deadline = time.monotonic() + 120
        if not self.answers():
            self.start()
        while not self.answers():
            assert time.monotonic() < deadline, "the server did not come back"
            time.sleep(0.5)


def ride_outs(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The seconds the pass waited for the store, as its log says."""
    found = [re.search(r"answered again after ([\d.]+) s", r.getMessage()) for r in caplog.records]
    return [float(m[1]) for m in found if m]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", marks=pytest.mark.service("postgres")),
        pytest.param("redis", marks=pytest.mark.service("redis")),
        pytest.param("rabbitmq", marks=pytest.mark.service("rabbitmq")),
    ],
)
def test_a_pass_rides_out_a_server_restart_and_loses_nothing(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    name = f"outage_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    items = [f"i{n}" for n in range(12)]
    queue.create_items(items)
    seen: list[str] = []
    outage = Outage(kind, down_for=4.0)

    @bridge.queue_worker(name, lease_time=120)
    def work(data: str) -> None:
        seen.append(data)
        if len(seen) == 5:
            outage.begin()

    try:
        with caplog.at_level(logging.WARNING, logger="bridge"):
            summary = bridge.process_queue(name, factory=factory, outage_tolerance=60)
    finally:
        outage.end()
    try:
        print(
            f"\n{kind}: stopping took {outage.stopping_took:.2f} s, down {outage.down_for} s "
            f"more; the pass waited {ride_outs(caplog)} s; {summary}"
        )
        assert summary.stopped_by == "empty", summary.error
        assert set(seen) == set(items), "every item was processed"
        assert queue.number_of_items() == 0, "and none is left"
        repeats = len(seen) - len(set(seen))
        assert summary.processed == 12, "each item deleted once"
        if queue.capabilities.crash_recovery == "lease":
            assert (repeats, summary.lost) == (0, 0)
        else:
            # The broker hands back what a lost connection held: the item in
            # hand comes again, and our delete finds its claim gone.
            assert repeats == summary.lost <= 1
        assert summary.elapsed >= 4.0
        assert ride_outs(caplog), "the pass said it waited"
    finally:
        queue.delete_queue()
        factory.close()


@pytest.mark.service("redis")
def test_an_outage_past_the_lease_of_the_item_in_hand_stops_the_pass_at_that_lease(
    tmp_path: Path,
) -> None:
    factory = bridge.QueueFactory(default=spec_for("redis", tmp_path))
    name = f"outage_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    queue.create_items(["first", "second"])
    outage = Outage("redis", down_for=None)
    lease = 3.0

    @bridge.queue_worker(name, lease_time=lease)
    def work(data: str) -> None:
        outage.begin()

    started = time.monotonic()
    try:
        summary = bridge.process_queue(name, factory=factory, outage_tolerance=60)
        took = time.monotonic() - started
    finally:
        outage.end()
    try:
        assert summary.stopped_by == "backend unavailable"
        assert summary.processed == 0
        assert summary.error is not None
        assert "could not delete an item" in summary.error
        assert "comes back when its lease ends" in summary.error
        assert took < lease + 2.0, "bounded by the lease, not by the 60 s tolerance"
        # Nothing lost: the item in hand comes back once its lease ends.
        assert queue.number_of_items() == 2
        time.sleep(max(0.0, started + lease + 0.5 - time.monotonic()))
        claimed = queue.claim_items(2, lease_time=5)
        assert sorted(i.data for i in claimed) == ["first", "second"]
        assert {i.data: i.attempts for i in claimed}["first"] == 2
    finally:
        queue.delete_queue()
        factory.close()


# --- bounds, on a store that is not there at all (no server is disturbed) -----------

NOWHERE = "redis://127.0.0.1:1/0"
"""A port nothing listens on: every round trip fails at once, as in an outage."""


def _nowhere(name: str, **extra: Any) -> bridge.QueueFactory:
    return bridge.QueueFactory(default="memory://", queues={name: NOWHERE, **extra})


def test_without_an_item_in_hand_a_pass_waits_for_the_tolerance_then_stops() -> None:
    name = f"gone_{uuid.uuid4().hex[:8]}"
    factory = _nowhere(name)
    calls: list[str] = []
    bridge.queue_worker(name)(calls.append)

    started = time.monotonic()
    summary = bridge.process_queue(name, factory=factory, outage_tolerance=1.5)
    took = time.monotonic() - started

    assert summary.stopped_by == "backend unavailable"
    assert 1.5 <= took < 4.0
    assert summary.error is not None
    assert "redis://127.0.0.1:1/0" in summary.error
    assert calls == []

    started = time.monotonic()
    summary = bridge.process_queue(name, factory=factory, outage_tolerance=0)
    assert summary.stopped_by == "backend unavailable"
    assert time.monotonic() - started < 1.0, "0 retries nothing"


def test_cron_skips_the_queues_of_an_unavailable_store_and_runs_the_others() -> None:
    gone, also_gone, fine = (f"{p}_{uuid.uuid4().hex[:8]}" for p in ("gone", "gone2", "fine"))
    factory = _nowhere(gone, **{also_gone: NOWHERE})
    factory.get(fine).create_item("x")
    calls: list[str] = []
    for name in (gone, also_gone, fine):
        bridge.queue_worker(name, cron_time=5)(calls.append)

    started = time.monotonic()
    summaries = bridge.run_cron(factory=factory, outage_tolerance=1.0)
    took = time.monotonic() - started

    by_queue = {s.queue: s for s in summaries}
    assert by_queue[gone].stopped_by == "backend unavailable"
    assert by_queue[also_gone].stopped_by == "backend unavailable"
    assert by_queue[also_gone].error == by_queue[gone].error
    assert (by_queue[fine].processed, by_queue[fine].stopped_by) == (1, "empty")
    assert calls == ["x"]
    assert took < 3.0, "the store is waited for once, not once per queue"
