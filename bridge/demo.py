"""The worker behind ``bridge demo``: small, harmless, visible work per item.

Each demo item is ``{"n": <positive int>}``. The worker counts the steps of
the Collatz sequence from ``n`` down to 1 and sleeps a few milliseconds, so a
progress bar has something to show without the demo burning CPU. Importing
this module registers the worker for the ``bridge_demo`` queue; the CLI
imports it so that ``bridge demo``, ``bridge queue run bridge_demo`` and
``bridge queue send bridge_demo ...`` work out of the box.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bridge.errors import ConfigurationError, PayloadError
from bridge.workers import queue_worker, registered_workers

DEMO_QUEUE = "bridge_demo"
ITEM_PAUSE = 0.005
"""Seconds each item takes on top of its arithmetic, so progress is visible."""

log = logging.getLogger(__name__)


def collatz_steps(n: int) -> int:
    """How many Collatz steps take ``n`` to 1."""
    steps = 0
    while n > 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def demo_items(count: int) -> list[dict[str, int]]:
    """The payloads ``bridge demo`` creates: ``{"n": 1}`` to ``{"n": count}``."""
    return [{"n": n} for n in range(1, count + 1)]


@queue_worker(DEMO_QUEUE, cron_time=10)
def process_demo_item(data: Any) -> None:
    """Count the Collatz steps of ``data["n"]``, then pause for a moment."""
    n = data.get("n") if isinstance(data, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PayloadError(f'a demo item is {{"n": <positive int>}}, not {data!r}')
    log.info("collatz(%d) takes %d steps", n, collatz_steps(n))
    time.sleep(ITEM_PAUSE)


def ensure_demo_worker(queue: str) -> None:
    """Make the demo worker serve ``queue``; refuse a queue that has a worker of its own."""
    worker = registered_workers().get(queue)
    if worker is None:
        queue_worker(queue, cron_time=None)(process_demo_item)
    elif worker.callback is not process_demo_item:
        raise ConfigurationError(
            f"queue {queue!r} has its own worker; run the demo on a queue without one"
        )
