"""A settle-and-claim that fails in an outage is retried, on both kinds of store.

All or nothing (``capabilities.settle_and_claim``): the failed try did
nothing, or did everything and only its answer was lost. Two calls (the
contract's default): it may also have settled the item and then failed to
claim. The retry settles again and finds the claim gone when the first try
had settled; the pass must count that item as what it asked for, never as
lost, and must process no item twice nor lose one.

The faults are put between the runner and a real store by
:class:`~test_runner_round_trips.Recording` (the store still does all the
work), or made real: a redis-server of the test's own is stopped between the
settlement and the claim and started again, as ``tests/test_outages.py``
does to the shared servers, which these tests leave alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_runner_round_trips import LOCAL, Recording, recorded

import bridge

from conftest import spec_for

pytestmark = pytest.mark.usefixtures("empty_registry")

ITEMS = [f"i{n}" for n in range(6)]


def unique(prefix: str = "ro") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    yield made
    made.close()


def _proxy(factory: bridge.QueueFactory, name: str, two_calls: bool) -> Recording:
    proxy = recorded(factory, name, two_calls=two_calls)
    if not two_calls and proxy.two_calls:
        pytest.skip("the store settles and claims in two calls (capabilities.settle_and_claim)")
    return proxy


def _worker(name: str, arm: Any, on: str = "i2") -> list[str]:
    """A worker that sees every item and arms the fault while it holds ``on``."""
    seen: list[str] = []

    @bridge.queue_worker(name, lease_time=1)
    def work(data: str) -> None:
        seen.append(data)
        if data == on:
            arm()

    return seen


FAULTS = [
    # (the call that fails, before it reaches the store or after, two calls)
    pytest.param("settle_and_claim", "before", False, id="all-or-nothing-nothing-done"),
    pytest.param("settle_and_claim", "after", False, id="all-or-nothing-answer-lost"),
    pytest.param("settle_and_claim", "before", True, id="two-calls-nothing-done"),
    pytest.param("claim_items", "before", True, id="two-calls-settled-claim-failed"),
    pytest.param("claim_items", "after", True, id="two-calls-both-done-answer-lost"),
]


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
@pytest.mark.parametrize(("method", "when", "two_calls"), FAULTS)
def test_a_retried_settle_and_claim_repeats_loses_and_miscounts_nothing(
    local_factory: bridge.QueueFactory, method: str, when: str, two_calls: bool
) -> None:
    name = unique()
    proxy = _proxy(local_factory, name, two_calls)
    queue = local_factory.get(name)
    queue.create_items(ITEMS)
    seen = _worker(name, lambda: proxy.fail_next(method, when))

    first = bridge.process_queue(name, factory=local_factory, outage_tolerance=10)
    assert first.stopped_by == "empty", first.error
    assert first.lost == 0, "the retry found its own settlement, not another claimer's"
    assert seen.count("i2") == 1
    assert first.processed >= 5
    if first.processed == 5:
        # The lost answer carried a claim: that item is leased to nobody
        # until its lease ends, then processed once, on its second claim.
        assert queue.counts().leased == 1
        time.sleep(1.1)
        second = bridge.process_queue(name, factory=local_factory)
        assert (second.processed, second.lost) == (1, 0)
    assert sorted(seen) == ITEMS, "each item processed once"
    assert queue.number_of_items() == 0


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
def test_after_a_settled_try_a_requeue_and_a_hold_count_as_themselves(
    local_factory: bridge.QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique()
    proxy = _proxy(local_factory, name, two_calls=True)
    queue = local_factory.get(name)
    queue.create_items(["again", "hold", "ok"])
    seen: list[str] = []

    @bridge.queue_worker(name, max_attempts=5)
    def work(data: str) -> None:
        seen.append(data)
        # Each settlement is done, and then its claim fails, once.
        proxy.fail_next("claim_items", "before")
        if data == "again" and seen.count("again") == 1:
            raise bridge.Requeue()
        if data == "hold":
            raise bridge.HoldItem("poison")

    with caplog.at_level(logging.WARNING, logger="bridge"):
        summary = bridge.process_queue(name, factory=local_factory, outage_tolerance=10)

    assert seen == ["again", "again", "hold", "ok"]
    counted = (summary.processed, summary.requeued, summary.held, summary.lost)
    assert counted == (2, 1, 1, 0)
    assert "Lost the lease" not in caplog.text
    assert "held item" in caplog.text
    assert queue.counts().total == 1
    assert [held.data for held in queue.held_items()] == ["hold"]


def test_on_a_store_that_drops_claims_with_the_connection_a_retry_finding_none_is_lost() -> None:
    # RabbitMQ hands a dropped connection's messages back at once, so a
    # retried settlement that finds its claim gone cannot tell our first try
    # from the broker's redelivery: counted lost, as before.
    factory = bridge.QueueFactory(default="memory://")
    name = unique()
    proxy = recorded(factory, name)
    proxy.capabilities = dataclasses.replace(proxy.capabilities, crash_recovery="disconnect")
    factory.get(name).create_items(["a", "b"])
    _worker(name, lambda: proxy.fail_next("settle_and_claim", "after"), on="a")

    summary = bridge.process_queue(name, factory=factory, outage_tolerance=10)

    assert (summary.processed, summary.lost) == (0, 1)
    factory.close()


@pytest.mark.parametrize("two_calls", [False, True], ids=["all-or-nothing", "two-calls"])
def test_an_outage_past_the_lease_stops_the_pass_saying_what_may_have_happened(
    two_calls: bool,
) -> None:
    factory = bridge.QueueFactory(default="memory://")
    name = unique()
    proxy = recorded(factory, name, two_calls=two_calls)
    queue = factory.get(name)
    queue.create_items(["first", "second"])
    failing = "claim_items" if two_calls else "settle_and_claim"
    _worker(name, lambda: proxy.fail_next(failing, times=1000), on="first")

    started = time.monotonic()
    summary = bridge.process_queue(name, factory=factory, outage_tolerance=60)

    assert time.monotonic() - started < 3.0, "bounded by the 1 s lease, not the tolerance"
    assert summary.stopped_by == "backend unavailable"
    assert summary.processed == 0
    assert summary.error is not None
    assert "could not delete an item and claim the next" in summary.error
    assert "comes back when its lease ends" in summary.error
    if two_calls:
        # The delete went through before the claims failed: the error says it may have.
        assert "unless its settlement was done" in summary.error
        assert queue.number_of_items() == 1
    else:
        assert "unless" not in summary.error
        assert queue.number_of_items() == 2, "nothing was done: both come back"
    factory.close()


# --- a real outage, on a redis-server of the test's own ------------------------------


class PrivateRedis:
    """A redis-server on a free port with its data in ``directory``: stopped and started at
    will (``SHUTDOWN SAVE``, so it comes back with its data), disturbing no other test."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.restarted = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.directory), "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self._answers():
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)

    def _answers(self) -> bool:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
        )
        return done.stdout.strip() == b"PONG"

    def stop_for(self, seconds: float | None) -> None:
        """Stop now; a thread starts it again ``seconds`` later (None: left stopped)."""
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "save"],
            capture_output=True,
            check=False,
        )
        assert self.process is not None
        self.process.wait(timeout=20)
        if seconds is None:
            self.restarted.set()
            return

        def later() -> None:
            time.sleep(seconds)
            self.start()
            self.restarted.set()

        threading.Thread(target=later, daemon=True).start()

    def close(self) -> None:
        self.restarted.wait(timeout=30)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.close()


@pytest.mark.parametrize(
    ("method", "two_calls"),
    [
        pytest.param("claim_items", True, id="two-calls-down-between-settle-and-claim"),
        pytest.param("settle_and_claim", True, id="two-calls-down-before-the-call"),
        pytest.param("settle_and_claim", False, id="all-or-nothing-down-before-the-call"),
    ],
)
def test_a_real_outage_inside_settle_and_claim_loses_and_repeats_nothing(
    private_redis: PrivateRedis, method: str, two_calls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    factory = bridge.QueueFactory(default=private_redis.url)
    name = unique()
    proxy = _proxy(factory, name, two_calls)
    queue = factory.get(name)
    queue.create_items(ITEMS)
    seen: list[str] = []

    @bridge.queue_worker(name, lease_time=60)
    def work(data: str) -> None:
        seen.append(data)
        if data == "i2":
            proxy.before_next(method, lambda: private_redis.stop_for(2.0))

    try:
        with caplog.at_level(logging.INFO, logger="bridge"):
            summary = bridge.process_queue(name, factory=factory, outage_tolerance=30)
        assert summary.stopped_by == "empty", summary.error
        assert sorted(seen) == ITEMS, "each item processed once"
        assert (summary.processed, summary.lost) == (6, 0)
        assert queue.number_of_items() == 0
        assert "answered again after" in caplog.text
        if method == "claim_items":
            assert "already settled by the try that failed" in caplog.text
    finally:
        factory.close()


def test_a_real_outage_past_the_lease_stops_the_pass_and_both_items_come_back(
    private_redis: PrivateRedis,
) -> None:
    factory = bridge.QueueFactory(default=private_redis.url)
    name = unique()
    queue = factory.get(name)
    queue.create_items(["first", "second"])
    lease = 2.0

    @bridge.queue_worker(name, lease_time=lease)
    def work(data: str) -> None:
        private_redis.stop_for(None)

    started = time.monotonic()
    try:
        summary = bridge.process_queue(name, factory=factory, outage_tolerance=60)
        took = time.monotonic() - started
        assert summary.stopped_by == "backend unavailable"
        assert summary.processed == 0
        assert summary.error is not None
        assert "could not delete an item and claim the next" in summary.error
        assert "comes back when its lease ends" in summary.error
        assert took < lease + 2.0, "bounded by the lease, not by the 60 s tolerance"
        private_redis.start()
        time.sleep(max(0.0, started + lease + 0.5 - time.monotonic()))
        claimed = queue.claim_items(2, lease_time=5)
        assert sorted(i.data for i in claimed) == ["first", "second"], "nothing done, nothing lost"
        assert {i.data: i.attempts for i in claimed}["first"] == 2
    finally:
        factory.close()
