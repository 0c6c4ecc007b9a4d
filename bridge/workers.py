"""STUB: replaced by the workers helper. Names only, so the package imports."""

from __future__ import annotations

from typing import Any


class Requeue(Exception): ...


class DelayedRequeue(Exception): ...


class SuspendQueue(Exception): ...


class QueueWorker: ...


class Summary: ...


def queue_worker(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def process_queue(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def run_cron(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def registered_workers() -> Any:
    raise NotImplementedError
