"""bridge's Celery tasks, registered on one app by :func:`bridge.celery.init_app`.

``bridge.process_queue(name, time_limit=None, items_limit=None, lease_time=None)``
    one pass over one queue (``drush queue:run``); returns the pass's summary
    dict plus ``remaining`` (items left, leased ones included).
``bridge.run_cron()``
    every cron queue once, in order, with Drupal's cron leases.
``bridge.clean_broker()``
    :mod:`bridge.celery.filesystem` housekeeping, on the embedded broker.

Sent without options of their own (by beat, ``.delay()`` or Flower), runner
tasks get their queue's time limits, the Celery queue ``bridge_schedules``
routes them to, and, for ``bridge.process_queue``, a per-queue name
(``bridge.process_queue:emails``, Celery's ``shadow``) that Flower's task
list, the worker's log and Flower's metrics show.

While a pass runs, the running summary goes to Flower at most once a second
as a ``task-progress`` event whose ``result`` is that summary (Flower shows
it as the task's result while its state is ``PROGRESS``); no other field of
Flower's task is touched. The summary's ``failed`` count once landed in
Flower's ``failed`` timestamp.

A runner task in which nothing worked ends in FAILURE with
:class:`PassFailed`, whose message holds the summary, so that Flower and
monitoring see it: no item processed and at least one failed or held, or a
store that stayed unavailable. Otherwise it succeeds with the counts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.saferepr import saferepr

from bridge.celery import shutdown
from bridge.celery.filesystem import clean_filesystem_broker
from bridge.celery.schedules import PROCESS_QUEUE, runner_lease
from bridge.errors import UnknownQueueError
from bridge.factory import get_queue
from bridge.runner import DEFAULT_LEASE_TIME, Summary, process_queue, run_cron
from bridge.workers import registered_workers

if TYPE_CHECKING:
    from bridge.celery.extension import Extension

logger = logging.getLogger(__name__)

RUN_CRON = "bridge.run_cron"
CLEAN_BROKER = "bridge.clean_broker"
PROGRESS_INTERVAL = 1.0
INTERRUPTS = (SoftTimeLimitExceeded,)
"""What interrupts a runner: the item in hand is released and the task ends. Celery's
soft time limit, and bridge's warm shutdown, which raises the same in the pool process."""
ROUTING_OPTIONS = ("queue", "routing_key", "exchange")


def per_queue_name(queue: str) -> str:
    """The name a run of ``bridge.process_queue`` on ``queue`` shows in Flower and logs."""
    return f"{PROCESS_QUEUE}:{queue}"


class RunnerTask(Task):  # type: ignore[misc]
    """A task that gets its queue's limits, route and name when the sender sets none."""

    bridge: Extension
    """Set by :func:`register_tasks`: the app's bridge settings."""

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Any:
        sent = self.bridge.send_options(self.app, self.name, tuple(args or ()), dict(kwargs or {}))
        if "soft_time_limit" in options or "time_limit" in options:
            sent.pop("soft_time_limit", None)
            sent.pop("time_limit", None)
        if any(key in options for key in ROUTING_OPTIONS):
            sent.pop("queue", None)
        shadow = shadow or sent.pop("shadow", None)
        sent.pop("shadow", None)
        return super().apply_async(
            args,
            kwargs,
            task_id=task_id,
            producer=producer,
            link=link,
            link_error=link_error,
            shadow=shadow,
            **{**sent, **options},
        )


class _Progress:
    """Reports a running pass to Flower (an event) and the result backend (a state)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.latest: Summary | None = None
        self.sent = 0.0

    def __call__(self, summary: Summary) -> None:
        self.latest = summary
        now = time.monotonic()
        if self.task.request.id is None or now - self.sent < PROGRESS_INTERVAL:
            return
        self.sent = now
        fields = summary.as_dict()
        try:
            # Flower's task keeps every field of an event; only ``result`` is
            # meant to change, so the counts travel inside it.
            self.task.send_event("task-progress", result=saferepr(fields))
            if self.task.app.conf.result_backend and not self.task.request.ignore_result:
                self.task.update_state(state="PROGRESS", meta=fields)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            logger.warning("Could not report progress of queue %s: %s", summary.queue, exc)


class PassFailed(Exception):
    """A runner task in which nothing worked; the message holds the summary as JSON."""


def _raise_if_nothing_worked(results: list[dict[str, Any]]) -> None:
    """FAILURE for a run that processed nothing while items failed or were held,
    or that stopped because a store was unavailable; the counts travel in the error."""
    processed = sum(r["processed"] for r in results)
    failures = sum(r["failed"] + r["held"] for r in results)
    unavailable = any(r["stopped_by"] == "backend unavailable" for r in results)
    if (failures and not processed) or unavailable:
        what = "a store was unavailable" if unavailable else "every item failed or was held"
        shown = results[0] if len(results) == 1 else results
        raise PassFailed(f"{what}: {json.dumps(shown, default=str)}")


def _stopped_by(summary: Summary) -> str:
    if summary.stopped_by != "interrupted":
        return summary.stopped_by
    return "shutdown" if shutdown.requested() else "soft_time_limit"


def _process_queue(
    self: RunnerTask,
    name: str,
    time_limit: float | None = None,
    items_limit: int | None = None,
    lease_time: float | None = None,
) -> dict[str, Any]:
    """One pass over queue ``name``: the summary dict, with ``remaining`` items."""
    worker = self.bridge.worker(name)
    conf = self.app.conf
    sent_hard, sent_soft = self.request.timelimit or (None, None)
    soft = sent_soft or self.soft_time_limit or conf.task_soft_time_limit
    hard = sent_hard or self.time_limit or conf.task_time_limit
    budget = time_limit or worker.cron_time or soft
    if budget is not None and soft is not None:
        budget = min(budget, soft)
    lease = runner_lease(lease_time or worker.cron_lease or DEFAULT_LEASE_TIME, hard)
    progress = _Progress(self)
    try:
        summary = process_queue(
            name,
            budget,
            items_limit,
            lease,
            progress=progress,
            interrupts=INTERRUPTS,
            should_stop=shutdown.requested,
        )
    except SoftTimeLimitExceeded:
        # Raised outside the pass loop, which catches its own (and releases an
        # item claimed but not started): no item is in hand here.
        summary = progress.latest or Summary(name)
        summary = Summary(**{**summary.as_dict(), "stopped_by": "interrupted"})
    result = summary.as_dict()
    result["stopped_by"] = _stopped_by(summary)
    if summary.stopped_by != "backend unavailable":
        result["remaining"] = get_queue(name).number_of_items()
    _raise_if_nothing_worked([result])
    return result


def _run_cron(self: RunnerTask) -> list[dict[str, Any]]:
    """Every cron queue once, in order, with its cron lease: one summary dict per pass."""
    self.bridge.import_workers()
    if not any(w.cron_time for w in registered_workers().values()):
        raise UnknownQueueError(
            f"no cron queue is registered in this worker process ({self.bridge.imports_note()})"
        )
    summaries = run_cron(interrupts=INTERRUPTS, should_stop=shutdown.requested)
    results = [{**s.as_dict(), "stopped_by": _stopped_by(s)} for s in summaries]
    _raise_if_nothing_worked(results)
    return results


def _clean_broker(self: Task) -> dict[str, int]:
    """Drop the filesystem broker's unread event and reply messages, and their bindings."""
    if not str(self.app.conf.broker_url).startswith("filesystem:"):
        return {}
    return clean_filesystem_broker(self.app.conf.broker_transport_options or {})


@dataclass(frozen=True)
class BridgeTasks:
    """bridge's tasks as registered on one app (``init_app`` returns them)."""

    process_queue: Any
    run_cron: Any
    clean_broker: Any


def register_tasks(app: Celery, extension: Extension) -> BridgeTasks:
    """Register bridge's tasks on ``app`` only (never shared with other apps)."""
    common: dict[str, Any] = {"bind": True, "shared": False, "bridge": extension}
    return BridgeTasks(
        process_queue=app.task(name=PROCESS_QUEUE, base=RunnerTask, **common)(_process_queue),
        run_cron=app.task(name=RUN_CRON, base=RunnerTask, **common)(_run_cron),
        clean_broker=app.task(name=CLEAN_BROKER, ignore_result=True, **common)(_clean_broker),
    )
