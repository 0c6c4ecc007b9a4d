"""The failure policy: stored errors, retry with backoff, max_attempts, holds.

Runner cases run on every backend and are checked by what the store holds
afterwards (counts, held items, their attempts and errors), not only by
what the runner says it did.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import bridge
from bridge import failures, stats, workers
from bridge.errors import ConfigurationError, InvalidArgumentError, UnsupportedOperationError
from bridge.failures import Backoff, FailurePolicy, HoldItem, format_error, settle_failure
from bridge.settings import load_settings

MakeQueue = Callable[..., bridge.Queue]
QUICK = Backoff(initial=0.05, factor=1, maximum=0.05, jitter=0)
"""A retry that brings a failed item back at once, for tests about counts, not timing."""

pytestmark = pytest.mark.usefixtures("empty_registry")


def unique(prefix: str = "f") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def attempts_of_current() -> int:
    item = workers.current_item()
    assert item is not None
    return item.attempts


def drain_until(
    name: str, factory: bridge.QueueFactory, done: Callable[[], bool], timeout: float = 30
) -> list[bridge.Summary]:
    """Passes over queue ``name`` until ``done()``; their summaries."""
    summaries: list[bridge.Summary] = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout} s: {summaries}"
        summaries.append(bridge.process_queue(name, time_limit=5, factory=factory))
        time.sleep(0.02)
    return summaries


def totals(summaries: list[bridge.Summary], *fields: str) -> tuple[int, ...]:
    return tuple(sum(getattr(s, f) for s in summaries) for f in fields)


def holding(queue: bridge.Queue) -> bridge.Queue:
    """The queue, if its store can hold items (max_attempts needs it); else the test skips."""
    if not queue.capabilities.hold:
        pytest.skip("the store cannot hold items, so max_attempts is refused (capabilities.hold)")
    return queue


# --- max_attempts, retry, HoldItem on every backend ----------------------------


def test_an_always_failing_worker_is_held_after_exactly_max_attempts(
    factory: bridge.QueueFactory, make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = holding(make_queue(unique()))
    caps = queue.capabilities
    queue.create_items([{"to": "ada"}, "fine"])
    calls: list[int] = []

    @bridge.queue_worker(queue.name, max_attempts=3, retry=QUICK)
    def broken(data: Any) -> None:
        if data == "fine":
            return
        calls.append(attempts_of_current())
        raise RuntimeError("the disk is full")

    with caplog.at_level(logging.WARNING):
        summaries = drain_until(queue.name, factory, lambda: queue.counts().held == 1)

    assert calls == [1, 2, 3], "the worker ran exactly max_attempts times"
    assert totals(summaries, "processed", "failed", "held", "lost") == (1, 2, 1, 0)
    [held] = queue.held_items()
    assert (held.data, held.attempts) == ({"to": "ada"}, 3)
    if caps.keeps_errors:
        assert held.last_error is not None
        assert held.last_error.startswith("RuntimeError: the disk is full\n")
        assert "in broken" in held.last_error
        assert 'raise RuntimeError("the disk is full")' in (held.last_error)
    if caps.held_details:
        assert held.hold_reason == "failed on attempt 3 of max_attempts 3"
        assert held.held_at is not None
    assert queue.counts().held == 1
    assert queue.number_of_items() == 1
    assert queue.claim_item(lease_time=1) is None, "a held item is never claimable"

    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name == failures.__name__
    ]
    assert [getattr(r, "attempt", None) for r in warnings] == [1, 2]
    assert all(getattr(r, "error", "") == "RuntimeError: the disk is full" for r in warnings)
    assert all(getattr(r, "queue", "") == queue.name for r in warnings)
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (getattr(error, "item_id", None), getattr(error, "attempt", None)) == (held.item_id, 3)
    assert "held item" in error.getMessage()
    assert "the disk is full" in error.getMessage()


def test_without_retry_a_failed_item_waits_for_its_lease_and_the_next_claimer_sees_the_error(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = make_queue(unique())
    queue.create_item("x")
    lease = 1.0

    @bridge.queue_worker(queue.name, lease_time=lease)
    def broken(data: str) -> None:
        raise ValueError("no such user: 42")

    started = time.monotonic()
    summary = bridge.process_queue(queue.name, factory=factory)
    finished = time.monotonic()

    assert (summary.failed, summary.held, summary.stopped_by) == (1, 0, "empty")
    assert queue.number_of_items() == 1
    assert queue.claim_item(lease_time=1) is None
    assert time.monotonic() - started < lease, "machine too slow to observe the lease"
    time.sleep(max(0.0, finished + lease + 0.2 - time.monotonic()))
    item = queue.claim_item(lease_time=5)
    assert item is not None
    assert item.attempts == 2
    if queue.capabilities.keeps_errors:
        assert item.last_error is not None
        assert item.last_error.startswith("ValueError: no such user: 42")


def test_retry_delays_follow_the_backoff_within_its_jitter(
    factory: bridge.QueueFactory, make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = holding(make_queue(unique()))
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    queue.create_item("x")
    backoff = Backoff(initial=1.0, factor=2, maximum=1.6, jitter=0.2)
    failed: list[tuple[bridge.QueueItem, float]] = []

    @bridge.queue_worker(queue.name, max_attempts=3, retry=backoff)
    def broken(data: str) -> None:
        item = workers.current_item()
        assert item is not None
        failed.append((item, time.time()))
        raise RuntimeError("remote said 503")

    for attempt, base in ((1, 1.0), (2, 1.6)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=failures.__name__):
            summary = bridge.process_queue(queue.name, factory=factory)
        assert (summary.failed, summary.stopped_by) == (1, "empty")
        [record] = caplog.records
        delay = getattr(record, "retry_in", None)
        assert delay is not None
        assert base * 0.8 <= delay <= min(base * 1.2, backoff.maximum)
        item, at = failed[-1]
        assert item.attempts == attempt
        if queue.capabilities.browse:
            # The deadline as the store keeps it: the runner settles with
            # settle_and_claim, whose answer does not carry the new expire.
            found = queue.find_item(item.item_id)
            assert found is not None
            expire = found.item.expire
            # The store's clock and a round trip separate the two readings, and a
            # store may round a delay up to a whole second (SQS does).
            assert delay - 0.1 <= expire - at <= delay + 1.1, (delay, expire - at)
        time.sleep(max(0.0, at + delay - 0.25 - time.time()))
        assert queue.claim_item(lease_time=1) is None, "claimable before its delay"
        time.sleep(max(0.0, at + delay + 1.1 - time.time()))
    summary = bridge.process_queue(queue.name, factory=factory)
    assert summary.held == 1
    assert [item.attempts for item, _ in failed] == [1, 2, 3]


def test_hold_item_holds_at_once_with_its_reason(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = holding(make_queue(unique()))
    caps = queue.capabilities
    queue.create_items(["bounced", "cause", "fine"])
    calls: list[str] = []

    @bridge.queue_worker(queue.name, max_attempts=None)
    def work(data: str) -> None:
        calls.append(data)
        if data == "bounced":
            raise bridge.HoldItem("address bounced")
        if data == "cause":
            accounts: dict[str, int] = {}
            try:
                _ = accounts["account"]
            except KeyError as exc:
                raise bridge.HoldItem("account deleted") from exc

    summary = bridge.process_queue(queue.name, factory=factory)

    assert sorted(calls) == ["bounced", "cause", "fine"], "each ran once"
    assert (summary.processed, summary.held, summary.failed) == (1, 2, 0)
    held = {item.data: item for item in queue.held_items()}
    assert set(held) == {"bounced", "cause"}
    assert held["bounced"].last_error is None
    assert held["bounced"].attempts == 1
    if caps.held_details:
        assert held["bounced"].hold_reason == "address bounced"
        assert held["cause"].hold_reason == "account deleted"
    if caps.keeps_errors:
        assert (held["cause"].last_error or "").startswith("KeyError: 'account'")
    assert queue.counts().held == 2
    assert queue.claim_item(lease_time=1) is None


def test_an_item_claimed_past_max_attempts_is_held_without_running_the_worker(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    """What a crash loop looks like to the store: claims that never settled."""
    queue = holding(make_queue(unique()))
    queue.create_item("poison")
    # Claim 1 failed and was settled, its error kept; claim 2 died with its process.
    first = queue.claim_item(lease_time=5)
    assert first is not None
    assert queue.fail_item(first, "MemoryError: out of memory\nTraceback ...", delay=0)
    second = queue.claim_item(lease_time=1)
    assert second is not None
    assert second.attempts == 2
    time.sleep(1.2)
    calls: list[str] = []
    bridge.queue_worker(queue.name, max_attempts=2)(calls.append)

    summary = bridge.process_queue(queue.name, factory=factory)

    assert calls == []
    assert (summary.held, summary.processed, summary.failed) == (1, 0, 0)
    [held] = queue.held_items()
    assert held.attempts == 3
    if queue.capabilities.held_details:
        assert (held.hold_reason or "").startswith(
            "attempts exhausted: claimed 3 times, max_attempts is 2"
        )
    if queue.capabilities.keeps_errors:
        assert held.last_error == "MemoryError: out of memory\nTraceback ..."


def test_kicked_items_get_max_attempts_again(
    factory: bridge.QueueFactory, make_queue: MakeQueue
) -> None:
    queue = holding(make_queue(unique()))
    queue.create_item("x")
    calls: list[int] = []

    @bridge.queue_worker(queue.name, max_attempts=2, retry=QUICK)
    def broken(data: str) -> None:
        calls.append(attempts_of_current())
        raise RuntimeError("still broken")

    drain_until(queue.name, factory, lambda: queue.counts().held == 1)
    assert queue.kick() == 1
    drain_until(queue.name, factory, lambda: queue.counts().held == 1)

    if queue.capabilities.kick_resets_attempts:
        assert calls == [1, 2, 1, 2]
    else:  # the store's count goes on; max_attempts counts anew from the kick
        assert calls == [1, 2, 3, 4]


# --- the policy without the runner: a loop of one's own --------------------------


def test_settle_failure_applies_the_queues_settings_in_a_loop_of_ones_own() -> None:
    name = unique()
    factory = bridge.QueueFactory(
        default="memory://",
        queues={name: {"options": {"max_attempts": 2, "retry": {"initial": 0, "factor": 1}}}},
    )
    queue = factory.get(name)
    assert queue.failure_policy == FailurePolicy(2, Backoff(initial=0, factor=1))
    queue.create_item("x")
    outcomes = []
    while (item := queue.claim_item(lease_time=30)) is not None:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as exc:
            outcomes.append(settle_failure(queue, item, exc))
    assert outcomes == ["failed", "held"]
    [held] = queue.held_items()
    assert (held.attempts, held.last_error is not None) == (2, True)
    assert "ConnectionResetError: peer reset" in (held.last_error or "")


def test_settle_failure_reports_a_lost_claim_and_writes_nothing() -> None:
    queue = bridge.QueueFactory(default="memory://").get(unique())
    queue.create_item("x")
    stale = queue.claim_item(lease_time=1)
    assert stale is not None
    queue.release_all()
    fresh = queue.claim_item(lease_time=30)
    assert fresh is not None

    assert settle_failure(queue, stale, RuntimeError("late"), FailurePolicy(1)) == "lost"
    assert settle_failure(queue, stale, RuntimeError("late"), FailurePolicy(5)) == "lost"
    assert queue.counts().held == 0
    assert queue.counts().leased == 1
    assert queue.delete_item(fresh)


def test_max_attempts_none_retries_for_ever_as_drupal_does(
    make_queue: MakeQueue, factory: bridge.QueueFactory
) -> None:
    queue = make_queue(unique())
    if queue.capabilities.shared:
        pytest.skip("hundreds of round trips: the memory backend shows the rule")
    queue.create_item("x")
    calls: list[int] = []

    @bridge.queue_worker(queue.name, max_attempts=None, retry=Backoff(initial=0, factor=1))
    def broken(data: str) -> None:
        calls.append(attempts_of_current())
        raise RuntimeError("again")

    summary = bridge.process_queue(queue.name, time_limit=0.3, factory=factory)

    assert len(calls) > 20
    assert calls == list(range(1, len(calls) + 1))
    assert (summary.held, summary.failed, summary.stopped_by) == (0, len(calls), "time_limit")
    assert queue.counts().held == 0
    assert queue.number_of_items() == 1


def test_every_settled_item_is_reported_once(
    monkeypatch: pytest.MonkeyPatch, make_queue: MakeQueue, factory: bridge.QueueFactory
) -> None:
    queue = holding(make_queue(unique()))
    queue.create_items(["ok", "again", "fail", "hold"])
    reported: list[tuple[str, str]] = []
    monkeypatch.setattr(stats, "record_outcome", lambda q, o: reported.append((q, o)))
    seen: set[str] = set()

    @bridge.queue_worker(queue.name, max_attempts=5)
    def work(data: str) -> None:
        first = data not in seen
        seen.add(data)
        if data == "again" and first:
            raise bridge.Requeue()
        if data == "fail":
            raise RuntimeError("x")
        if data == "hold":
            raise bridge.HoldItem("no")
        if data == "stop":
            raise bridge.SuspendQueue("later")

    summary = bridge.process_queue(queue.name, factory=factory)
    queue.create_item("stop")
    bridge.process_queue(queue.name, factory=factory)

    outcomes = sorted(o for q, o in reported if q == queue.name)
    expected = ["processed", "requeued", "processed", "failed", "held", "released"]
    assert outcomes == sorted(expected)
    assert (summary.processed, summary.requeued, summary.failed, summary.held) == (2, 1, 1, 1)


def test_a_store_that_cannot_hold_refuses_max_attempts_up_front() -> None:
    factory = bridge.QueueFactory(default="memory://")
    name = unique()
    queue = factory.get(name)
    # A store without the Holding role, as a third-party backend may be.
    queue.backend.capabilities = dataclasses.replace(queue.capabilities, hold=False)
    queue.create_item("x")
    calls: list[str] = []
    bridge.queue_worker(name)(calls.append)

    with pytest.raises(UnsupportedOperationError, match="max_attempts=None"):
        bridge.process_queue(name, factory=factory)
    assert calls == []
    assert queue.counts().ready == 1

    workers._registry.clear()
    bridge.queue_worker(name, max_attempts=None)(calls.append)
    assert bridge.process_queue(name, factory=factory).processed == 1


# --- where the policy comes from ---------------------------------------------------


def test_the_policy_comes_from_the_settings_and_a_workers_own_options_win() -> None:
    name, other = unique(), unique()
    factory = bridge.QueueFactory(
        default={"url": "memory://", "options": {"max_attempts": 4}},
        queues={name: {"options": {"retry": {"initial": 5, "factor": 3, "maximum": 600}}}},
    )
    policy = factory.get(name).failure_policy
    assert policy == FailurePolicy(4, Backoff(initial=5, factor=3, maximum=600))
    assert factory.get(other).failure_policy == FailurePolicy(4, None)
    assert bridge.QueueFactory(default="memory://").get(name).failure_policy == FailurePolicy(
        10, None
    )

    bridge.queue_worker(name, max_attempts=2)(lambda d: None)
    assert workers.get_worker(name).failure_policy(policy) == FailurePolicy(2, policy.retry)
    workers._registry.clear()
    bridge.queue_worker(name, retry=None)(lambda d: None)
    assert workers.get_worker(name).failure_policy(policy) == FailurePolicy(4, None)
    workers._registry.clear()
    bridge.queue_worker(name, max_attempts=None, retry=QUICK)(lambda d: None)
    assert workers.get_worker(name).failure_policy(policy) == FailurePolicy(None, QUICK)


def test_the_environment_sets_the_policy_of_every_queue_and_a_queues_own_wins() -> None:
    name = unique()
    environ = {
        "CELERY_CONFIG_MODULE": f"no_celeryconfig_{uuid.uuid4().hex}",
        "BRIDGE_QUEUE_DEFAULT": "memory://",
        "BRIDGE_MAX_ATTEMPTS": "3",
        "BRIDGE_RETRY": '{"initial": 2, "maximum": 60}',
        "BRIDGE_QUEUES": json.dumps({name: {"options": {"max_attempts": None}}}),
    }
    factory = bridge.QueueFactory.from_settings(load_settings(environ))
    assert factory.get(unique()).failure_policy == FailurePolicy(3, Backoff(2, 2, 60))
    assert factory.get(name).failure_policy == FailurePolicy(None, Backoff(2, 2, 60))

    environ.update(BRIDGE_MAX_ATTEMPTS="none", BRIDGE_RETRY="none")
    factory = bridge.QueueFactory.from_settings(load_settings(environ))
    assert factory.get(unique()).failure_policy == FailurePolicy(None, None)


def test_the_celery_config_sets_the_policy_below_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"failconf_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "bridge_queue_default = 'memory://'\n"
        "bridge_max_attempts = 4\n"
        "bridge_retry = {'initial': 3}\n"
        "bridge_outage_tolerance = 7\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = load_settings({"CELERY_CONFIG_MODULE": module})
    assert settings.outage_tolerance == 7.0
    queue = bridge.QueueFactory.from_settings(settings).get(unique())
    assert queue.failure_policy == FailurePolicy(4, Backoff(initial=3))
    settings = load_settings({"CELERY_CONFIG_MODULE": module, "BRIDGE_MAX_ATTEMPTS": "2"})
    queue = bridge.QueueFactory.from_settings(settings).get(unique())
    assert queue.failure_policy == FailurePolicy(2, Backoff(initial=3))


def test_configure_puts_the_environments_policy_under_a_default_given_in_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge import factory as factories

    monkeypatch.setenv("BRIDGE_MAX_ATTEMPTS", "6")
    # configure() replaces the process-wide factory: the test's own go afterwards.
    monkeypatch.setattr(factories, "_factory", None)
    try:
        factory = bridge.configure(default="memory://")
        assert factory.get(unique()).failure_policy.max_attempts == 6
        factory = bridge.configure(default={"url": "memory://", "options": {"max_attempts": 2}})
        assert factory.get(unique()).failure_policy.max_attempts == 2
    finally:
        factory.close()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BRIDGE_MAX_ATTEMPTS": "ten"}, "BRIDGE_MAX_ATTEMPTS must be a whole number"),
        ({"BRIDGE_RETRY": "10s"}, "BRIDGE_RETRY must be a JSON object"),
        ({"BRIDGE_OUTAGE_TOLERANCE": "-1"}, "BRIDGE_OUTAGE_TOLERANCE must be seconds"),
        ({"BRIDGE_OUTAGE_TOLERANCE": "nan"}, "BRIDGE_OUTAGE_TOLERANCE must be seconds"),
    ],
)
def test_bad_environment_settings_say_which(environ: dict[str, str], message: str) -> None:
    environ["CELERY_CONFIG_MODULE"] = f"no_celeryconfig_{uuid.uuid4().hex}"
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int of 1 or more"),
        ({"max_attempts": "3"}, "max_attempts must be an int of 1 or more"),
        ({"retry": 10}, "retry must be a mapping"),
        ({"retry": {"initial": 1, "step": 2}}, r"unknown keys \['step'\]"),
        ({"retry": {"initial": 10, "maximum": 5}}, "Backoff maximum must be from 10"),
        ({"retry": {"factor": 0.5}}, "Backoff factor must be from 1"),
    ],
)
def test_bad_queue_settings_name_the_queue(options: dict[str, Any], message: str) -> None:
    factory = bridge.QueueFactory(default="memory://", queues={"emails": {"options": options}})
    with pytest.raises(ConfigurationError, match=message) as raised:
        factory.get("emails")
    assert "'emails'" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int of 1 or more"),
        ({"max_attempts": True}, "max_attempts must be an int of 1 or more"),
        ({"retry": {"initial": 1}}, "retry must be a bridge.Backoff or None"),
    ],
)
def test_queue_worker_refuses_a_bad_policy(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        bridge.queue_worker(unique(), **options)


def test_the_outage_tolerance_comes_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_OUTAGE_TOLERANCE", "12.5")
    assert load_settings().outage_tolerance == 12.5
    monkeypatch.delenv("BRIDGE_OUTAGE_TOLERANCE")
    assert load_settings().outage_tolerance == 30.0
    name = unique()
    bridge.queue_worker(name)(lambda d: None)
    with pytest.raises(InvalidArgumentError, match="outage_tolerance"):
        bridge.process_queue(name, outage_tolerance=-1, factory=bridge.QueueFactory("memory://"))


# --- Backoff and stored errors --------------------------------------------------------


def test_backoff_doubles_from_initial_up_to_maximum() -> None:
    backoff = Backoff(initial=10, factor=2, maximum=3600, jitter=0)
    assert [backoff.delay(n) for n in range(1, 11)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        1280,
        2560,
        3600,
    ]
    assert backoff.delay(10**6) == 3600, "no overflow on a huge attempt count"
    assert Backoff(initial=7, factor=1, jitter=0).delay(50) == 7


def test_backoff_jitter_spreads_within_its_fraction_and_never_past_maximum() -> None:
    backoff = Backoff(initial=10, factor=2, maximum=100, jitter=0.1)
    rng = random.Random(1)
    for attempt, base in ((1, 10.0), (2, 20.0), (3, 40.0), (8, 100.0)):
        seen = [backoff.delay(attempt, rng) for _ in range(2000)]
        assert min(seen) >= base * 0.9
        assert max(seen) <= min(base * 1.1, 100.0)
        assert max(seen) - min(seen) > base * 0.09, "the jitter spreads them"


@pytest.mark.parametrize(
    "fields",
    [
        {"initial": -1},
        {"initial": float("nan")},
        {"factor": 0.9},
        {"maximum": 2**31},
        {"jitter": 1.5},
        {"initial": True},
    ],
)
def test_backoff_refuses_values_it_cannot_use(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        Backoff(**fields)


def test_a_stored_error_has_type_message_cause_and_the_innermost_frames() -> None:
    def level(n: int) -> None:
        if n == 0:
            try:
                int("x")
            except ValueError as exc:
                raise failures.HoldItem("multi\nline") from exc
            return
        level(n - 1)

    try:
        level(10)
    except HoldItem as exc:
        text = format_error(exc)
    lines = text.splitlines()
    assert lines[0] == "bridge.failures.HoldItem: multi [...]"
    assert lines[1] == "caused by ValueError: invalid literal for int() with base 10: 'x'"
    assert lines[2].startswith("Traceback (most recent call last, innermost 5 of 12)")
    assert lines[-2].endswith(", in level")
    assert lines[-1].strip() == 'raise failures.HoldItem("multi\\nline") from exc'
    assert "test_a_stored_error" not in text, "the outer frames are cut"

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert format_error(Unprintable()).endswith(".Unprintable: <unprintable>")
    assert format_error(KeyError()) == "KeyError"


def test_a_long_error_is_capped_head_and_tail_by_the_queue() -> None:
    queue = bridge.QueueFactory(default="memory://").get(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    settle_failure(queue, item, RuntimeError("y" * 10_000), FailurePolicy(5))
    assert item.last_error is not None
    assert len(item.last_error) <= 4000
    assert item.last_error.startswith("RuntimeError: yyy")
    assert "characters cut" in item.last_error
    assert item.last_error.endswith("y" * 1000)
