"""Queue workers, drush's queue:run and Drupal's cron, on every backend.

Each cron outcome (success, Requeue, DelayedRequeue, SuspendQueue with and
without a delay, any other exception) is checked by what is left in the
queue afterwards, not by what the runner says it did.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge import workers
from bridge.backends.memory import MemoryBackend
from bridge.codecs import JsonCodec
from bridge.errors import ConfigurationError, InvalidArgumentError, UnknownQueueError
from bridge.settings import load_settings

from conftest import spec_for

MakeQueue = Callable[..., bridge.Queue]


pytestmark = pytest.mark.usefixtures("empty_registry")


def unique(prefix: str = "w") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def attempts_of_current() -> int:
    item = workers.current_item()
    assert item is not None
    return item.attempts


# --- cron outcomes ----------------------------------------------------------


def test_cron_success_deletes_every_item_in_order(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items(["a", "b", "c"])
    seen: list[str] = []
    bridge.queue_worker(queue.name, cron_time=5)(seen.append)

    summaries = bridge.run_cron(factory=factory)

    assert seen == ["a", "b", "c"]
    assert queue.number_of_items() == 0
    assert [(s.queue, s.processed, s.stopped_by) for s in summaries] == [(queue.name, 3, "empty")]


def test_cron_requeue_reprocesses_the_item_in_the_same_pass(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("flaky")
    attempts: list[int] = []

    @bridge.queue_worker(queue.name, cron_time=5)
    def work(data: str) -> None:
        attempts.append(attempts_of_current())
        if len(attempts) == 1:
            raise bridge.Requeue()

    [summary] = bridge.run_cron(factory=factory)

    assert attempts == [1, 2]
    assert queue.number_of_items() == 0
    assert (summary.requeued, summary.processed) == (1, 1)


def test_cron_delayed_requeue_hides_the_item_until_the_delay_passes(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    queue.create_item("later")
    delay = 1.5

    @bridge.queue_worker(queue.name, cron_time=5)
    def work(data: str) -> None:
        raise bridge.DelayedRequeue(delay, "rate limited")

    started = time.monotonic()
    [summary] = bridge.run_cron(factory=factory)
    finished = time.monotonic()

    # Claimed once, then delayed: the same pass found nothing more to claim.
    assert (summary.delayed, summary.processed, summary.stopped_by) == (1, 0, "empty")
    assert queue.number_of_items() == 1
    assert queue.claim_item(lease_time=1) is None
    assert time.monotonic() - started < delay, "machine too slow to observe the delay"
    # The delay ran from some moment between started and finished.
    time.sleep(max(0.0, finished + delay + 0.2 - time.monotonic()))
    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert (item.data, item.attempts) == ("later", 2)


def test_cron_suspend_releases_the_item_and_stops_only_that_queue(
    factory: bridge.QueueFactory, make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    down, fine = make_queue(unique("down")), make_queue(unique("fine"))
    down.create_items(["d1", "d2"])
    fine.create_item("f1")
    calls: list[str] = []

    @bridge.queue_worker(down.name, cron_time=5)
    def suspend(data: str) -> None:
        calls.append(data)
        raise bridge.SuspendQueue("API down")

    bridge.queue_worker(fine.name, cron_time=5)(calls.append)

    with caplog.at_level(logging.DEBUG, logger="bridge.runner"):
        summaries = bridge.run_cron(factory=factory)

    assert calls == ["d1", "f1"]
    assert [(s.queue, s.stopped_by, s.suspended) for s in summaries] == [
        (down.name, "suspended", "API down"),
        (fine.name, "empty", None),
    ]
    assert fine.number_of_items() == 0
    # Released, not left leased: claimable at once, first in line again.
    item = down.claim_item(lease_time=1)
    assert item is not None
    assert (item.data, item.attempts) == ("d1", 2)
    assert down.number_of_items() == 2
    assert f"A worker for {down.name} queue suspended further processing of the queue." in [
        r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG
    ]


def test_cron_suspend_with_a_short_delay_revisits_the_queue_in_the_same_run(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    down, fine = make_queue(unique("down")), make_queue(unique("fine"))
    down.create_items(["d1", "d2"])
    fine.create_item("f1")
    delay = 0.3
    calls: list[tuple[str, float]] = []

    @bridge.queue_worker(down.name, cron_time=5)
    def suspend_once(data: str) -> None:
        calls.append((data, time.monotonic()))
        if len(calls) == 1:
            raise bridge.SuspendQueue("back soon", delay=delay)

    bridge.queue_worker(fine.name, cron_time=5)(lambda data: calls.append((data, time.monotonic())))

    summaries = bridge.run_cron(factory=factory)

    assert [data for data, _ in calls] == ["d1", "f1", "d1", "d2"]
    # A real fractional sleep: Drupal's (int) cast would have made it 0 s.
    assert calls[2][1] - calls[0][1] >= delay
    assert [(s.queue, s.processed, s.stopped_by) for s in summaries] == [
        (down.name, 0, "suspended"),
        (fine.name, 1, "empty"),
        (down.name, 2, "empty"),
    ]
    assert down.number_of_items() == 0


def test_cron_revisits_suspended_queues_soonest_first(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    late, soon, other = (make_queue(unique(p)) for p in ("late", "soon", "other"))
    calls: list[str] = []
    for queue, delay in ((late, 0.6), (soon, 0.2), (other, None)):
        queue.create_item(queue.name)

        def work(data: str, delay: float | None = delay) -> None:
            calls.append(data)
            if delay is not None and calls.count(data) == 1:
                raise bridge.SuspendQueue("wait", delay=delay)

        bridge.queue_worker(queue.name, cron_time=5)(work)

    summaries = bridge.run_cron(factory=factory)

    expected = [late.name, soon.name, other.name, soon.name, late.name]
    assert calls == expected
    assert [s.queue for s in summaries] == expected


def test_cron_suspend_with_a_delay_of_max_wait_or_more_is_not_revisited(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")
    calls: list[str] = []

    @bridge.queue_worker(queue.name, cron_time=5)
    def suspend(data: str) -> None:
        calls.append(data)
        raise bridge.SuspendQueue("come back tomorrow", delay=2.0)

    started = time.monotonic()
    summaries = bridge.run_cron(factory=factory, max_wait=2.0)

    assert calls == ["x"]
    assert [s.stopped_by for s in summaries] == ["suspended"]
    assert time.monotonic() - started < 2.0
    assert queue.number_of_items() == 1


def test_cron_other_exception_is_stored_and_the_item_stays_leased_until_its_lease_ends(
    factory: bridge.QueueFactory, make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue(unique())
    queue.create_item({"n": 1})
    lease = 1.0

    @bridge.queue_worker(queue.name, cron_time=5, lease_time=lease)
    def broken(data: dict[str, int]) -> None:
        raise RuntimeError("the disk is full")

    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        [summary] = bridge.run_cron(factory=factory)
    finished = time.monotonic()

    assert (summary.failed, summary.held, summary.processed, summary.stopped_by) == (
        1,
        0,
        0,
        "empty",
    )
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    assert warning.name == "bridge.failures"
    assert "RuntimeError: the disk is full" in warning.getMessage()
    max_attempts = "attempt 1 of 10" if queue.capabilities.hold else "attempt 1;"
    assert max_attempts in warning.getMessage(), "no max_attempts where nothing can be held"
    assert queue.number_of_items() == 1
    assert queue.claim_item(lease_time=1) is None
    assert time.monotonic() - started < lease, "machine too slow to observe the lease"
    time.sleep(max(0.0, finished + lease + 0.2 - time.monotonic()))
    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert (item.data, item.attempts) == ({"n": 1}, 2)
    if not queue.capabilities.keeps_errors:
        return  # beanstalkd keeps none; Gearman only in the object that failed it
    assert item.last_error is not None
    assert item.last_error.startswith("RuntimeError: the disk is full\nTraceback")
    assert "in broken" in item.last_error


def test_cron_never_runs_a_queue_without_cron_time(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    manual, timed = make_queue(unique("manual")), make_queue(unique("timed"))
    manual.create_item("m")
    timed.create_item("t")
    calls: list[str] = []
    bridge.queue_worker(manual.name)(calls.append)
    bridge.queue_worker(timed.name, cron_time=5)(calls.append)

    summaries = bridge.run_cron(factory=factory)

    assert calls == ["t"]
    assert [s.queue for s in summaries] == [timed.name]
    item = manual.claim_item(lease_time=1)
    assert item is not None
    assert item.attempts == 1  # never claimed by cron


def test_cron_checks_its_budget_before_each_claim_not_during_an_item(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items([1, 2, 3, 4])
    budget, work_time = 0.5, 0.7
    calls: list[int] = []

    @bridge.queue_worker(queue.name, cron_time=budget, lease_time=10)
    def slow(data: int) -> None:
        calls.append(data)
        time.sleep(work_time)

    [summary] = bridge.run_cron(factory=factory)

    # The first item overran the budget and was finished anyway; no second claim.
    assert calls == [1]
    assert (summary.processed, summary.stopped_by) == (1, "time_limit")
    assert summary.elapsed >= work_time
    assert queue.number_of_items() == 3
    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert (item.data, item.attempts) == (2, 1)


def test_cron_processes_queues_in_registration_order(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    names = [unique("z"), unique("a"), unique("m")]
    calls: list[str] = []
    for name in names:
        make_queue(name).create_item(name)
        bridge.queue_worker(name, cron_time=5)(calls.append)

    summaries = bridge.run_cron(factory=factory)

    assert calls == names
    assert [s.queue for s in summaries] == names


# --- process_queue (drush queue:run) ----------------------------------------


def test_items_limit_counts_only_successful_items(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items([1, 2, 3, 4, 5])
    done: list[int] = []

    @bridge.queue_worker(queue.name)
    def odd_ones_later(data: int) -> None:
        if data % 2:
            raise bridge.DelayedRequeue(60)
        done.append(data)

    summary = bridge.process_queue(queue.name, items_limit=2, factory=factory)

    assert done == [2, 4]
    # Where the backend cannot delay, the odd ones stay leased and are counted so.
    set_aside = summary.delayed if queue.capabilities.delay else summary.kept_leased
    assert (summary.processed, set_aside, summary.stopped_by) == (2, 2, "items_limit")
    # 1 and 3 delayed, 5 never claimed.
    assert queue.number_of_items() == 3
    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert (item.data, item.attempts) == (5, 1)


def test_process_queue_time_limit_stops_before_the_next_claim(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items(list(range(10)))
    done: list[int] = []

    @bridge.queue_worker(queue.name)
    def slow(data: int) -> None:
        done.append(data)
        time.sleep(0.2)

    summary = bridge.process_queue(queue.name, time_limit=0.5, factory=factory)

    assert summary.stopped_by == "time_limit"
    assert 1 <= len(done) <= 4
    assert summary.processed == len(done)
    assert queue.number_of_items() == 10 - len(done)


@pytest.mark.parametrize(
    ("call_lease", "worker_lease", "cron_time", "expected"),
    [
        pytest.param(5, 11, 17, 5, id="argument"),
        pytest.param(None, 11, 17, 11, id="worker-lease_time"),
        pytest.param(None, None, 17, 17, id="worker-cron_time"),
        pytest.param(None, None, None, 30, id="default-30"),
    ],
)
def test_process_queue_lease_defaults(
    factory: bridge.QueueFactory,
    make_queue: MakeQueue,
    call_lease: float | None,
    worker_lease: float | None,
    cron_time: float | None,
    expected: float,
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")
    leases: list[float] = []

    @bridge.queue_worker(queue.name, cron_time=cron_time, lease_time=worker_lease)
    def measure(data: str) -> None:
        item = workers.current_item()
        assert item is not None
        leases.append(item.expire - time.time())

    bridge.process_queue(queue.name, lease_time=call_lease, factory=factory)

    [lease] = leases
    assert expected - 2 < lease <= expected + 1


def test_cron_leases_with_lease_time_and_budgets_with_cron_time(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")
    leases: list[float] = []

    @bridge.queue_worker(queue.name, cron_time=17, lease_time=11)
    def measure(data: str) -> None:
        item = workers.current_item()
        assert item is not None
        leases.append(item.expire - time.time())

    bridge.run_cron(factory=factory)

    [lease] = leases
    assert 9 < lease <= 12


def test_process_queue_suspend_returns_a_summary_and_releases_the_item(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items(["a", "b"])

    @bridge.queue_worker(queue.name)
    def suspend(data: str) -> None:
        raise bridge.SuspendQueue("maintenance window")

    summary = bridge.process_queue(queue.name, factory=factory)

    assert (summary.stopped_by, summary.suspended, summary.processed) == (
        "suspended",
        "maintenance window",
        0,
    )
    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert item.data == "a"


def test_a_worker_that_outlives_its_lease_cannot_delete_the_new_claim(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("contested")
    stolen: list[bridge.QueueItem] = []

    @bridge.queue_worker(queue.name)
    def too_slow(data: str) -> None:
        item = workers.current_item()
        assert item is not None
        # Another worker claims the item once this one's lease has run out.
        deadline = time.monotonic() + 10
        while not stolen and time.monotonic() < deadline:
            time.sleep(0.1)
            again = queue.claim_item(lease_time=30)
            if again is not None:
                stolen.append(again)

    summary = bridge.process_queue(queue.name, lease_time=0.3, factory=factory)

    assert stolen, "the lease never expired"
    assert (summary.lost, summary.processed) == (1, 0)
    assert queue.number_of_items() == 1
    assert queue.delete_item(stolen[0])  # the new holder's claim still stands


def test_process_queue_reports_progress_after_each_item(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_items(["a", "b", "c"])
    bridge.queue_worker(queue.name)(lambda data: None)
    seen: list[bridge.Summary] = []

    final = bridge.process_queue(queue.name, factory=factory, progress=seen.append)

    assert [(s.processed, s.stopped_by) for s in seen] == [
        (1, "running"),
        (2, "running"),
        (3, "running"),
    ]
    assert (final.processed, final.stopped_by) == (3, "empty")
    assert json.loads(json.dumps(final.as_dict()))["processed"] == 3


def test_keyboard_interrupt_propagates_and_leaves_the_item_leased(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")

    @bridge.queue_worker(queue.name)
    def interrupted(data: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bridge.process_queue(queue.name, lease_time=30, factory=factory)

    assert queue.number_of_items() == 1
    assert queue.claim_item(lease_time=1) is None
    assert workers.current_item() is None


def test_process_queue_of_an_unknown_queue_names_the_known_ones() -> None:
    bridge.queue_worker("known_a")(print)
    bridge.queue_worker("known_b")(print)

    with pytest.raises(UnknownQueueError) as raised:
        bridge.process_queue("nope", factory=bridge.QueueFactory(default="memory://"))

    assert str(raised.value) == (
        "no worker registered for queue 'nope'; registered: known_a, known_b; "
        "worker modules come from BRIDGE_IMPORTS=(unset)"
    )


def test_process_queue_refuses_bad_limits_before_claiming(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")
    bridge.queue_worker(queue.name)(print)

    with pytest.raises(InvalidArgumentError, match="-1"):
        bridge.process_queue(queue.name, time_limit=-1, factory=factory)
    with pytest.raises(InvalidArgumentError, match="-2"):
        bridge.process_queue(queue.name, items_limit=-2, factory=factory)
    with pytest.raises(InvalidArgumentError, match="lease_time"):
        bridge.process_queue(queue.name, lease_time=0, factory=factory)

    item = queue.claim_item(lease_time=1)
    assert item is not None
    assert item.attempts == 1


# --- the registry -----------------------------------------------------------


def test_queue_worker_returns_the_function_and_registers_it_in_order() -> None:
    def first(data: Any) -> None: ...
    def second(data: Any) -> None: ...

    assert bridge.queue_worker("q_first", cron_time=1.5)(first) is first
    assert bridge.queue_worker("q_second", lease_time=2)(second) is second

    registered = bridge.registered_workers()
    assert list(registered) == ["q_first", "q_second"]
    assert registered["q_first"] == bridge.QueueWorker("q_first", first, 1.5, None)
    assert registered["q_first"].cron_lease == 1.5
    assert registered["q_second"].cron_lease == 2
    assert workers.get_worker("q_second").callback is second


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("cron_time", 0),
        ("cron_time", -3),
        ("lease_time", 0),
        ("lease_time", float("nan")),
        ("cron_time", "60"),
    ],
)
def test_queue_worker_refuses_times_that_are_not_positive(option: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=option) as raised:
        bridge.queue_worker("q_bad", **{option: value})
    assert repr(value) in str(raised.value)
    assert "q_bad" not in bridge.registered_workers()


def test_a_second_worker_for_a_queue_is_refused() -> None:
    def one(data: Any) -> None: ...
    def other(data: Any) -> None: ...

    bridge.queue_worker("q_dup")(one)
    with pytest.raises(ConfigurationError, match=r"one.*other"):
        bridge.queue_worker("q_dup")(other)
    assert bridge.registered_workers()["q_dup"].callback is one


def write_module(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


def test_reimporting_a_worker_module_replaces_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("mod")
    write_module(
        tmp_path,
        module,
        """
        import bridge

        @bridge.queue_worker("q_reimport", cron_time=1)
        def work(data):
            return "first"
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BRIDGE_IMPORTS", f" {module} ")

    first = bridge.registered_workers()["q_reimport"]
    del sys.modules[module]
    write_module(
        tmp_path,
        module,
        """
        import bridge

        @bridge.queue_worker("q_reimport", cron_time=2)
        def work(data):
            return "second"
    """,
    )
    __import__(module)

    second = bridge.registered_workers()["q_reimport"]
    assert (first.cron_time, first.callback(None)) == (1, "first")
    assert (second.cron_time, second.callback(None)) == (2, "second")


def test_a_worker_module_that_fails_to_import_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = unique("broken")
    write_module(tmp_path, broken, "raise RuntimeError('no API key configured')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BRIDGE_IMPORTS", f"{broken}")

    with pytest.raises(ConfigurationError) as raised:
        bridge.registered_workers()

    assert broken in str(raised.value)
    assert "RuntimeError: no API key configured" in str(raised.value)

    missing = unique("missing")
    monkeypatch.setenv("BRIDGE_IMPORTS", missing)
    with pytest.raises(ConfigurationError, match=missing):
        workers.get_worker("anything")


def test_unknown_queue_error_names_the_worker_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("mod")
    write_module(
        tmp_path,
        module,
        """
        import bridge

        bridge.queue_worker("q_from_module")(print)
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BRIDGE_IMPORTS", module)

    with pytest.raises(UnknownQueueError) as raised:
        workers.get_worker("q_missing")

    assert str(raised.value) == (
        "no worker registered for queue 'q_missing'; registered: q_from_module; "
        f"worker modules come from BRIDGE_IMPORTS={module}"
    )


def test_requeue_exceptions_keep_drupal_values() -> None:
    assert bridge.DelayedRequeue(2.5).delay == 2.5
    assert bridge.DelayedRequeue(-4, "past").delay == 0
    assert str(bridge.DelayedRequeue(1, "why")) == "why"
    assert bridge.SuspendQueue().delay is None
    suspend = bridge.SuspendQueue("API down", delay=0.5)
    assert (str(suspend), suspend.delay) == ("API down", 0.5)
    with pytest.raises(InvalidArgumentError):
        bridge.DelayedRequeue(float("inf"))


class _Interrupt(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which is an Exception too."""


def test_an_interrupt_releases_the_item_and_ends_the_run(backend_spec: dict[str, Any]) -> None:
    factory = bridge.QueueFactory(default=backend_spec)
    name, seen = unique("interrupted"), []

    @bridge.queue_worker(name, cron_time=30)
    def work(data: Any) -> None:
        seen.append(data)
        if data == "stuck":
            raise _Interrupt()

    queue = factory.get(name)
    queue.create_items(["stuck", "next"])
    summary = bridge.process_queue(name, factory=factory, interrupts=(_Interrupt,))
    assert summary.stopped_by == "interrupted"
    assert seen == ["stuck"], "nothing is claimed after an interrupt"
    assert summary.failed == 0
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert (item.data, item.attempts) == ("stuck", 2), "the item was released, not left leased"
    queue.delete_queue()
    factory.close()


def test_an_interrupt_ends_run_cron_before_the_next_queue(backend_spec: dict[str, Any]) -> None:
    factory = bridge.QueueFactory(default=backend_spec)
    first, second, seen = unique("first"), unique("second"), []

    @bridge.queue_worker(first, cron_time=30)
    def interrupted(data: Any) -> None:
        raise _Interrupt()

    @bridge.queue_worker(second, cron_time=30)
    def untouched(data: Any) -> None:
        seen.append(data)

    factory.get(first).create_item("a")
    factory.get(second).create_item("b")
    summaries = bridge.run_cron(factory=factory, interrupts=(_Interrupt,))
    assert [s.stopped_by for s in summaries] == ["interrupted"]
    assert seen == []
    assert factory.get(first).counts().ready == 1
    for name in (first, second):
        factory.get(name).delete_queue()
    factory.close()


# --- outcomes the backend cannot honour never end a pass ----------------------


def _memory_queue(prefix: str, **capabilities: Any) -> bridge.Queue:
    """A queue on a memory backend of its own that declares other ``capabilities``."""
    backend = MemoryBackend()
    backend.capabilities = dataclasses.replace(MemoryBackend.capabilities, **capabilities)
    return bridge.Queue(unique(prefix), backend, JsonCodec())


class _OneQueue(bridge.QueueFactory):
    """A factory that hands out one ready-made queue."""

    def __init__(self, queue: bridge.Queue) -> None:
        super().__init__(default="memory://")
        self.queue = queue

    def get(self, name: str, reliable: bool = False) -> bridge.Queue:
        assert name == self.queue.name
        return self.queue


def _delay_first_then_succeed(name: str, delay: float) -> list[str]:
    """Register a worker that asks to delay item "first" and succeeds on the rest."""
    seen: list[str] = []

    @bridge.queue_worker(name, cron_time=30)
    def work(data: str) -> None:
        seen.append(data)
        if data == "first":
            raise bridge.DelayedRequeue(delay)

    return seen


def test_a_delay_past_the_backends_longest_is_clamped_and_the_pass_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Delays of at most a second, as SQS's are at most 12 h.
    queue = _memory_queue("short", max_delay=1.0)
    queue.create_items(["first", "second", "third"])
    seen = _delay_first_then_succeed(queue.name, 86400)

    with caplog.at_level(logging.WARNING, logger="bridge.runner"):
        summary = bridge.process_queue(queue.name, factory=_OneQueue(queue))

    assert seen == ["first", "second", "third"]
    assert (summary.delayed, summary.processed, summary.kept_leased) == (1, 2, 0)
    assert summary.stopped_by == "empty"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert queue.name in warning
    assert "at most 1 s" in warning
    assert "86400 s" in warning
    assert queue.claim_item(lease_time=30) is None, "delayed, not released"
    time.sleep(1.2)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == "first"


def test_a_delay_past_the_largest_of_all_is_clamped_on_every_backend(
    backend_spec: dict[str, Any],
) -> None:
    factory = bridge.QueueFactory(default=backend_spec)
    name = unique("huge_delay")
    seen = _delay_first_then_succeed(name, 1e15)
    queue = factory.get(name)
    queue.create_items(["first", "second"])
    try:
        summary = bridge.process_queue(name, factory=factory, lease_time=5)
        assert sorted(seen) == ["first", "second"]
        assert summary.processed == 1
        # Delayed as long as the store allows, or left leased where it cannot delay.
        can_delay = queue.capabilities.delay
        assert (summary.delayed, summary.kept_leased) == ((1, 0) if can_delay else (0, 1))
        assert queue.claim_item(lease_time=1) is None
    finally:
        queue.delete_queue()
        factory.close()


def test_a_delay_on_a_backend_without_delays_keeps_the_item_leased(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = _memory_queue("nodelay", delay=False)
    queue.create_items(["first", "second"])
    seen = _delay_first_then_succeed(queue.name, 60)

    with caplog.at_level(logging.WARNING, logger="bridge.runner"):
        summary = bridge.process_queue(queue.name, factory=_OneQueue(queue), lease_time=1)

    assert seen == ["first", "second"]
    # Counted for what happened: no delay was made.
    assert (summary.delayed, summary.kept_leased, summary.processed) == (0, 1, 1)
    assert "cannot delay items" in caplog.text
    assert queue.name in caplog.text
    assert queue.counts().leased == 1
    time.sleep(1.1)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert (item.data, item.attempts) == ("first", 2)


def test_a_delay_of_zero_without_delays_is_a_release() -> None:
    queue = _memory_queue("nodelay0", delay=False)
    queue.create_item("again")
    attempts: list[int] = []

    @bridge.queue_worker(queue.name)
    def work(data: str) -> None:
        attempts.append(attempts_of_current())
        if len(attempts) == 1:
            raise bridge.DelayedRequeue(0)

    summary = bridge.process_queue(queue.name, factory=_OneQueue(queue))

    assert attempts == [1, 2], "released and claimed again in the same pass"
    assert (summary.requeued, summary.delayed, summary.processed) == (1, 0, 1)


def test_a_delay_the_backend_refuses_keeps_the_item_leased_and_the_pass_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _memory_queue("refuses")

    def refuse(name: str, item: bridge.QueueItem, delay: float) -> float | None:
        raise InvalidArgumentError(f"this store delays at most 10 s, not {delay:g}")

    # A limit the backend enforces but never declared in its capabilities.
    monkeypatch.setattr(queue.backend, "delay_item", refuse)
    queue.create_items(["first", "second", "third"])
    seen = _delay_first_then_succeed(queue.name, 3600)

    with caplog.at_level(logging.WARNING, logger="bridge.runner"):
        summary = bridge.process_queue(queue.name, factory=_OneQueue(queue))

    assert seen == ["first", "second", "third"]
    assert (summary.delayed, summary.kept_leased, summary.processed) == (0, 1, 2)
    assert "at most 10 s" in caplog.text
    assert queue.counts().leased == 1


@pytest.mark.service("sqs")
def test_a_day_long_delay_on_sqs_does_not_end_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = bridge.QueueFactory(default=spec_for("sqs", tmp_path))
    name = unique("sqs_day")
    seen = _delay_first_then_succeed(name, 86400)
    queue = factory.get(name)
    queue.create_items(["first", "second", "third"])
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.runner"):
            summary = bridge.process_queue(name, factory=factory, lease_time=5)
        assert sorted(seen) == ["first", "second", "third"]
        # SQS hides a received message at most 12 h: the delay is cut to that.
        assert (summary.processed, summary.delayed, summary.kept_leased) == (2, 1, 0)
        assert f"Queue {name} " in caplog.text
        assert "at most 43200 s" in caplog.text
        assert queue.claim_item(lease_time=1) is None
    finally:
        queue.delete_queue()
        factory.close()


# --- one name, one store: reliable queues ------------------------------------


def _split_factory(tmp_path: Path, **settings: Any) -> bridge.QueueFactory:
    """A non-reliable default with a reliable default beside it: where stores could split."""
    return bridge.QueueFactory(
        default="memory://", reliable_default=f"sqlite:///{tmp_path}/reliable.sqlite", **settings
    )


def test_a_worker_declared_reliable_reads_what_a_reliable_producer_wrote(
    tmp_path: Path,
) -> None:
    factory = _split_factory(tmp_path)
    name = unique("orders")
    seen: list[str] = []
    bridge.queue_worker(name, cron_time=5, reliable=True)(seen.append)
    try:
        factory.get(name, reliable=True).create_items(["a", "b"])
        summary = bridge.process_queue(name, factory=factory)
        assert (seen, summary.processed) == (["a", "b"], 2)
        factory.get(name, reliable=True).create_item("c")
        [cron] = bridge.run_cron(factory=factory)
        assert (seen, cron.processed) == (["a", "b", "c"], 1)
        assert factory.get(name) is factory.get(name, reliable=True)
        assert factory.get(name).capabilities.reliable
    finally:
        factory.close()


def test_a_queue_declared_reliable_by_the_settings_is_one_store(tmp_path: Path) -> None:
    name = unique("orders")
    seen: list[str] = []
    factory = _split_factory(tmp_path, reliable_queues=[name])
    bridge.queue_worker(name)(seen.append)
    try:
        factory.get(name, reliable=True).create_item("from the producer")
        bridge.process_queue(name, factory=factory)
        assert seen == ["from the producer"]
        assert factory.get(name, reliable=True).number_of_items() == 0
    finally:
        factory.close()


def test_reliable_for_an_undeclared_queue_is_refused_and_says_how_to_declare(
    tmp_path: Path,
) -> None:
    factory = _split_factory(tmp_path)
    name = unique("orders")
    try:
        with pytest.raises(ConfigurationError) as refused:
            factory.get(name, reliable=True)
        message = str(refused.value)
        assert f"queue_worker({name!r}, reliable=True)" in message
        assert f"BRIDGE_RELIABLE_QUEUES={name}" in message
        assert "never reaches another store than get(name)" in message
        # Nothing was written anywhere; get(name) is what it was.
        assert not factory.get(name).capabilities.reliable
    finally:
        factory.close()


def test_without_a_reliable_default_the_refusal_says_to_set_one() -> None:
    factory = bridge.QueueFactory(default="memory://")
    name = unique("orders")
    with pytest.raises(ConfigurationError, match="set reliable_default"):
        factory.get(name, reliable=True)
    declared = unique("declared")
    bridge.queue_worker(declared, reliable=True)(print)
    with pytest.raises(ConfigurationError, match="is declared reliable but memory://"):
        factory.get(declared)
    with pytest.raises(ConfigurationError, match="is declared reliable but memory://"):
        bridge.process_queue(declared, factory=factory)


def test_a_declaration_after_the_queue_was_opened_is_an_error_not_a_second_store(
    tmp_path: Path,
) -> None:
    factory = _split_factory(tmp_path)
    name = unique("orders")
    try:
        factory.get(name).create_item("in memory")
        bridge.queue_worker(name, reliable=True)(print)
        with pytest.raises(ConfigurationError, match="declared reliable after it was opened"):
            factory.get(name)
    finally:
        factory.close()


def test_a_producer_finds_the_declaration_in_the_worker_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, name = unique("mod"), unique("orders")
    write_module(
        tmp_path,
        module,
        f"""
        import bridge

        @bridge.queue_worker({name!r}, reliable=True)
        def work(data):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BRIDGE_IMPORTS", module)
    factory = _split_factory(tmp_path)
    try:
        # The producer never imported the module; its first get() does.
        assert factory.get(name).capabilities.reliable
        factory.get(name).create_item("x")
        assert bridge.process_queue(name, factory=factory).processed == 1
    finally:
        factory.close()


def test_on_a_reliable_default_a_declaration_changes_nothing(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(
        default=f"sqlite:///{tmp_path}/main.sqlite",
        reliable_default=f"sqlite:///{tmp_path}/spare.sqlite",
    )
    name = unique("orders")
    bridge.queue_worker(name, reliable=True)(print)
    try:
        queue = factory.get(name, reliable=True)
        assert queue is factory.get(name)
        assert factory.get(unique("other"), reliable=True).backend is queue.backend
        assert "main.sqlite" in queue.backend.url
    finally:
        factory.close()


def test_reliable_queues_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_RELIABLE_QUEUES", "orders, invoices,")
    assert load_settings().reliable_queues == {"orders", "invoices"}
    factory = bridge.QueueFactory.from_settings()
    assert factory.reliable_queues == {"orders", "invoices"}
    with pytest.raises(ConfigurationError, match="collection of queue names"):
        bridge.QueueFactory(reliable_queues="orders")


def test_queue_worker_refuses_a_reliable_that_is_not_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="reliable must be True or False"):
        bridge.queue_worker(unique(), reliable="yes")  # type: ignore[arg-type]


def test_a_cron_lease_past_the_backends_longest_is_clamped_and_every_queue_runs(
    empty_registry: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A store whose leases end after 60 s at most, as SQS's end after 12 h.
    short = _memory_queue("short_lease", max_lease=60.0)
    short.create_items(["a", "b"])
    seen: list[str] = []

    @bridge.queue_worker(short.name, cron_time=3600)
    def work(data: str) -> None:
        item = bridge.current_item()
        assert item is not None
        assert item.expire - time.time() <= 60
        seen.append(data)

    with caplog.at_level(logging.WARNING, logger="bridge.runner"):
        [summary] = bridge.run_cron(factory=_OneQueue(short))

    assert seen == ["a", "b"]
    assert (summary.processed, summary.stopped_by) == (2, "empty")
    assert any(
        "at most 60 s" in r.getMessage() and short.name in r.getMessage() for r in caplog.records
    )
