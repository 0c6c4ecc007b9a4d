"""The runner: claims items, calls their queue's worker, settles each outcome.

:func:`process_queue` is ``drush queue:run``: one queue, optional time and
item limits. :func:`run_cron` is Drupal 10.1+ ``Cron::processQueues``: every
worker that has a ``cron_time`` runs for at most that many seconds (checked
before each claim, so a slow item may overrun it) with that lease, unless
``lease_time`` says otherwise, and a queue suspended with a short delay is
revisited in the same run. Both share one pass loop, :func:`_run_pass`.

How a worker's outcome becomes a queue call, as in Drupal's
``Cron::processQueue`` except for failures:

- returns: the item is deleted (counted ``processed``, or ``lost`` when the
  lease ran out meanwhile and another claimer holds the item now);
- raises :class:`~bridge.workers.Requeue`: released, so it is claimed again
  in the same pass (only the time budget bounds a worker that always
  requeues, as in Drupal);
- raises :class:`~bridge.workers.DelayedRequeue`: claimable again ``delay``
  s from now; a delay past the backend's longest is clamped to it, and on a
  backend that cannot delay the item stays leased until its lease ends, as in
  Drupal (counted ``kept_leased``, never ``delayed``): an outcome the backend
  cannot honour never ends the pass;
- raises :class:`~bridge.workers.SuspendQueue`: released, and the queue
  stops for this run;
- raises an interrupt (``interrupts=``, Celery's soft time limit): released,
  and the run ends;
- raises :class:`~bridge.failures.HoldItem`: held at once (``held``);
- raises any other ``Exception``: settled by the queue's failure policy
  (:func:`bridge.failures.settle_failure`): the error is stored with the
  item, which comes back after the ``retry`` backoff or when its lease ends
  (``failed``), or is held when that was attempt ``max_attempts`` (``held``).

An item claimed more often than ``max_attempts`` (its earlier claims died
with their process) is held without running the worker. Every settled item
is reported once to :func:`bridge.stats.record_outcome`.

:func:`_settle` is the one place that turns an outcome into a queue call, so
a new outcome is one branch there. When the pass goes on after an item (no
limit is reached by counting it, and the outcome does not stop the pass),
that call is :meth:`~bridge.Queue.settle_and_claim`: the item's settlement
and the next claim in one round trip, so a pass of N items makes N + 1 calls
(the first claim, then one per item, the last claiming nothing). The last
item before a limit, a suspension or an interrupt is settled alone.

A pass rides out a short outage: a round trip that fails with
:class:`~bridge.errors.BackendUnavailableError` is retried with backoff for
up to ``outage_tolerance`` seconds (``BRIDGE_OUTAGE_TOLERANCE``), and never
past the lease of the item in hand, after which another claimer may have
it. Past that, the pass stops (``stopped_by="backend unavailable"``, the
error in ``error``), and the item in hand comes back when its lease ends.
A retried settlement that finds its claim gone counts as done, not lost, on
a store whose claims end only with their lease: within the lease, only the
try that failed can have settled it (see :class:`_RoundTrips`).

A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``,
``SystemExit``) is not caught: the run stops and the item comes back when its
lease expires, which is also what happens when a process is killed mid-item.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from bridge import stats
from bridge.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    UnsupportedOperationError,
)
from bridge.factory import QueueFactory, get_queue
from bridge.failures import FailurePolicy, decide_failure, exhausted, feasible_delay
from bridge.items import QueueItem, Settlement
from bridge.queue import Queue
from bridge.settings import load_settings
from bridge.workers import (
    DelayedRequeue,
    QueueWorker,
    Requeue,
    SuspendQueue,
    current_item_var,
    get_worker,
    positive_seconds,
    registered_workers,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LEASE_TIME = 30.0
"""The lease of ``process_queue`` when neither the call nor the worker sets one (drush's)."""
OUTAGE_FIRST_PAUSE = 0.25
OUTAGE_LONGEST_PAUSE = 1.0
"""Pauses between retries of a round trip during an outage, doubling from the first:
a Redis restart answers again within a second, a PostgreSQL or RabbitMQ one in a few."""

StopReason = Literal[
    "empty",
    "time_limit",
    "items_limit",
    "suspended",
    "interrupted",
    "shutdown",
    "backend unavailable",
    "running",
]
ShouldStop = Callable[[], bool]
"""Asked before each claim; True ends the pass (``stopped_by="shutdown"``)."""
Interrupts = tuple[type[BaseException], ...]
"""Exceptions that end a run at once, their item released (a Celery soft time limit)."""
OUTCOMES = ("processed", "requeued", "delayed", "kept_leased", "failed", "held", "lost")
"""What a settled item counts as in a :class:`Summary`. :func:`bridge.stats.record_outcome`
receives these, and ``released`` for an item a suspension or an interrupt handed back."""


@dataclass(frozen=True)
class Summary:
    """What one pass over one queue did.

    ``processed`` items were deleted after the worker succeeded; ``lost``
    items succeeded (or were released, delayed, failed or held) after their
    lease had been lost to another claimer, so the call found someone else's
    claim. ``delayed`` counts only delays the backend made; ``kept_leased``
    counts items whose worker asked for a delay the backend cannot make at
    all, left leased until their lease ends instead. ``failed`` counts
    failed attempts whose item comes back (its error stored); ``held``
    counts items set aside (``HoldItem``, the last of ``max_attempts``, or
    attempts exhausted by crashes). ``error`` says why a pass stopped with
    ``stopped_by="backend unavailable"``. ``stopped_by`` is ``"running"``
    only in the summaries handed to a ``progress`` callback before the pass
    ends.
    """

    queue: str
    processed: int = 0
    requeued: int = 0
    delayed: int = 0
    kept_leased: int = 0
    failed: int = 0
    held: int = 0
    lost: int = 0
    suspended: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    stopped_by: StopReason = "running"

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        return dataclasses.asdict(self)


class _Unavailable(Exception):
    """A round trip kept failing past the outage tolerance: the pass stops."""


@dataclass
class _Tally:
    """The running counts of one pass; frozen into a :class:`Summary`."""

    queue: str
    started: float = dataclasses.field(default_factory=time.monotonic)
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    suspension: SuspendQueue | None = None
    error: str | None = None

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1
        stats.record_outcome(self.queue, outcome)

    def settled(self, still_ours: bool, outcome: str, item: QueueItem) -> None:
        if not still_ours:
            # The worker outlived its lease and the item was claimed again:
            # the other claimer's outcome stands, ours is dropped.
            logger.warning(
                "Lost the lease on item %s of queue %s before it could be %s; "
                "it is held by another claimer.",
                item.item_id,
                self.queue,
                outcome,
            )
            outcome = "lost"
        self.add(outcome)

    def stop_reason(
        self,
        time_limit: float | None,
        items_limit: int | None,
        should_stop: ShouldStop | None = None,
        counting: str | None = None,
    ) -> StopReason | None:
        """Why the pass must claim no more, if it must; ``counting``: as if the item
        in hand were already counted as that outcome."""
        if should_stop is not None and should_stop():
            return "shutdown"
        if time_limit is not None and time.monotonic() - self.started >= time_limit:
            return "time_limit"
        processed = self.counts["processed"] + (counting == "processed")
        if items_limit is not None and processed >= items_limit:
            return "items_limit"
        return None

    def summary(self, stopped_by: StopReason) -> Summary:
        suspended = str(self.suspension) if self.suspension is not None else None
        return Summary(
            queue=self.queue,
            suspended=suspended,
            error=self.error,
            elapsed=time.monotonic() - self.started,
            stopped_by=stopped_by,
            **self.counts,
        )


@dataclass
class _RoundTrips:
    """The pass's calls to its queue, each retried through a short outage.

    A call failing with :class:`BackendUnavailableError` is tried again
    after a pause that doubles up to :data:`OUTAGE_LONGEST_PAUSE`, until
    ``tolerance`` seconds have passed; with an item in hand, never past its
    lease (another claimer may hold it by then, and our call could only find
    it lost), and without one, never past the pass's time budget, nor once
    ``should_stop`` says so. Retrying is safe: a claim whose answer was lost
    leaves an item leased to nobody until its lease ends; a settling call
    that did reach the store finds its claim gone the second time.

    That is also how a settle-and-claim is retried, on either kind of store.
    All or nothing (``capabilities.settle_and_claim``): the try that failed
    did nothing, or did everything and only its answer was lost. Two calls
    (the contract's default): it may have settled the item and then failed
    to claim. Either way the retry settles again, which changes nothing if
    the first try had settled, and reports the claim gone; :meth:`tried`
    says that a retry answered, so that :func:`_send` counts such an item
    as settled rather than lost.
    """

    queue: Queue
    tolerance: float
    should_stop: ShouldStop | None = None
    budget_ends: float | None = None

    def __call__(
        self, what: str, call: Callable[[], T], item: QueueItem | None = None, patient: bool = True
    ) -> T:
        """``call()``, retried through an outage; ``_Unavailable`` once past the bound."""
        return self.tried(what, call, item, patient)[0]

    def tried(
        self,
        what: str,
        call: Callable[[], T],
        item: QueueItem | None = None,
        patient: bool = True,
        note: str = "",
    ) -> tuple[T, bool]:
        """As calling this object, and whether the answer came from a retry.

        ``note`` ends the error of a pass that gives up, after what becomes
        of the item in hand.
        """
        try:
            return call(), False
        except BackendUnavailableError as exc:
            # Only a failed call pays for the clock readings below.
            return self._ride_out(what, call, item, patient, exc, note), True

    def _ride_out(
        self,
        what: str,
        call: Callable[[], T],
        item: QueueItem | None,
        patient: bool,
        failed: BackendUnavailableError,
        note: str,
    ) -> T:
        started = time.monotonic()
        deadline = started + (self.tolerance if patient else 0.0)
        if item is not None:
            deadline = min(deadline, started + item.expire - time.time())
        elif self.budget_ends is not None:
            deadline = min(deadline, self.budget_ends)
        left = deadline - started
        if left > 0:
            logger.warning(
                "Queue %s: could not %s (%s); retrying for up to %.3g s.",
                self.queue.name,
                what,
                failed,
                left,
            )
        pause = OUTAGE_FIRST_PAUSE
        while True:
            stopping = item is None and self.should_stop is not None and self.should_stop()
            if left <= 0 or stopping:
                raise _Unavailable(self._gave_up(what, item, failed, started) + note) from failed
            time.sleep(min(pause * random.uniform(0.8, 1.2), left))
            pause = min(pause * 2, OUTAGE_LONGEST_PAUSE)
            try:
                answer = call()
            except BackendUnavailableError as exc:
                failed, left = exc, deadline - time.monotonic()
                continue
            logger.warning(
                "Queue %s: the store answered again after %.2f s.",
                self.queue.name,
                time.monotonic() - started,
            )
            return answer

    def _gave_up(
        self, what: str, item: QueueItem | None, exc: BackendUnavailableError, started: float
    ) -> str:
        waited = time.monotonic() - started
        text = f"could not {what} on {self.queue.backend.url} for {waited:.1f} s: {exc}"
        if item is not None:
            text += f"; item {item.item_id!r} comes back when its lease ends"
        return text


def _call(worker: QueueWorker, item: QueueItem, interrupts: Interrupts) -> BaseException | None:
    """Run the worker on one item; the Exception (or interrupt) it raised, if any."""
    token = current_item_var.set(item)
    try:
        worker.callback(item.data)
    except interrupts as exc:
        return exc
    except Exception as exc:
        return exc
    finally:
        current_item_var.reset(token)
    return None


NextLease = Callable[[str], float | None]
"""Given what the item in hand will count as: the lease to claim the next item with,
in the same call as its settlement, or None when the pass stops after this item."""
_TWO_CALLS = (
    " (unless its settlement was done before the claim failed: this store settles "
    "and claims in two calls)"
)


def _settle(
    trips: _RoundTrips,
    item: QueueItem,
    outcome: BaseException | None,
    tally: _Tally,
    plan: _Plan,
    next_lease: NextLease,
) -> tuple[StopReason | None, list[QueueItem] | None]:
    """Turn the worker's outcome into a queue call: why the pass must stop, if it must,
    and the items that call claimed, if it claimed (None: it made no claim)."""
    queue, interrupts = trips.queue, plan.interrupts
    if outcome is None:
        delete = Settlement.delete(item)
        return None, _send_counted(trips, delete, "delete an item", "processed", tally, next_lease)
    if isinstance(outcome, interrupts):
        # Settled alone, as the run ends. No patience: an interrupt means the
        # process is about to stop, and the lease brings the item back if
        # this one call fails.
        trips("release an item", lambda: queue.release_item(item), item, patient=False)
        stats.record_outcome(queue.name, "released")
        logger.warning(
            "Interrupted on item %s of queue %s (%s); released it.",
            item.item_id,
            queue.name,
            type(outcome).__name__,
        )
        return "interrupted", None
    if isinstance(outcome, SuspendQueue):
        trips("release an item", lambda: queue.release_item(item), item)
        stats.record_outcome(queue.name, "released")
        logger.debug("A worker for %s queue suspended further processing of the queue.", queue.name)
        tally.suspension = outcome
        return "suspended", None
    if isinstance(outcome, DelayedRequeue):
        return None, _delay(trips, item, outcome.delay, tally, next_lease)
    if isinstance(outcome, Requeue):
        release = Settlement.release(item)
        return None, _send_counted(trips, release, "release an item", "requeued", tally, next_lease)
    # HoldItem, attempts exhausted, and any other exception: the policy
    # decides, and logs the failure or the hold once the store has answered.
    decided = decide_failure(queue, item, outcome, plan.policy)
    settled, claimed = _send(
        trips, decided.settlement, "settle a failed item", next_lease(decided.outcome)
    )
    tally.add(decided.report(queue, settled))
    return None, claimed


def _delay(
    trips: _RoundTrips, item: QueueItem, seconds: float, tally: _Tally, next_lease: NextLease
) -> list[QueueItem] | None:
    """Settle a ``DelayedRequeue``: delayed as asked, or as near as the backend allows."""
    queue = trips.queue
    delay = feasible_delay(queue, item, seconds)
    if delay is None:
        tally.add("kept_leased")
        return None
    if not queue.capabilities.delay:
        # A delay of 0 is a release, which every backend can do.
        release = Settlement.release(item)
        return _send_counted(trips, release, "release an item", "requeued", tally, next_lease)
    try:
        settled, claimed = _send(
            trips, Settlement.delay_by(item, delay), "delay an item", next_lease("delayed")
        )
    except (InvalidArgumentError, UnsupportedOperationError) as exc:
        # A limit the backend enforces without declaring it in its
        # capabilities: refused before anything changed (a settle-and-claim
        # settles before it claims), so the item is still leased to us, and
        # one item must not end the pass.
        logger.warning(
            "Queue %s refused to delay item %s by %g s (%s); it stays leased until its lease ends.",
            queue.name,
            item.item_id,
            delay,
            exc,
        )
        tally.add("kept_leased")
        return None
    tally.settled(settled, "delayed", item)
    return claimed


def _send_counted(
    trips: _RoundTrips,
    settlement: Settlement,
    what: str,
    outcome: str,
    tally: _Tally,
    next_lease: NextLease,
) -> list[QueueItem] | None:
    """:func:`_send`, then the item counted as ``outcome``, or ``lost``."""
    settled, claimed = _send(trips, settlement, what, next_lease(outcome))
    tally.settled(settled, outcome, settlement.item)
    return claimed


def _send(
    trips: _RoundTrips, settlement: Settlement, what: str, lease: float | None
) -> tuple[bool, list[QueueItem] | None]:
    """Send a settlement, with the claim of the next item when ``lease`` is given.

    One round trip either way: ``settle_and_claim`` (count 1), or the
    settlement's own call when the pass claims no more. Returns whether the
    item was still ours, and the items claimed (None when no claim was made).
    """
    queue, item = trips.queue, settlement.item
    claimed: list[QueueItem] | None = None
    if lease is None:
        settled, retried = trips.tried(what, lambda: queue.settle(settlement), item)
    else:
        note = "" if queue.capabilities.settle_and_claim else _TWO_CALLS
        (settled, claimed), retried = trips.tried(
            f"{what} and claim the next",
            lambda: queue.settle_and_claim(settlement, 1, lease),
            item,
            note=note,
        )
    if retried and not settled and queue.capabilities.crash_recovery == "lease":
        # The retries never outlast the item's lease, and on this store only
        # the lease's end hands the item to another claimer: the try that
        # failed is what settled it, its answer lost in the outage. (On a
        # store that hands back a dropped connection's items, the claim is
        # gone with the connection: lost, and the broker gives the item again.)
        logger.info(
            "Queue %s: the retry found item %s already settled by the try that failed.",
            queue.name,
            item.item_id,
        )
        settled = True
    return settled, claimed


def _hand_back(trips: _RoundTrips, item: QueueItem) -> None:
    """Release an item claimed with the last settlement whose worker never started."""
    queue = trips.queue
    try:
        trips("release an item", lambda: queue.release_item(item), item, patient=False)
    except _Unavailable:
        return  # its lease brings it back
    stats.record_outcome(queue.name, "released")
    logger.warning(
        "Interrupted before item %s of queue %s was worked on; released it.",
        item.item_id,
        queue.name,
    )


def _work_on(
    trips: _RoundTrips, item: QueueItem, tally: _Tally, plan: _Plan, next_lease: NextLease
) -> tuple[StopReason | None, QueueItem | None]:
    """Run the worker on one claimed item and settle the outcome: why the pass stops, if
    it does, and the next item, if the settling call claimed one."""
    # An item claimed past max_attempts is held as it is: its worker
    # killed the process on each of those claims.
    outcome: BaseException | None = exhausted(item, plan.policy, plan.queue)
    if outcome is None:
        outcome = _call(plan.worker, item, plan.interrupts)
    stop, claimed = _settle(trips, item, outcome, tally, plan, next_lease)
    if claimed:
        return stop, claimed[0]
    if claimed is not None and stop is None:
        return "empty", None  # the claim that travelled with the settlement found none
    return stop, None


def _feasible_lease(queue: Queue, seconds: float) -> float:
    """The lease to claim with: ``seconds``, or the backend's longest when that is shorter.

    A worker's lease comes from its ``cron_time`` or ``lease_time``, set without
    knowing the store; a store with a shorter limit (SQS's 12 h, RabbitMQ's
    ``max_lease``) would refuse every claim, so the pass claims for as long as
    the store allows and says so once.
    """
    most = queue.capabilities.max_lease
    if most is None or seconds <= most:
        return seconds
    logger.warning(
        "Queue %s on %s leases items at most %g s; claiming for that long instead of %g s.",
        queue.name,
        queue.backend.url,
        most,
        seconds,
    )
    return float(most)


def _policy(queue: Queue, worker: QueueWorker) -> FailurePolicy:
    """The failure policy of the worker's items, refused where the store cannot hold."""
    policy = worker.failure_policy(queue.failure_policy)
    if policy.max_attempts is not None and not queue.capabilities.hold:
        raise UnsupportedOperationError(
            f"queue {queue.name!r} on {queue.backend.url} cannot hold items, so "
            f"max_attempts={policy.max_attempts} cannot be kept; set max_attempts=None "
            "(in the queue's settings or its worker) to retry failed items for ever, "
            "as Drupal does"
        )
    return policy


@dataclass(frozen=True)
class _Plan:
    """What a pass over one queue works with, fixed before it starts."""

    queue: Queue
    worker: QueueWorker
    policy: FailurePolicy
    lease: float
    tolerance: float
    interrupts: Interrupts


def _run_pass(
    plan: _Plan,
    limits: tuple[float | None, int | None, ShouldStop | None],
    progress: Callable[[Summary], object] | None,
    housekeeping: bool = False,
) -> tuple[Summary, SuspendQueue | None]:
    """Claim and process items until the queue is empty, a limit is hit or it suspends.

    The limits (time, items, should_stop) are checked before each claim, never during an
    item: stopping a worker midway would leave its item leased for nothing.
    The claim after an item travels with its settlement (:func:`_send`), so
    they are checked before that call, counting the item as its outcome.
    An interrupt does stop it midway, and releases the item first.
    ``housekeeping`` runs the queue's garbage collection first.
    """
    queue, interrupts = plan.queue, plan.interrupts
    tally = _Tally(queue.name)
    budget = limits[0]
    trips = _RoundTrips(
        queue, plan.tolerance, limits[2], None if budget is None else tally.started + budget
    )
    lease_time = _feasible_lease(queue, plan.lease)

    def next_lease(counting: str) -> float | None:
        return lease_time if tally.stop_reason(*limits, counting=counting) is None else None

    stop: StopReason | None = None
    item: QueueItem | None = None
    """Claimed and not yet worked on: handed back if an interrupt comes first."""
    try:
        if housekeeping:
            # As drush does, so expired leases and delays are reset first on
            # backends whose housekeeping does more than claims need.
            trips("collect garbage", queue.garbage_collection)
        stop = tally.stop_reason(*limits)
        while stop is None:
            if item is None:
                item = trips("claim an item", lambda: queue.claim_item(lease_time))
                if item is None:
                    stop = "empty"
                    continue
            working, item = item, None
            stop, item = _work_on(trips, working, tally, plan, next_lease)
            if progress is not None and stop != "interrupted":
                progress(tally.summary("running"))
            if stop is None and item is None:
                stop = tally.stop_reason(*limits)
    except interrupts:
        # Raised outside the worker (in a claim, a settlement, a progress
        # report): an item settled or claimed by the call that was cut short
        # comes back when its lease ends; one claimed and not yet started is
        # handed back now.
        stop = "interrupted"
        if item is not None:
            _hand_back(trips, item)
    except _Unavailable as exc:
        stop = "backend unavailable"
        tally.error = str(exc)
        logger.error("Queue %s: stopping the pass: %s", queue.name, exc)
    summary = tally.summary(stop)
    logger.info(
        "Processed %d items from the %s queue in %.2f sec (stopped by %s)%s.",
        summary.processed,
        queue.name,
        summary.elapsed,
        stop,
        f"; {summary.failed} failed, {summary.held} held" if summary.failed or summary.held else "",
    )
    return summary, tally.suspension


def _limit(what: str, value: float | None) -> float | None:
    """None or 0 mean no limit, as in drush; negative values are refused."""
    if value is None or (not isinstance(value, bool) and value == 0):
        return None
    return positive_seconds(what, value)


def _items_limit(value: int | None) -> int | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"items_limit must be an int of 0 or more, not {value!r}")
    return value


def _tolerance(value: float | None) -> float:
    """``outage_tolerance``: the argument, else ``BRIDGE_OUTAGE_TOLERANCE``; 0 retries nothing."""
    if value is None:
        return load_settings().outage_tolerance
    if value == 0 and not isinstance(value, bool):
        return 0.0
    seconds = positive_seconds("outage_tolerance", value)
    assert seconds is not None
    return seconds


def _queue(name: str, factory: QueueFactory | None) -> Queue:
    return factory.get(name) if factory is not None else get_queue(name)


def process_queue(
    name: str,
    time_limit: float | None = None,
    items_limit: int | None = None,
    lease_time: float | None = None,
    *,
    factory: QueueFactory | None = None,
    progress: Callable[[Summary], object] | None = None,
    interrupts: Interrupts = (),
    should_stop: ShouldStop | None = None,
    outage_tolerance: float | None = None,
) -> Summary:
    """Run the worker of queue ``name`` over its items: ``drush queue:run``.

    ``time_limit`` (seconds) and ``items_limit`` (successful items) bound the
    run; None or 0 means no limit. The lease is ``lease_time``, else the
    worker's ``lease_time``, else its ``cron_time``, else 30 s. A worker that
    suspends the queue ends the run; the summary says so (nothing is raised).
    ``progress`` receives the running summary after each item. An exception
    of a type in ``interrupts`` raised by the worker releases its item and
    ends the run (``stopped_by="interrupted"``): Celery passes its soft time
    limit here. ``should_stop`` is asked before each claim; once it says True the
    pass claims nothing more (``stopped_by="shutdown"``).

    A store that cannot be reached is retried for ``outage_tolerance``
    seconds (default ``BRIDGE_OUTAGE_TOLERANCE``, 30 s; 0: not at all), then
    the pass stops (``stopped_by="backend unavailable"``, the error in
    ``error``). Failed items are settled by the queue's failure policy with
    the worker's own ``max_attempts`` and ``retry`` over it; a policy with
    ``max_attempts`` on a store that cannot hold items is refused up front
    (:class:`~bridge.errors.UnsupportedOperationError`).
    """
    summary, _ = run_queue_pass(
        name,
        time_limit,
        items_limit,
        lease_time,
        factory=factory,
        progress=progress,
        interrupts=interrupts,
        should_stop=should_stop,
        outage_tolerance=outage_tolerance,
    )
    return summary


def run_queue_pass(
    name: str,
    time_limit: float | None = None,
    items_limit: int | None = None,
    lease_time: float | None = None,
    *,
    factory: QueueFactory | None = None,
    progress: Callable[[Summary], object] | None = None,
    interrupts: Interrupts = (),
    should_stop: ShouldStop | None = None,
    outage_tolerance: float | None = None,
) -> tuple[Summary, SuspendQueue | None]:
    """:func:`process_queue`, and the :class:`~bridge.workers.SuspendQueue` that ended
    the pass if one did: ``bridge queue watch`` pauses the queue for its ``delay``."""
    worker = get_worker(name)
    budget = _limit("time_limit", time_limit)
    max_items = _items_limit(items_limit)
    lease = positive_seconds("lease_time", lease_time) or worker.cron_lease or DEFAULT_LEASE_TIME
    tolerance = _tolerance(outage_tolerance)
    queue = _queue(name, factory)
    plan = _Plan(queue, worker, _policy(queue, worker), lease, tolerance, interrupts)
    return _run_pass(plan, (budget, max_items, should_stop), progress, housekeeping=True)


@dataclass
class _CronEntry:
    plan: _Plan
    budget: float
    process_from: float = 0.0


def run_cron(
    *,
    factory: QueueFactory | None = None,
    max_wait: float = 30.0,
    interrupts: Interrupts = (),
    should_stop: ShouldStop | None = None,
    outage_tolerance: float | None = None,
) -> list[Summary]:
    """Run every cron worker once, in registration order: ``Cron::processQueues``.

    Each queue gets ``cron_time`` seconds (a fresh budget each visit) and
    claims with the worker's cron lease. A queue suspended with a delay below
    ``max_wait`` seconds is revisited after that delay in this same call;
    queues wait in order of when they may run next. Returns one summary per
    pass, so a revisited queue appears more than once. An interrupt (see
    :func:`process_queue`) ends the whole run after releasing its item, and so
    does ``should_stop``, asked before each claim and each revisit. A store
    that stays unreachable past ``outage_tolerance`` (see
    :func:`process_queue`) ends the passes of every queue it serves, each
    with its own summary; queues on other stores still run.
    """
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or max_wait < 0:
        raise InvalidArgumentError(f"max_wait must be 0 or more seconds, not {max_wait!r}")
    tolerance = _tolerance(outage_tolerance)
    entries = []
    for worker in registered_workers().values():
        if worker.cron_time is None or worker.cron_lease is None:
            continue
        queue = _queue(worker.name, factory)
        plan = _Plan(
            queue, worker, _policy(queue, worker), worker.cron_lease, tolerance, interrupts
        )
        entries.append(_CronEntry(plan, worker.cron_time))
    summaries: list[Summary] = []
    down: dict[int, str] = {}
    """The stores found unreachable in this run, by id, with the error."""
    for entry in list(entries):
        queue = entry.plan.queue
        trips = _RoundTrips(queue, tolerance if id(queue.backend) not in down else 0.0)
        try:
            trips("create the queue", queue.create_queue)
            trips("collect garbage", queue.garbage_collection)
        except _Unavailable as exc:
            down.setdefault(id(queue.backend), str(exc))
    stopping = should_stop or (lambda: False)
    while entries:
        entry = entries.pop(0)
        queue = entry.plan.queue
        if id(queue.backend) in down:
            summaries.append(_unavailable(queue.name, down[id(queue.backend)]))
            continue
        # Drupal truncates this sleep to whole seconds; a 0.3 s delay means 0.3 s here.
        # Slept in slices, so that a shutdown does not wait out a revisit.
        while (wait := entry.process_from - time.monotonic()) > 0 and not stopping():
            time.sleep(min(wait, 0.25))
        if stopping():
            break
        summary, suspension = _run_pass(entry.plan, (entry.budget, None, should_stop), None)
        summaries.append(summary)
        if summary.stopped_by in ("interrupted", "shutdown"):
            break
        if summary.stopped_by == "backend unavailable":
            down[id(queue.backend)] = summary.error or "unavailable"
        delay = suspension.delay if suspension is not None else None
        if delay is not None and delay < max_wait:
            entry.process_from = time.monotonic() + delay
            entries.append(entry)
        # Stable, so queues due at the same time keep registration order.
        entries.sort(key=lambda e: e.process_from)
    return summaries


def _unavailable(name: str, error: str) -> Summary:
    """The summary of a cron queue skipped because its store was found unreachable."""
    logger.error("Queue %s: not run, its store is unavailable: %s", name, error)
    return Summary(name, error=error, stopped_by="backend unavailable")
