"""Celery's settings for bridge, read from the environment.

``celeryconfig.py`` at the top of the repository spells out the same values
as a file to copy and edit; a config module (``celeryconfig`` or
``CELERY_CONFIG_MODULE``, found on the path or in the working directory, as
Celery looks for it) overrides them setting by setting, so it may hold only
what differs. Settings use Celery's lowercase names.

``BRIDGE_BROKER_URL``
    Celery's broker; default ``filesystem://localhost/``: no server, one host, its
    folders under ``BRIDGE_VAR_DIR/celery``, read messages deleted.
``BRIDGE_RESULT_BACKEND``
    task results; default SQLite in ``BRIDGE_VAR_DIR/celery``; ``disabled``
    for none (Flower still shows results: it reads them from events).
``BRIDGE_VAR_DIR``
    local state (broker folders, results, beat schedule); default ``./var``.
``BRIDGE_CELERY_QUEUE``
    the Celery queue bridge's tasks are sent to; default ``bridge``.
``BRIDGE_SCHEDULES``
    JSON: per-queue beat schedule, budget, runners and Celery queue
    (:func:`bridge.celery.schedules.queue_schedules`).
``BRIDGE_SHUTDOWN_GRACE``
    seconds the item in hand may still take once a warm shutdown begins,
    before it is interrupted and released; default 1
    (:mod:`bridge.celery.shutdown`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from celery.utils.imports import cwd_in_path

DEFAULT_BROKER = "filesystem://localhost/"
"""Kombu's filesystem transport; it ignores the host, which only keeps Kombu from warning."""


def environment_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Celery settings bridge runs with, from the environment (as celeryconfig.py)."""
    env = os.environ if environ is None else environ
    root = Path(env.get("BRIDGE_VAR_DIR") or "var").resolve() / "celery"
    broker = env.get("BRIDGE_BROKER_URL") or DEFAULT_BROKER
    results = env.get("BRIDGE_RESULT_BACKEND") or f"db+sqlite:///{root / 'results.sqlite'}"
    folders = {
        "data_folder_in": root / "data",
        "data_folder_out": root / "data",
        "processed_folder": root / "processed",
        "control_folder": root / "control",
    }
    return {
        "broker_url": broker,
        "broker_transport_options": (
            {"store_processed": False, **{k: str(v) for k, v in folders.items()}}
            if broker.startswith("filesystem:")
            else {}
        ),
        "broker_connection_retry_on_startup": True,
        "result_backend": None if results.lower() in ("none", "disabled") else results,
        "result_expires": 86400,
        "result_extended": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": env.get("BRIDGE_CELERY_QUEUE") or "bridge",
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "worker_prefetch_multiplier": 1,
        "beat_schedule_filename": str(root / "beat-schedule"),
        "bridge_schedules": env.get("BRIDGE_SCHEDULES") or "{}",
        "bridge_shutdown_grace": float(env.get("BRIDGE_SHUTDOWN_GRACE") or 1.0),
    }


class Configuration(Mapping[str, Any]):
    """:func:`environment_config` overridden by the config module, read on first use."""

    @functools.cached_property
    def _settings(self) -> dict[str, Any]:
        settings = environment_config()
        name = os.environ.get("CELERY_CONFIG_MODULE", "celeryconfig")
        with cwd_in_path():  # where Celery itself looks for its config module
            found = importlib.util.find_spec(name) is not None
            module = vars(importlib.import_module(name)) if found else {}
        settings.update(
            (k, v)
            for k, v in module.items()
            if k.islower() and k[0] != "_" and not callable(v) and not isinstance(v, ModuleType)
        )
        return settings

    def __getitem__(self, key: str) -> Any:
        return self._settings[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)


def prepare_folders(conf: Mapping[str, Any]) -> None:
    """Create the filesystem broker's folders and those of the SQLite results and beat files."""
    folders = []
    if str(conf.get("broker_url") or "").startswith("filesystem:"):
        options = conf.get("broker_transport_options") or {}
        folders += [Path(v) for k, v in options.items() if "folder" in k]
    results = str(conf.get("result_backend") or "")
    if results.startswith("db+sqlite:///"):
        folders.append(Path(results.removeprefix("db+sqlite:///")).parent)
    if conf.get("beat_schedule_filename"):
        folders.append(Path(conf["beat_schedule_filename"]).parent)
    for folder in folders:
        # Owner only: task arguments, results and the schedule are the operator's business.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
