"""Celery settings for ``celery -A bridge ...``, read from the environment.

Configuration only. ``bridge.celery`` starts from the same values, so this
file is needed only to change something the environment cannot; copy it next
to your application (or name another module in ``CELERY_CONFIG_MODULE``) and
edit it. Settings use Celery's lowercase names; the ``bridge_*`` ones are
bridge's own (see docs/celery.md and docs/configuration.md).

Environment:

``BRIDGE_BROKER_URL``      Celery's broker (default ``filesystem://localhost/``: no server,
                           one host, folders under ``BRIDGE_VAR_DIR``)
``BRIDGE_RESULT_BACKEND``  where task results go (default SQLite under
                           ``BRIDGE_VAR_DIR``; ``disabled`` for none)
``BRIDGE_VAR_DIR``         local state: broker folders, results, beat schedule
                           (default ``./var``)
``BRIDGE_CELERY_QUEUE``    the Celery queue bridge's tasks use (default ``bridge``)
``BRIDGE_SCHEDULES``       JSON: per-queue beat schedule, budget, concurrency and Celery queue
``BRIDGE_SHUTDOWN_GRACE``  seconds an item may still take once a warm shutdown begins,
                           before it is interrupted and released (default 1)
"""

import os
from pathlib import Path

_var = Path(os.environ.get("BRIDGE_VAR_DIR") or "var").resolve()
_celery = _var / "celery"

# Kombu's filesystem transport ignores the host; naming one keeps Kombu quiet.
broker_url = os.environ.get("BRIDGE_BROKER_URL") or "filesystem://localhost/"
broker_connection_retry_on_startup = True
# Only the filesystem transport reads these. One folder in and out, so every
# process on the host shares it; processed messages are deleted, not kept.
broker_transport_options = (
    {
        "data_folder_in": str(_celery / "data"),
        "data_folder_out": str(_celery / "data"),
        "processed_folder": str(_celery / "processed"),
        "store_processed": False,
        "control_folder": str(_celery / "control"),
    }
    if broker_url.startswith("filesystem:")
    else {}
)

result_backend = os.environ.get("BRIDGE_RESULT_BACKEND") or (
    f"db+sqlite:///{_celery / 'results.sqlite'}"
)
if result_backend.lower() in ("none", "disabled"):
    result_backend = None
result_expires = 86400  # a day; beat runs celery.backend_cleanup at 4:00
result_extended = True  # results carry the task name and arguments

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_default_queue = os.environ.get("BRIDGE_CELERY_QUEUE") or "bridge"
task_track_started = True

# Flower builds its task list from events; with no listener they cost nothing.
task_send_sent_event = True
worker_send_task_events = True
# Runner tasks are long: a worker takes one at a time per process.
worker_prefetch_multiplier = 1

beat_schedule_filename = str(_celery / "beat-schedule")

# bridge's own settings.
bridge_schedules = os.environ.get("BRIDGE_SCHEDULES") or "{}"
# On SIGTERM a pass stops claiming at once; an item still running after this
# many seconds is interrupted and released (claimable again at once).
bridge_shutdown_grace = float(os.environ.get("BRIDGE_SHUTDOWN_GRACE") or 1.0)
# Read by bridge.settings when the BRIDGE_* variables are unset, e.g.:
# bridge_queue_default = "postgresql+psycopg://bridge@db/bridge"
# bridge_queues = {"emails": "redis://localhost:6379/0"}
# bridge_imports = ["myapp.workers"]
