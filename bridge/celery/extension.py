"""``init_app``: bridge's tasks and beat entries on a Celery app, the user's own included.

bridge never takes over an application's Celery: its own app (the one
``celery -A bridge`` finds) is created without becoming the current app, and
its tasks are registered only on the apps ``init_app`` is given, so a
user's ``@shared_task`` keeps going to the user's broker.

On the app given, ``init_app``:

- registers ``bridge.process_queue``, ``bridge.run_cron`` and
  ``bridge.clean_broker`` (:mod:`bridge.celery.tasks`);
- adds one beat entry per cron queue when the app is finalized, from the
  worker registry and the schedules (the ``schedules`` argument, overridden
  queue by queue by the app's ``bridge_schedules`` setting); the app's own
  ``beat_schedule`` entries of the same name win;
- makes ``celery worker`` and ``celery beat`` stop at start, with one line
  naming the module and the reason, when a worker module cannot be imported
  or the schedules are wrong, instead of running with nothing to do;
- installs the warm shutdown of :mod:`bridge.celery.shutdown`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals

from bridge.celery import shutdown
from bridge.celery.schedules import PROCESS_QUEUE, parse_setting, queue_schedules, runner_limits
from bridge.celery.tasks import CLEAN_BROKER, RUN_CRON, BridgeTasks, per_queue_name, register_tasks
from bridge.errors import BridgeError, ConfigurationError, UnknownQueueError
from bridge.settings import load_settings
from bridge.workers import QueueWorker, import_worker_modules, registered_workers

__all__ = ["BridgeTasks", "Extension", "init_app"]

logger = logging.getLogger(__name__)

_extensions: weakref.WeakKeyDictionary[Celery, Extension] = weakref.WeakKeyDictionary()


@dataclass(eq=False)
class Extension:
    """What ``init_app`` was given for one app."""

    imports: tuple[str, ...]
    """Worker modules to import besides ``BRIDGE_IMPORTS``."""
    schedules: Mapping[str, Any] | str | None

    def import_workers(self) -> None:
        """Import ``BRIDGE_IMPORTS`` and this app's worker modules (each once per process)."""
        import_worker_modules()
        import_worker_modules(self.imports)

    def imports_note(self) -> str:
        """Where this process's worker modules came from, for error messages."""
        modules = [*load_settings().imports, *self.imports]
        return (
            f"worker modules: {', '.join(modules)}"
            if modules
            else ("no worker modules: set BRIDGE_IMPORTS or init_app(imports=...)")
        )

    def worker(self, name: str) -> QueueWorker:
        """The worker of queue ``name`` in this process; a clear error if it has none."""
        self.import_workers()
        workers = registered_workers()
        if name not in workers:
            raise UnknownQueueError(
                f"no worker is registered for queue {name!r} in this worker process "
                f"(registered: {', '.join(workers) or 'none'}; {self.imports_note()})"
            )
        return workers[name]

    def setting(self, app: Celery) -> dict[str, Any]:
        """The schedules: ``init_app``'s, overridden queue by queue by ``bridge_schedules``."""
        return {**parse_setting(self.schedules), **parse_setting(app.conf.get("bridge_schedules"))}

    def beat_entries(self, app: Celery) -> dict[str, dict[str, Any]]:
        self.import_workers()
        entries: dict[str, dict[str, Any]] = {}
        for schedule in queue_schedules(registered_workers(), self.setting(app)):
            entries.update(schedule.entries())
        if str(app.conf.broker_url).startswith("filesystem:"):
            entries[CLEAN_BROKER] = {
                "task": CLEAN_BROKER,
                "schedule": 60.0,
                "options": {"expires": 60.0},
            }
        return entries

    def install_schedule(self, sender: Celery, **_: Any) -> None:
        """Add the beat entries (on finalize); the app's own entries of the same name win."""
        try:
            entries = self.beat_entries(sender)
        except BridgeError as exc:
            # A worker or beat has stopped on this already (check_at_start);
            # any other process (Flower, a web app sending tasks) carries on.
            logger.error("bridge adds no beat entries: %s", exc)
            return
        sender.conf.beat_schedule = {**entries, **(sender.conf.beat_schedule or {})}

    def check_at_start(self, sender: Celery, **_: Any) -> None:
        """At ``celery worker`` or ``beat`` start: stop with one line if the set-up is wrong.

        Celery's loader sends ``import_modules`` before logging is set up
        and before the app is finalized; an exception from here would be
        a traceback, and a worker that went on would schedule nothing.
        """
        try:
            self.beat_entries(sender)
        except BridgeError as exc:
            raise SystemExit(f"bridge: {' '.join(str(exc).split())}") from exc

    def send_options(
        self, app: Celery, task: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What a runner task is sent with unless the sender says otherwise."""
        options: dict[str, Any] = {}
        name = kwargs.get("name", args[0] if args else None)
        if task == PROCESS_QUEUE and isinstance(name, str):
            options["shadow"] = per_queue_name(name)
            try:
                spec = self.setting(app).get(name)
            except ConfigurationError:
                spec = None
            if isinstance(spec, Mapping) and isinstance(spec.get("queue"), str):
                options["queue"] = spec["queue"]
        options.update(self._limits(task, name, args, kwargs))
        return options

    def _limits(
        self, task: str, name: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, float]:
        """The time limits of a runner, as far as the sender knows the queue's worker."""
        try:
            self.import_workers()
            workers = registered_workers()
        except BridgeError:
            return {}
        if task == RUN_CRON:
            cron = [w for w in workers.values() if w.cron_time]
            budget = sum(w.cron_time or 0 for w in cron)
            item_time = max((w.lease_time or 0 for w in cron), default=0) or None
        else:
            worker = workers.get(name) if isinstance(name, str) else None
            limit = kwargs.get("time_limit", args[1] if len(args) > 1 else None)
            try:
                budget = float(limit or (worker.cron_time if worker else None) or 0)
            except (TypeError, ValueError):
                return {}
            item_time = worker.lease_time if worker else None
        if not budget:
            return {}
        soft, hard = runner_limits(budget, item_time)
        return {"soft_time_limit": soft, "time_limit": hard}


def init_app(
    app: Celery,
    *,
    imports: Iterable[str] | None = None,
    schedules: Mapping[str, Any] | str | None = None,
) -> BridgeTasks:
    """Run bridge's queue workers from ``app``: its tasks, its beat entries, its shutdown.

    ``imports`` names modules that register queue workers (besides
    ``BRIDGE_IMPORTS``); ``schedules`` is ``bridge_schedules`` as a dict (or
    JSON): beat interval, budget, runners and Celery ``queue`` per bridge
    queue. The app's own configuration is left as it is, apart from the
    beat entries added on finalize; an app setting ``bridge_schedules``
    (``CELERY_BRIDGE_SCHEDULES`` in a Django project) overrides ``schedules``
    queue by queue. Returns the tasks as registered on ``app``.
    """
    if app in _extensions:
        raise ConfigurationError(f"init_app was already called on the Celery app {app.main!r}")
    modules = (imports,) if isinstance(imports, str) else tuple(imports or ())
    extension = Extension(modules, schedules)
    _extensions[app] = extension
    tasks = register_tasks(app, extension)
    if app.finalized:
        extension.install_schedule(app)
    else:
        app.on_after_finalize.connect(extension.install_schedule, weak=False)
    signals.import_modules.connect(extension.check_at_start, sender=app, weak=False)
    shutdown.install()
    return tasks
