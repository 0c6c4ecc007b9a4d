"""The queue worker of the Celery-path cell: it does nothing, so the runner is what is timed."""

from __future__ import annotations

from typing import Any

from bridge.workers import queue_worker

QUEUE = "bench_noop"


@queue_worker(QUEUE)
def do_nothing(data: Any) -> None:
    """Accept the item; returning normally is what deletes it."""
