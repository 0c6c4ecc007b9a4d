"""The Celery app: registered queue workers as time-limited tasks, cron queues on beat.

``celery -A bridge worker --beat`` finds ``app`` here; ``celery -A bridge
flower`` watches it.

Tasks
    ``bridge.process_queue(name, time_limit=None, items_limit=None, lease_time=None)``
        one pass over one queue (``drush queue:run``); returns the pass's
        summary dict plus ``remaining`` (items left, leased ones included),
        and reports the running summary at most once a second as a
        ``task-progress`` event (Flower's ``PROGRESS`` state) and a
        ``PROGRESS`` result state.
    ``bridge.run_cron()``
        every cron queue once, in order, with Drupal's cron leases.
    ``bridge.clean_broker()``
        :mod:`bridge.celery.filesystem` housekeeping, on the embedded broker.

Beat entries come from the worker registry (:mod:`bridge.celery.schedules`),
settings from the environment (:mod:`bridge.celery.config`).

Time limits follow a pass's claim budget (:func:`~bridge.celery.schedules.runner_limits`):
the runner stops claiming at the budget; the soft limit interrupts an
overrunning item, which is released before the task returns; the hard limit
kills the process, and the item's lease
(:func:`~bridge.celery.schedules.runner_lease`) outlives it. Only the prefork
pool enforces either limit; on solo and threads the budget check before each
claim is the only bound. The whole story is in docs/celery.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from bridge.celery.config import Configuration, prepare_folders
from bridge.celery.filesystem import clean_filesystem_broker
from bridge.celery.schedules import PROCESS_QUEUE, queue_schedules, runner_lease, runner_limits
from bridge.errors import BridgeError
from bridge.factory import get_queue
from bridge.runner import DEFAULT_LEASE_TIME, Summary, process_queue, run_cron
from bridge.workers import get_worker, registered_workers

__all__ = ["CLEAN_BROKER", "PROCESS_QUEUE", "RUN_CRON", "app", "clean_broker_task",
           "process_queue_task", "run_cron_task"]

logger = logging.getLogger(__name__)

RUN_CRON = "bridge.run_cron"
CLEAN_BROKER = "bridge.clean_broker"
PROGRESS_INTERVAL = 1.0
SOFT_LIMIT = (SoftTimeLimitExceeded,)
"""What interrupts a runner: the item in hand is released and the task ends."""

app = Celery("bridge")
app.config_from_object(Configuration())


@app.on_after_configure.connect  # type: ignore[untyped-decorator]
def _on_configure(sender: Celery, source: Mapping[str, Any], **_: Any) -> None:
    prepare_folders(source)


@app.on_after_finalize.connect  # type: ignore[untyped-decorator]
def _install_schedule(sender: Celery, **_: Any) -> None:
    entries: dict[str, dict[str, Any]] = {}
    for schedule in queue_schedules(registered_workers(), sender.conf.get("bridge_schedules")):
        entries.update(schedule.entries())
    if str(sender.conf.broker_url).startswith("filesystem:"):
        entries[CLEAN_BROKER] = {"task": CLEAN_BROKER, "schedule": 60.0,
                                 "options": {"expires": 60.0}}
    # The application's own beat_schedule entries win over generated ones.
    sender.conf.beat_schedule = {**entries, **(sender.conf.beat_schedule or {})}


def _limits_for(task: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, float]:
    """The time limits of a runner, as far as the sender knows the queue's worker."""
    try:
        workers = registered_workers()
        if task == RUN_CRON:
            cron = [w for w in workers.values() if w.cron_time]
            budget = sum(w.cron_time or 0 for w in cron)
            item_time = max((w.lease_time or 0 for w in cron), default=0) or None
        else:
            name = kwargs.get("name", args[0] if args else None)
            worker = workers.get(name) if isinstance(name, str) else None
            limit = kwargs.get("time_limit", args[1] if len(args) > 1 else None)
            budget = float(limit or (worker.cron_time if worker else None) or 0)
            item_time = worker.lease_time if worker else None
    except (BridgeError, TypeError, ValueError):
        return {}
    if not budget:
        return {}
    soft, hard = runner_limits(budget, item_time)
    return {"soft_time_limit": soft, "time_limit": hard}


class RunnerTask(Task):  # type: ignore[misc]
    """A task that gets its queue's time limits when the sender sets none."""

    def apply_async(self, args: Any = None, kwargs: Any = None, *more: Any,
                    **options: Any) -> Any:
        if "soft_time_limit" not in options and "time_limit" not in options:
            options.update(_limits_for(self.name, tuple(args or ()), dict(kwargs or {})))
        return super().apply_async(args, kwargs, *more, **options)


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
            self.task.send_event("task-progress", **fields)
            if self.task.app.conf.result_backend and not self.task.request.ignore_result:
                self.task.update_state(state="PROGRESS", meta=fields)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            logger.warning("Could not report progress of queue %s: %s", summary.queue, exc)


@app.task(bind=True, base=RunnerTask, name=PROCESS_QUEUE)  # type: ignore[untyped-decorator]
def process_queue_task(
    self: Task,
    name: str,
    time_limit: float | None = None,
    items_limit: int | None = None,
    lease_time: float | None = None,
) -> dict[str, Any]:
    """One pass over queue ``name``: the summary dict, with ``remaining`` items."""
    worker = get_worker(name)
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
        summary = process_queue(name, budget, items_limit, lease, progress=progress,
                                interrupts=SOFT_LIMIT)
    except SoftTimeLimitExceeded:
        # Raised while reporting progress: no item is in hand then.
        summary = progress.latest or Summary(name)
        summary = Summary(**{**summary.as_dict(), "stopped_by": "interrupted"})
    result = summary.as_dict()
    if summary.stopped_by == "interrupted":
        result["stopped_by"] = "soft_time_limit"
    result["remaining"] = get_queue(name).number_of_items()
    return result


@app.task(bind=True, base=RunnerTask, name=RUN_CRON)  # type: ignore[untyped-decorator]
def run_cron_task(self: Task) -> list[dict[str, Any]]:
    """Every cron queue once, in order, with its cron lease: one summary dict per pass."""
    return [summary.as_dict() for summary in run_cron(interrupts=SOFT_LIMIT)]


@app.task(name=CLEAN_BROKER, ignore_result=True)  # type: ignore[untyped-decorator]
def clean_broker_task() -> dict[str, int]:
    """Drop the filesystem broker's unread event and reply messages, and their bindings."""
    if not str(app.conf.broker_url).startswith("filesystem:"):
        return {}
    return clean_filesystem_broker(app.conf.broker_transport_options or {})
