"""Beat entries from the worker registry, and the time limits of a runner task.

A cron queue (a worker with ``cron_time``) gets one ``bridge.process_queue``
entry per runner, every ``cron_time`` seconds, expiring after its interval
so ticks do not pile up while workers are down. ``bridge_schedules`` changes
the interval (or sets a crontab), the budget, the number of runners and the
Celery queue the runs are sent to, so a slow queue can have workers of its
own (``celery worker -Q bridge.thumbs``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab

from bridge.errors import ConfigurationError
from bridge.workers import QueueWorker

PROCESS_QUEUE = "bridge.process_queue"
DEFAULT_BUDGET = 30.0
"""A scheduled pass's budget when neither the schedule nor the worker sets one."""
CRONTAB_EXPIRES = 300.0


@dataclass(frozen=True)
class QueueSchedule:
    """When beat runs one queue, with which budget, and how many runners a tick."""

    queue: str
    every: float | str
    """Seconds between ticks, or a five-field crontab expression."""
    budget: float
    concurrency: int = 1
    expires: float | None = None
    item_time: float | None = None
    """The worker's own ``lease_time``: how long one item may take."""
    celery_queue: str | None = None
    """The Celery queue its runs go to; None: the app's default (or its task routes)."""

    def entries(self) -> dict[str, dict[str, Any]]:
        """The beat entries: one expiring ``bridge.process_queue`` per runner."""
        if isinstance(self.every, str):
            schedule: Any = crontab.from_string(self.every)
            expires = self.expires or CRONTAB_EXPIRES
        else:
            schedule, expires = self.every, self.expires or self.every
        soft, hard = runner_limits(self.budget, self.item_time)
        options: dict[str, Any] = {"expires": expires, "soft_time_limit": soft, "time_limit": hard}
        if self.celery_queue:
            options["queue"] = self.celery_queue
        entry = {
            "task": PROCESS_QUEUE,
            "schedule": schedule,
            "args": (self.queue,),
            "kwargs": {"time_limit": self.budget},
            "options": options,
        }
        key = f"{PROCESS_QUEUE}:{self.queue}"
        return {key if n == 1 else f"{key}#{n}": entry for n in range(1, self.concurrency + 1)}


def _number(queue: str, what: str, value: Any, integer: bool = False) -> Any:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise ConfigurationError(
            f"bridge_schedules[{queue!r}]: {what} must be a positive "
            f"{'integer' if integer else 'number'}, not {value!r}"
        )
    return value if integer else float(value)


def _schedule(worker: QueueWorker, spec: Any) -> QueueSchedule:
    name = worker.name
    if isinstance(spec, int | float | str) and not isinstance(spec, bool):
        spec = {"crontab" if isinstance(spec, str) else "every": spec}
    keys = {"every", "crontab", "time_limit", "concurrency", "expires", "queue"}
    if not isinstance(spec, Mapping) or set(spec) - keys or {"every", "crontab"} <= set(spec):
        raise ConfigurationError(
            f"bridge_schedules[{name!r}] must be seconds, a crontab string, null or an object "
            f"with every or crontab, time_limit, concurrency, expires, queue; not {spec!r}"
        )
    celery_queue = spec.get("queue")
    if celery_queue is not None and (not isinstance(celery_queue, str) or not celery_queue):
        raise ConfigurationError(
            f"bridge_schedules[{name!r}]: queue must name a Celery queue, not {celery_queue!r}"
        )
    budget = _number(
        name, "time_limit", spec.get("time_limit") or worker.cron_time or DEFAULT_BUDGET
    )
    every = spec.get("crontab") or _number(
        name, "every", spec.get("every") or worker.cron_time or budget
    )
    try:
        if isinstance(every, str):
            crontab.from_string(every)
    except Exception as exc:
        raise ConfigurationError(
            f"bridge_schedules[{name!r}]: bad crontab {every!r}: {exc}"
        ) from exc
    expires = spec.get("expires")
    return QueueSchedule(
        name,
        every,
        budget,
        _number(name, "concurrency", spec.get("concurrency", 1), True),
        None if expires is None else _number(name, "expires", expires),
        worker.lease_time,
        celery_queue,
    )


def parse_setting(setting: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``bridge_schedules`` as a dict: given as one, or as JSON (``BRIDGE_SCHEDULES``)."""
    if isinstance(setting, str):
        try:
            setting = json.loads(setting or "{}")
        except ValueError as exc:
            raise ConfigurationError(f"BRIDGE_SCHEDULES is not valid JSON: {exc}") from exc
    setting = {} if setting is None else setting
    if not isinstance(setting, Mapping):
        raise ConfigurationError("bridge_schedules must map queue names to schedules")
    return dict(setting)


def queue_schedules(
    workers: Mapping[str, QueueWorker], setting: str | Mapping[str, Any] | None
) -> list[QueueSchedule]:
    """Every cron queue's schedule, as ``bridge_schedules`` adjusts it.

    ``setting`` maps a queue to seconds between ticks, a crontab string, null
    (no beat entry) or ``{"every" or "crontab", "time_limit", "concurrency",
    "expires", "queue"}``. The budget defaults to the worker's ``cron_time``
    (else 30 s), the interval to the budget, ``expires`` to the interval
    (crontab: 300 s), ``queue`` (the Celery queue) to the app's default. A
    worker without ``cron_time`` runs only if the setting names it.
    """
    setting = parse_setting(setting)
    unknown = sorted(set(setting) - set(workers))
    if unknown:
        raise ConfigurationError(
            f"bridge_schedules names queues without a registered worker: {', '.join(unknown)}"
            f" (registered: {', '.join(workers) or 'none'}; see BRIDGE_IMPORTS)"
        )
    return [
        _schedule(worker, setting.get(name, {}))
        for name, worker in workers.items()
        if setting.get(name, {}) is not None and (name in setting or worker.cron_time)
    ]


def runner_limits(budget: float, item_time: float | None = None) -> tuple[float, float]:
    """The soft and hard time limits of a pass that claims for ``budget`` seconds.

    The item claimed last may overrun the budget by half of it (at least 1 s),
    or by ``item_time`` when the worker declares that its items take longer
    (its ``lease_time``); then the soft limit interrupts it. The hard limit
    leaves the interrupted pass ``max(2, budget/4)`` s to release it and end.
    """
    soft = budget + max(1.0, budget / 2, item_time or 0.0)
    return soft, soft + max(2.0, budget / 4)


def runner_lease(lease: float, hard_limit: float | None) -> float:
    """A lease that outlives the hard limit, so no item is claimed again while it may run."""
    if hard_limit is None:
        return lease
    return max(lease, hard_limit + max(2.0, hard_limit / 10))
