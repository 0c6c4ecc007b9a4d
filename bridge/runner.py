"""The runner: claims items, calls their queue's worker, settles each outcome.

:func:`process_queue` is ``drush queue:run``: one queue, optional time and
item limits. :func:`run_cron` is Drupal 10.1+ ``Cron::processQueues``: every
worker that has a ``cron_time`` runs for at most that many seconds (checked
before each claim, so a slow item may overrun it) with that lease, unless
``lease_time`` says otherwise, and a queue suspended with a short delay is
revisited in the same run. Both share one pass loop, :func:`_run_pass`.

How a worker's outcome becomes a queue call, as in Drupal's
``Cron::processQueue``:

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
- raises any other ``Exception``: logged at ERROR with its traceback; the item
  stays leased until its lease expires, then is claimable again, and its
  ``attempts`` tell how often it was tried.

:func:`_settle` is the one place that turns an outcome into a queue call, so
a new outcome is one branch there. The runner uses only the core queue
operations of the :class:`~bridge.queue.Queue` facade (claim, delete,
release, delay, garbage collection).

A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``,
``SystemExit``) is not caught: the run stops and the item comes back when its
lease expires, which is also what happens when a process is killed mid-item.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.contract import MAX_SECONDS
from bridge.errors import InvalidArgumentError, UnsupportedOperationError
from bridge.factory import QueueFactory, get_queue
from bridge.items import QueueItem
from bridge.queue import Queue
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

DEFAULT_LEASE_TIME = 30.0
"""The lease of ``process_queue`` when neither the call nor the worker sets one (drush's)."""

StopReason = Literal[
    "empty", "time_limit", "items_limit", "suspended", "interrupted", "shutdown", "running"
]
ShouldStop = Callable[[], bool]
"""Asked before each claim; True ends the pass (``stopped_by="shutdown"``)."""
Interrupts = tuple[type[BaseException], ...]
"""Exceptions that end a run at once, their item released (a Celery soft time limit)."""


@dataclass(frozen=True)
class Summary:
    """What one pass over one queue did.

    ``processed`` items were deleted after the worker succeeded; ``lost``
    items succeeded (or were released or delayed) after their lease had been
    lost to another claimer, so the call found someone else's claim.
    ``delayed`` counts only delays the backend made; ``kept_leased`` counts
    items whose worker asked for a delay the backend cannot make at all,
    left leased until their lease ends instead. ``failed`` counts other
    exceptions. ``stopped_by`` is ``"running"`` only in the
    summaries handed to a ``progress`` callback before the pass ends.
    """

    queue: str
    processed: int = 0
    requeued: int = 0
    delayed: int = 0
    kept_leased: int = 0
    failed: int = 0
    lost: int = 0
    suspended: str | None = None
    elapsed: float = 0.0
    stopped_by: StopReason = "running"

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        return dataclasses.asdict(self)


@dataclass
class _Tally:
    """The running counts of one pass; frozen into a :class:`Summary`."""

    queue: str
    started: float = dataclasses.field(default_factory=time.monotonic)
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(
            ("processed", "requeued", "delayed", "kept_leased", "failed", "lost"), 0
        )
    )
    suspension: SuspendQueue | None = None

    def add(self, held: bool, outcome: str, item: QueueItem) -> None:
        if not held:
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
        self.counts[outcome] += 1

    def stop_reason(
        self,
        time_limit: float | None,
        items_limit: int | None,
        should_stop: ShouldStop | None = None,
    ) -> StopReason | None:
        if should_stop is not None and should_stop():
            return "shutdown"
        if time_limit is not None and time.monotonic() - self.started >= time_limit:
            return "time_limit"
        if items_limit is not None and self.counts["processed"] >= items_limit:
            return "items_limit"
        return None

    def summary(self, stopped_by: StopReason) -> Summary:
        suspended = str(self.suspension) if self.suspension is not None else None
        return Summary(
            queue=self.queue,
            suspended=suspended,
            elapsed=time.monotonic() - self.started,
            stopped_by=stopped_by,
            **self.counts,
        )


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


def _settle(
    queue: Queue,
    item: QueueItem,
    outcome: BaseException | None,
    tally: _Tally,
    interrupts: Interrupts,
) -> StopReason | None:
    """Turn the worker's outcome into a queue call; why the pass must stop, if it must."""
    if outcome is None:
        tally.add(queue.delete_item(item), "processed", item)
    elif isinstance(outcome, interrupts):
        queue.release_item(item)
        logger.warning(
            "Interrupted on item %s of queue %s (%s); released it.",
            item.item_id,
            queue.name,
            type(outcome).__name__,
        )
        return "interrupted"
    elif isinstance(outcome, SuspendQueue):
        queue.release_item(item)
        logger.debug("A worker for %s queue suspended further processing of the queue.", queue.name)
        tally.suspension = outcome
        return "suspended"
    elif isinstance(outcome, DelayedRequeue):
        delay = _feasible_delay(queue, item, outcome.delay)
        if delay is None:
            tally.counts["kept_leased"] += 1
        elif not queue.capabilities.delay:
            # A delay of 0 is a release, which every backend can do.
            tally.add(queue.release_item(item), "requeued", item)
        else:
            try:
                held = queue.delay_item(item, delay)
            except (InvalidArgumentError, UnsupportedOperationError) as exc:
                # A limit the backend enforces without declaring it in its
                # capabilities: refused before anything changed, so the item
                # is still leased to us, and one item must not end the pass.
                logger.warning(
                    "Queue %s refused to delay item %s by %g s (%s); it stays leased "
                    "until its lease ends.",
                    queue.name,
                    item.item_id,
                    delay,
                    exc,
                )
                tally.counts["kept_leased"] += 1
            else:
                tally.add(held, "delayed", item)
    elif isinstance(outcome, Requeue):
        tally.add(queue.release_item(item), "requeued", item)
    else:
        logger.error(
            "Worker for queue %s failed on item %s (attempt %d); it stays leased until "
            "its lease expires: %s: %s",
            queue.name,
            item.item_id,
            item.attempts,
            type(outcome).__name__,
            outcome,
            exc_info=outcome,
        )
        tally.counts["failed"] += 1
    return None


def _feasible_delay(queue: Queue, item: QueueItem, seconds: float) -> float | None:
    """The delay to ask of the backend for ``seconds``; None when it can make none.

    A delay past the backend's longest is clamped to that longest, so the item
    still waits as long as the store allows. A backend without delays leaves
    the item leased until its lease ends, as Drupal does; a delay of 0 needs
    no delay support and comes back as 0.
    """
    capabilities = queue.capabilities
    if not capabilities.delay:
        if seconds == 0:
            return 0.0
        logger.warning(
            "Queue %s on %s cannot delay items; item %s stays leased until its lease "
            "ends instead of being delayed %g s.",
            queue.name,
            queue.backend.url,
            item.item_id,
            seconds,
        )
        return None
    most = (
        MAX_SECONDS if capabilities.max_delay is None else min(capabilities.max_delay, MAX_SECONDS)
    )
    if seconds > most:
        logger.warning(
            "Queue %s on %s delays items at most %g s; item %s is delayed that long "
            "instead of the %g s its worker asked for.",
            queue.name,
            queue.backend.url,
            most,
            item.item_id,
            seconds,
        )
        return float(most)
    return seconds


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


def _run_pass(
    queue: Queue,
    worker: QueueWorker,
    lease_time: float,
    limits: tuple[float | None, int | None, ShouldStop | None],
    progress: Callable[[Summary], object] | None,
    interrupts: Interrupts,
) -> tuple[Summary, SuspendQueue | None]:
    """Claim and process items until the queue is empty, a limit is hit or it suspends.

    The limits (time, items, should_stop) are checked before each claim, never during an
    item: stopping a worker midway would leave its item leased for nothing.
    An interrupt does stop it midway, and releases the item first.
    """
    tally = _Tally(queue.name)
    lease_time = _feasible_lease(queue, lease_time)
    stop = tally.stop_reason(*limits)
    try:
        while stop is None:
            item = queue.claim_item(lease_time)
            if item is None:
                stop = "empty"
                continue
            outcome = _call(worker, item, interrupts)
            stop = _settle(queue, item, outcome, tally, interrupts)
            if progress is not None and stop != "interrupted":
                progress(tally.summary("running"))
            if stop is None:
                stop = tally.stop_reason(*limits)
    except interrupts:
        # Raised outside the worker (in a claim or a delete): this pass holds
        # nothing that its lease will not bring back.
        stop = "interrupted"
    summary = tally.summary(stop)
    logger.info(
        "Processed %d items from the %s queue in %.2f sec (stopped by %s).",
        summary.processed,
        queue.name,
        summary.elapsed,
        stop,
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
    """
    worker = get_worker(name)
    budget = _limit("time_limit", time_limit)
    max_items = _items_limit(items_limit)
    lease = positive_seconds("lease_time", lease_time) or worker.cron_lease or DEFAULT_LEASE_TIME
    queue = _queue(name, factory)
    # As drush does, so expired leases and delays are reset first on backends
    # whose housekeeping does more than claims need.
    queue.garbage_collection()
    summary, _ = _run_pass(
        queue, worker, lease, (budget, max_items, should_stop), progress, interrupts
    )
    return summary


@dataclass
class _CronEntry:
    worker: QueueWorker
    queue: Queue
    budget: float
    lease: float
    process_from: float = 0.0


def run_cron(
    *,
    factory: QueueFactory | None = None,
    max_wait: float = 30.0,
    interrupts: Interrupts = (),
    should_stop: ShouldStop | None = None,
) -> list[Summary]:
    """Run every cron worker once, in registration order: ``Cron::processQueues``.

    Each queue gets ``cron_time`` seconds (a fresh budget each visit) and
    claims with the worker's cron lease. A queue suspended with a delay below
    ``max_wait`` seconds is revisited after that delay in this same call;
    queues wait in order of when they may run next. Returns one summary per
    pass, so a revisited queue appears more than once. An interrupt (see
    :func:`process_queue`) ends the whole run after releasing its item, and so
    does ``should_stop``, asked before each claim and each revisit.
    """
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or max_wait < 0:
        raise InvalidArgumentError(f"max_wait must be 0 or more seconds, not {max_wait!r}")
    entries = [
        _CronEntry(worker, _queue(worker.name, factory), worker.cron_time, worker.cron_lease)
        for worker in registered_workers().values()
        if worker.cron_time is not None and worker.cron_lease is not None
    ]
    for entry in entries:
        entry.queue.create_queue()
        entry.queue.garbage_collection()
    summaries: list[Summary] = []
    while entries:
        entry = entries.pop(0)
        stopping = should_stop or (lambda: False)
        # Drupal truncates this sleep to whole seconds; a 0.3 s delay means 0.3 s here.
        # Slept in slices, so that a shutdown does not wait out a revisit.
        while (wait := entry.process_from - time.monotonic()) > 0 and not stopping():
            time.sleep(min(wait, 0.25))
        if stopping():
            break
        summary, suspension = _run_pass(
            entry.queue,
            entry.worker,
            entry.lease,
            (entry.budget, None, should_stop),
            None,
            interrupts,
        )
        summaries.append(summary)
        if summary.stopped_by in ("interrupted", "shutdown"):
            break
        delay = suspension.delay if suspension is not None else None
        if delay is not None and delay < max_wait:
            entry.process_from = time.monotonic() + delay
            entries.append(entry)
        # Stable, so queues due at the same time keep registration order.
        entries.sort(key=lambda e: e.process_from)
    return summaries
