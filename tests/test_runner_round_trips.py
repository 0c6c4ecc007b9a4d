"""What a pass sends to its store: one call per item, the settlement and the next claim together.

Each test wraps a real backend (memory, SQLite) in :class:`Recording`, which
writes every call down on its way through and lets the real store do the
work; nothing is faked. A pass of N items sends the first claim, then one
``settle_and_claim`` per item, the last one claiming nothing: N + 1 calls
where it used to send 2N + 1 (a claim and a delete per item, and the claim
that found the queue empty). The outcomes, the summary and the stats are
those the runner gave before.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge import stats
from bridge.backends.memory import MemoryBackend
from bridge.codecs import JsonCodec
from bridge.contract import Backend, QueueStore
from bridge.errors import BackendUnavailableError
from bridge.items import (
    ItemCounts,
    ItemId,
    ItemPage,
    ItemState,
    ListedItem,
    QueueItem,
    Settlement,
    StoredItem,
)

from conftest import spec_for

pytestmark = pytest.mark.usefixtures("empty_registry")

LOCAL = [pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite")]
SETTLING = {"delete_items", "release_item", "delay_item", "fail_item", "hold_item"}
CLAIMING = {"claim_items", "settle_and_claim"} | SETTLING
"""The calls that claim or settle: what a pass costs per item."""


class Recording(Backend):
    """A real backend with every call written down on its way through, and faults on request.

    ``calls`` holds what the facade asked of the store, ``reached`` what the
    inner store was asked: the same, except where ``settle_and_claim`` is the
    contract's default (``two_calls=True``, or an inner store without the
    capability), which this object then runs itself, so that its settlement
    and its claim are each written down (as ``reached``) and can each fail.
    """

    def __init__(self, inner: Backend, *, two_calls: bool = False) -> None:
        super().__init__(inner.url)
        self.inner = inner
        self.two_calls = two_calls or not inner.capabilities.settle_and_claim
        self.capabilities = dataclasses.replace(
            inner.capabilities, settle_and_claim=not self.two_calls
        )
        self.calls: list[str] = []
        self.reached: list[str] = []
        self.faults: dict[str, list[Callable[[], None]]] = {}
        self.after: dict[str, list[Callable[[], None]]] = {}
        self._depth = 0

    # -- faults -----------------------------------------------------------------

    def fail_next(self, method: str, when: str = "before", times: int = 1) -> None:
        """The next ``times`` calls of ``method`` fail as in an outage: ``before`` they
        reach the store, or ``after`` it did the work (the answer lost on its way back)."""
        hooks = self.faults if when == "before" else self.after
        hooks.setdefault(method, []).extend([lambda: _down(method)] * times)

    def before_next(self, method: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` just before the next call of ``method`` reaches the store."""
        self.faults.setdefault(method, []).append(hook)

    def claiming(self, calls: Sequence[str] | None = None) -> list[str]:
        """The claims and settlements among ``calls`` (default: what the facade asked)."""
        return [c for c in (self.calls if calls is None else calls) if c in CLAIMING]

    # -- the relay --------------------------------------------------------------

    def _relay(self, method: str, *args: Any) -> Any:
        if self._depth == 0:
            self.calls.append(method)
        pending = self.faults.get(method)
        if pending:
            pending.pop(0)()
        self._depth += 1
        try:
            if method == "settle_and_claim" and self.two_calls:
                answer = QueueStore.settle_and_claim(self, *args)
            else:
                self.reached.append(method)
                answer = getattr(self.inner, method)(*args)
        finally:
            self._depth -= 1
        lost = self.after.get(method)
        if lost:
            lost.pop(0)()
        return answer

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        return self._relay("create_items", name, payloads, delay, priority)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        return self._relay("claim_items", name, count, lease_time)

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        return self._relay("settle_and_claim", name, settlement, count, lease_time)

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        return self._relay("delete_items", name, items)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._relay("release_item", name, item)

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._relay("delay_item", name, item, delay)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._relay("extend_lease", name, item, lease_time)

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        return self._relay("fail_item", name, item, error, delay)

    def create_queue(self, name: str) -> None:
        self._relay("create_queue", name)

    def garbage_collection(self, name: str) -> None:
        self._relay("garbage_collection", name)

    def close(self) -> None:
        self.inner.close()

    def forget_connections(self) -> None:
        self.inner.forget_connections()

    def counts(self, name: str) -> ItemCounts:
        return self._relay("counts", name)

    def oldest_ready_age(self, name: str) -> float | None:
        return self._relay("oldest_ready_age", name)

    def queue_names(self) -> dict[str, int]:
        return self._relay("queue_names")

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        return self._relay("peek", name, limit)

    def browse(self, name: str, state: ItemState | None, after: str | None, limit: int) -> ItemPage:
        return self._relay("browse", name, state, after, limit)

    def find_item(self, name: str, item_id: ItemId) -> ListedItem | None:
        return self._relay("find_item", name, item_id)

    def release_all(self, name: str) -> int:
        return self._relay("release_all", name)

    def delete_queue(self, name: str) -> None:
        self._relay("delete_queue", name)

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        return self._relay("remove_item", name, item_id)

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        return self._relay("hold_item", name, item, reason, error)

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        return self._relay("held_items", name, limit)

    def kick(self, name: str, limit: int | None) -> int:
        return self._relay("kick", name, limit)

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        return self._relay("kick_item", name, item_id)

    def delete_held(self, name: str, limit: int | None) -> int:
        return self._relay("delete_held", name, limit)


def _down(method: str) -> None:
    raise BackendUnavailableError(f"{method}: connection reset (an outage, injected)")


def recorded(factory: bridge.QueueFactory, name: str, *, two_calls: bool = False) -> Recording:
    """Put a :class:`Recording` between the factory's queue ``name`` and its store."""
    queue = factory.get(name)
    proxy = Recording(queue.backend, two_calls=two_calls)
    queue.backend = proxy
    return proxy


def unique(prefix: str = "rt") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    yield made
    made.close()


def _one_step(proxy: Recording, claims: int) -> list[str]:
    """What the store is asked for ``claims`` settle-and-claims, as it does them."""
    if proxy.two_calls:
        return ["delete_items", "claim_items"] * claims
    return ["settle_and_claim"] * claims


# --- one call per item ----------------------------------------------------------


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
def test_a_pass_of_n_items_sends_n_plus_one_calls(local_factory: bridge.QueueFactory) -> None:
    name = unique()
    proxy = recorded(local_factory, name)
    queue = local_factory.get(name)
    queue.create_items([f"i{n}" for n in range(5)])
    seen: list[str] = []
    bridge.queue_worker(name)(seen.append)

    summary = bridge.process_queue(name, factory=local_factory)

    assert seen == [f"i{n}" for n in range(5)]
    assert (summary.processed, summary.lost, summary.stopped_by) == (5, 0, "empty")
    assert queue.number_of_items() == 0
    # Before: claim, delete, claim, delete, ... and the claim that found none (11).
    assert proxy.claiming() == ["claim_items"] + ["settle_and_claim"] * 5
    assert proxy.claiming(proxy.reached) == ["claim_items", *_one_step(proxy, 5)]


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
def test_the_item_that_reaches_the_limit_is_settled_alone(
    local_factory: bridge.QueueFactory,
) -> None:
    name = unique()
    proxy = recorded(local_factory, name)
    queue = local_factory.get(name)
    queue.create_items(list(range(5)))
    bridge.queue_worker(name)(lambda data: None)

    summary = bridge.process_queue(name, items_limit=3, factory=local_factory)

    assert (summary.processed, summary.stopped_by) == (3, "items_limit")
    assert proxy.claiming() == [
        "claim_items",
        "settle_and_claim",
        "settle_and_claim",
        "delete_items",
    ]
    assert queue.counts() == ItemCounts(ready=2, leased=0, delayed=0, held=0), "nothing claimed"


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
def test_cron_passes_send_one_call_per_item_too(local_factory: bridge.QueueFactory) -> None:
    name = unique()
    proxy = recorded(local_factory, name)
    local_factory.get(name).create_items(["a", "b", "c"])
    bridge.queue_worker(name, cron_time=10)(lambda data: None)

    [summary] = bridge.run_cron(factory=local_factory)

    assert (summary.processed, summary.stopped_by) == (3, "empty")
    assert proxy.claiming() == ["claim_items"] + ["settle_and_claim"] * 3


# --- outcomes and stats as before --------------------------------------------------


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
def test_every_outcome_in_one_pass_counts_logs_and_settles_as_before(
    local_factory: bridge.QueueFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique()
    proxy = recorded(local_factory, name)
    queue = local_factory.get(name)
    queue.create_items(["ok1", "raise", "again", "later", "hold", "ok2"])
    reported: list[str] = []
    monkeypatch.setattr(stats, "record_outcome", lambda q, o: reported.append(o))
    seen: list[str] = []

    @bridge.queue_worker(name, max_attempts=5)
    def work(data: str) -> None:
        seen.append(data)
        if data == "raise":
            raise RuntimeError("remote said 503")
        if data == "again" and seen.count("again") == 1:
            raise bridge.Requeue()
        if data == "later":
            raise bridge.DelayedRequeue(600)
        if data == "hold":
            raise bridge.HoldItem("address bounced")

    with caplog.at_level(logging.WARNING, logger="bridge"):
        summary = bridge.process_queue(name, factory=local_factory)

    # What the runner gave before settle_and_claim, read off the previous runner.
    assert seen == ["ok1", "raise", "again", "again", "later", "hold", "ok2"]
    assert dataclasses.replace(summary, elapsed=0.0) == bridge.Summary(
        queue=name,
        processed=3,
        requeued=1,
        delayed=1,
        failed=1,
        held=1,
        stopped_by="empty",
    )
    assert reported == [
        "processed",
        "failed",
        "requeued",
        "processed",
        "delayed",
        "held",
        "processed",
    ]
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in logged] == ["WARNING", "ERROR"]
    assert "failed attempt 1 of 5; waits for its lease to end: RuntimeError" in logged[0][1]
    assert "held item" in logged[1][1]
    assert "address bounced" in logged[1][1]
    # In the store: the failed item leased with its error, one delayed, one held.
    assert queue.counts() == ItemCounts(ready=0, leased=1, delayed=1, held=1)
    [held] = queue.held_items()
    assert (held.data, held.hold_reason) == ("hold", "address bounced")
    # One call per settled item, and the first claim.
    assert proxy.claiming() == ["claim_items"] + ["settle_and_claim"] * 7


@pytest.mark.parametrize("local_factory", LOCAL, indirect=True)
@pytest.mark.parametrize("stopper", ["suspend", "interrupt"])
def test_an_outcome_that_stops_the_pass_is_settled_alone(
    local_factory: bridge.QueueFactory, stopper: str
) -> None:
    name = unique()
    proxy = recorded(local_factory, name)
    queue = local_factory.get(name)
    queue.create_items(["a", "b", "stop", "c"])

    class Interrupt(Exception):
        pass

    @bridge.queue_worker(name)
    def work(data: str) -> None:
        if data == "stop":
            raise bridge.SuspendQueue("later") if stopper == "suspend" else Interrupt()

    summary = bridge.process_queue(name, factory=local_factory, interrupts=(Interrupt,))

    assert summary.processed == 2
    assert summary.stopped_by == ("suspended" if stopper == "suspend" else "interrupted")
    assert proxy.claiming() == [
        "claim_items",
        "settle_and_claim",
        "settle_and_claim",
        "release_item",
    ]
    assert queue.counts().ready == 2, "the stopping item released, the last never claimed"


def test_an_item_kept_leased_sends_nothing_and_the_next_claim_goes_alone() -> None:
    backend = MemoryBackend()
    backend.capabilities = dataclasses.replace(MemoryBackend.capabilities, delay=False)
    proxy = Recording(backend)
    queue = bridge.Queue(unique("nodelay"), proxy, JsonCodec())
    queue.create_items(["first", "second"])

    @bridge.queue_worker(queue.name)
    def work(data: str) -> None:
        if data == "first":
            raise bridge.DelayedRequeue(60)

    summary = bridge.process_queue(queue.name, factory=_OneQueue(queue))

    assert (summary.kept_leased, summary.processed) == (1, 1)
    assert proxy.claiming() == ["claim_items", "claim_items", "settle_and_claim"]


def test_an_interrupt_while_reporting_progress_hands_back_the_claimed_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = bridge.QueueFactory(default="memory://")
    name = unique()
    queue = factory.get(name)
    queue.create_items(["a", "b", "c"])
    reported: list[str] = []
    monkeypatch.setattr(stats, "record_outcome", lambda q, o: reported.append(o))
    seen: list[str] = []
    bridge.queue_worker(name)(seen.append)

    class SoftTimeLimit(Exception):
        pass

    def progress(summary: bridge.Summary) -> None:
        # As Celery's soft time limit may fire in a task's progress report,
        # by then "b" is claimed, with the settlement of "a".
        raise SoftTimeLimit()

    summary = bridge.process_queue(
        name, factory=factory, progress=progress, interrupts=(SoftTimeLimit,)
    )

    assert seen == ["a"]
    assert (summary.processed, summary.stopped_by) == (1, "interrupted")
    assert reported == ["processed", "released"]
    assert queue.counts() == ItemCounts(ready=2, leased=0, delayed=0, held=0)
    factory.close()


class _OneQueue(bridge.QueueFactory):
    """A factory that hands out one ready-made queue."""

    def __init__(self, queue: bridge.Queue) -> None:
        super().__init__(default="memory://")
        self.queue = queue

    def get(self, name: str, reliable: bool = False) -> bridge.Queue:
        assert name == self.queue.name
        return self.queue
