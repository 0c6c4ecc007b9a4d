"""Celery for bridge: registered queue workers as time-limited tasks, cron queues on beat.

Two ways in:

- ``celery -A bridge worker --beat`` finds ``app`` here: bridge's own app,
  configured from the environment (:mod:`bridge.celery.config`). It is made
  without becoming Celery's current app, so importing this package (or any
  module in it) never redirects an application's own ``@shared_task``.
- ``init_app(app)`` puts the same tasks, beat entries and shutdown on the
  application's own Celery app (:mod:`bridge.celery.extension`)::

      app = Celery("proj")
      app.config_from_object("django.conf:settings", namespace="CELERY")
      bridge.celery.init_app(app, imports=["proj.queue_workers"])

Tasks (:mod:`bridge.celery.tasks`): ``bridge.process_queue(name, ...)``, one
pass over one queue, shown in Flower as ``bridge.process_queue:<name>`` with
its running counts; ``bridge.run_cron()``; ``bridge.clean_broker()``.

Time limits follow a pass's claim budget (:func:`~bridge.celery.schedules.runner_limits`):
the runner stops claiming at the budget; the soft limit interrupts an
overrunning item, which is released before the task returns; the hard limit
kills the process, and the item's lease
(:func:`~bridge.celery.schedules.runner_lease`) outlives it. A warm shutdown
stops claiming at once and releases an item that outlasts
``bridge_shutdown_grace`` (:mod:`bridge.celery.shutdown`). Only the prefork
pool can interrupt an item; the whole story is in docs/celery.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from bridge.celery.config import Configuration, prepare_folders
from bridge.celery.extension import BridgeTasks, init_app
from bridge.celery.schedules import PROCESS_QUEUE
from bridge.celery.tasks import CLEAN_BROKER, RUN_CRON

__all__ = [
    "CLEAN_BROKER",
    "PROCESS_QUEUE",
    "RUN_CRON",
    "BridgeTasks",
    "app",
    "clean_broker_task",
    "init_app",
    "process_queue_task",
    "run_cron_task",
]

app = Celery("bridge", set_as_current=False)
app.config_from_object(Configuration())


@app.on_after_configure.connect  # type: ignore[untyped-decorator]
def _on_configure(sender: Celery, source: Mapping[str, Any], **_: Any) -> None:
    prepare_folders(source)


_tasks = init_app(app)
process_queue_task = _tasks.process_queue
"""``bridge.process_queue`` on bridge's own app (an application's app: what init_app returns)."""
run_cron_task = _tasks.run_cron
clean_broker_task = _tasks.clean_broker
