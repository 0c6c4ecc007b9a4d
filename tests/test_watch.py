"""``bridge queue watch`` as a real subprocess on SQLite, PostgreSQL, Redis, RabbitMQ and
beanstalkd (and Gearman, for its wake-up).

The watcher runs ``tests/watch_workers.py``'s workers, which log when each
item starts; the test creates items through the facade, reads that log and
the queue's counts, and signals the process as an operator would. Each test
is bounded (a few seconds; every wait has a deadline).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge.queue import Queue

from children import claim_within
from conftest import BACKENDS, spec_for

KINDS = [
    param
    for param in BACKENDS
    if param.values[0] in ("sqlite", "postgres", "redis", "rabbitmq", "beanstalk")
]
WAKING = [
    param
    for param in BACKENDS
    if param.values[0] in ("postgres", "redis", "rabbitmq", "beanstalk", "gearman")
]
"""The stores that wake a waiting watcher (the ``Waiting`` role) instead of letting it sleep."""
PARKING = [param for param in BACKENDS if param.values[0] in ("rabbitmq", "beanstalk")]
"""The stores whose wait receives the item and parks it for the claim that follows."""
BRIDGE = str(Path(sys.executable).parent / "bridge")
TESTS = str(Path(__file__).parent)
PICK_UP = {"sqlite": 1.0, "postgres": 1.0, "redis": 1.0, "rabbitmq": 1.0, "beanstalk": 1.0}
"""The slowest pick-up allowed (create to worker start), seconds: SQLite sleeps
0.25 s between claims; the others are woken in milliseconds."""


@dataclass
class Started:
    pid: int
    at: float
    item_id: str
    data: Any


class Watch:
    """One ``bridge queue watch`` subprocess and the log its workers write."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.prefix = f"w{uuid.uuid4().hex[:8]}"
        self.log = tmp_path / "started.log"
        self.log.touch()
        spec = spec_for(kind, tmp_path)
        self.env = {
            **os.environ,
            "WATCH_TEST_SPEC": json.dumps(spec),
            "WATCH_TEST_LOG": str(self.log),
            "WATCH_TEST_PREFIX": self.prefix,
            "PYTHONPATH": TESTS,
        }
        self.factory = bridge.QueueFactory(default=spec)
        self.process: subprocess.Popen[str] | None = None
        for queue in (self.a, self.b):
            queue.delete_queue()

    @property
    def a(self) -> Queue:
        return self.factory.get(f"{self.prefix}_a")

    @property
    def b(self) -> Queue:
        return self.factory.get(f"{self.prefix}_b")

    def command(self, *names: str, concurrency: int = 1) -> list[str]:
        args = ["--import", "watch_workers", "queue", "watch", *names]
        return [BRIDGE, *args, "--concurrency", str(concurrency)]

    def start(self, *names: str, concurrency: int = 1) -> None:
        names = names or (self.a.name,)
        self.process = subprocess.Popen(
            self.command(*names, concurrency=concurrency),
            env=self.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        first = self.process.stderr.readline()
        assert first.startswith("Watching"), first
        # The watcher subscribes at its first wait, right after its first pass.
        time.sleep(0.5)

    def started(self) -> list[Started]:
        lines = self.log.read_text().splitlines()
        found = []
        for line in lines:
            pid, at, item_id, data = line.split(" ", 3)
            found.append(Started(int(pid), float(at), item_id, json.loads(data)))
        return found

    def wait_started(self, count: int, within: float = 10.0) -> list[Started]:
        deadline = time.monotonic() + within
        while len(found := self.started()) < count:
            assert time.monotonic() < deadline, f"{len(found)} of {count} items started"
            time.sleep(0.01)
        return found

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, within: float = 10.0) -> tuple[int, str]:
        """SIGTERM, then :meth:`exited`."""
        self.signal()
        return self.exited(within)

    def exited(self, within: float = 10.0) -> tuple[int, str]:
        """The exit status and the rest of stderr, once the watcher has stopped."""
        assert self.process is not None
        _, err = self.process.communicate(timeout=within)
        return self.process.returncode, err

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)
        for queue in (self.a, self.b):
            queue.delete_queue()
        self.factory.close()


@pytest.fixture(params=KINDS)
def watch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Watch]:
    watcher = Watch(request.param, tmp_path)
    yield watcher
    watcher.close()


def test_an_item_created_after_the_watcher_started_is_picked_up_fast(watch: Watch) -> None:
    watch.start()
    latencies = []
    for n in range(5):
        created = time.time()
        watch.a.create_item({"n": n})
        latencies.append(watch.wait_started(n + 1, within=5)[-1].at - created)
        time.sleep(0.2)  # the watcher back waiting
    status, err = watch.stop()
    assert status == 0, err
    bound = PICK_UP[watch.kind]
    assert max(latencies) < bound, latencies
    assert watch.a.counts().total == 0


def test_every_item_runs_exactly_once_with_two_processes(watch: Watch) -> None:
    watch.a.create_items([{"n": n, "sleep": 0.02} for n in range(20)])
    watch.start(watch.a.name, watch.b.name, concurrency=2)
    watch.a.create_items([{"n": n, "sleep": 0.02} for n in range(20, 40)])
    for n in range(10):
        watch.b.create_item({"m": n})
    started = watch.wait_started(50, within=20)
    status, err = watch.stop()
    assert status == 0, err
    runs = sorted(str(entry.data) for entry in watch.started())
    expected = [{"n": n, "sleep": 0.02} for n in range(40)] + [{"m": n} for n in range(10)]
    assert runs == sorted(str(data) for data in expected)
    assert len({entry.pid for entry in started}) == 2, "both processes worked"
    assert watch.a.counts().total == 0
    assert watch.b.counts().total == 0


@pytest.mark.parametrize("concurrency", [1, 2])
def test_sigterm_finishes_the_item_in_hand_and_exits_0(watch: Watch, concurrency: int) -> None:
    watch.start(concurrency=concurrency)
    watch.a.create_item({"sleep": 1.5})
    (started,) = watch.wait_started(1, within=5)
    status, err = watch.stop()
    stopped = time.time()
    assert status == 0, err
    assert stopped >= started.at + 1.5, "the worker ran to its end"
    assert stopped < started.at + 5
    counts = watch.a.counts()
    assert (counts.total, counts.leased) == (0, 0), counts
    assert len(watch.started()) == 1


def test_a_second_signal_releases_the_item_in_hand(watch: Watch) -> None:
    watch.start()
    watch.a.create_item({"sleep": 20})
    watch.wait_started(1, within=5)
    watch.signal()
    time.sleep(0.2)
    began = time.monotonic()
    status, err = watch.stop(within=5)  # the second SIGTERM
    assert status == 0, err
    assert time.monotonic() - began < 3
    counts = watch.a.counts()
    assert (counts.ready, counts.leased) == (1, 0), counts


def test_a_delayed_item_runs_after_its_delay(watch: Watch) -> None:
    watch.start()
    created = time.time()
    watch.a.create_item({"delayed": True}, delay=1.5)
    (started,) = watch.wait_started(1, within=6)
    status, err = watch.stop()
    assert status == 0, err
    assert created + 1.5 - 0.05 <= started.at < created + 1.5 + 1.2


@pytest.mark.parametrize(
    ("spec", "names", "says"),
    [
        ("sqlite", ["nobody_watches_this"], "no worker is registered for 'nobody_watches_this'"),
        ("foo://nowhere", ["watch_a"], "no backend for URL scheme 'foo'"),
    ],
)
def test_what_cannot_be_watched_exits_2_with_one_line(
    tmp_path: Path, spec: str, names: list[str], says: str
) -> None:
    url = f"sqlite:///{tmp_path}/q.sqlite" if spec == "sqlite" else spec
    env = {
        **os.environ,
        "WATCH_TEST_SPEC": json.dumps({"url": url}),
        "WATCH_TEST_LOG": str(tmp_path / "log"),
        "PYTHONPATH": TESTS,
    }
    done = subprocess.run(
        [BRIDGE, "--import", "watch_workers", "queue", "watch", *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    assert says in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://postgres@127.0.0.1:1/test", "redis://127.0.0.1:1/0"]
)
def test_a_store_down_while_watching_is_retried_and_logged_not_a_crash_loop(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge import workers
    from bridge.watch import Watcher

    # Nothing listens on port 1: every round trip fails at once.
    monkeypatch.setenv("BRIDGE_OUTAGE_TOLERANCE", "0.3")
    monkeypatch.setattr(workers, "_registry", dict(workers._registry))
    bridge.queue_worker("watch_outage")(lambda data: None)
    factory = bridge.QueueFactory(default={"url": url})
    ends = time.monotonic() + 3.5
    watcher = Watcher(["watch_outage"], factory, stopping=lambda: time.monotonic() > ends)
    try:
        watcher.run()  # returns when stopped, raising nothing
    finally:
        factory.close()
    gave_up = [r for r in caplog.records if r.name == "bridge.watch" and "next try" in r.message]
    # Passes after pauses of 1 s, then 2 s: two or three in 3.5 s, not hundreds.
    assert 2 <= len(gave_up) <= 3, [r.message for r in gave_up]
    assert "next try in 2 s" in gave_up[1].message


@pytest.fixture(params=WAKING)
def waking_watch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Watch]:
    watcher = Watch(request.param, tmp_path)
    yield watcher
    watcher.close()


def test_a_store_that_can_wake_the_watcher_does_not_let_it_sleep(waking_watch: Watch) -> None:
    watch = waking_watch
    watch.start()
    latencies = []
    for n in range(10):
        created = time.time()
        watch.a.create_item({"n": n})
        latencies.append(watch.wait_started(n + 1, within=5)[-1].at - created)
        # Anywhere in what would be a 0.25 s sleep, and the watcher back waiting.
        time.sleep(0.1 + 0.03 * n)
    status, err = watch.stop()
    assert status == 0, err
    # A sleeping watcher's median is about 0.13 s; a woken one's a few ms.
    assert statistics.median(latencies) < 0.06, latencies
    assert watch.a.counts().total == 0


@pytest.fixture(params=PARKING)
def parking_watch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Watch]:
    watcher = Watch(request.param, tmp_path)
    yield watcher
    watcher.close()


def test_sigterm_during_a_wait_leaves_the_parked_item_to_others(parking_watch: Watch) -> None:
    """The wait parks the item it receives (RabbitMQ's push, beanstalkd's reserve); the
    watcher stops before claiming it, and the server gives it back when the watcher's
    connection closes."""
    watch = parking_watch
    watch.start()
    watch.signal()  # the watcher is waiting: it stops once the wait ends
    watch.a.create_item({"left": True})  # received by the wait, almost always
    status, err = watch.exited()
    assert status == 0, err
    assert watch.started() == [], "stopping: no claim after the wait"
    item = claim_within(watch.a, 5)
    assert item.data == {"left": True}
    assert item.attempts in (1, 2), "2 when the wait had it"
    assert watch.a.delete_item(item)
