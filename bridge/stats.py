"""What the runner reports as it settles items, counted for Prometheus.

The runner calls :func:`record_outcome` once per settled item; this module
counts them per queue and outcome in ``bridge_queue_outcomes_total``, a
``prometheus_client`` counter. Kept apart from :mod:`bridge.metrics` so that
the runner never imports the collector (nor the factory it reads), and
``prometheus_client`` itself is imported on the first outcome, not by
``import bridge``.

The counter lives in the process that runs the items. It is registered in
``prometheus_client``'s default registry, so an application that already
exports that registry shows it with no setup. Where ``PROMETHEUS_MULTIPROC_DIR``
is set (before the process starts), ``prometheus_client`` keeps the counts in
files there instead, one per process: Celery's prefork children each write
their own, and a ``bridge metrics`` process pointed at the same directory
adds them up (``docs/failures.md``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter

logger = logging.getLogger(__name__)

OUTCOMES_METRIC = "bridge_queue_outcomes"
"""The counter's name; the exposition adds ``_total``."""

_counter: Counter | None = None
_children: dict[tuple[str, str], Counter] = {}
_lock = threading.Lock()
_broken = False


def outcome_counter() -> Counter:
    """The outcomes counter of this process, made on first use."""
    global _counter
    with _lock:
        if _counter is None:
            from prometheus_client import Counter

            _counter = Counter(
                OUTCOMES_METRIC,
                "Items the runner settled in this process, by queue and outcome "
                "(processed, failed, held, requeued, delayed, kept_leased, lost, released).",
                ["queue", "outcome"],
            )
        return _counter


def record_outcome(queue: str, outcome: str) -> None:
    """One item of ``queue`` settled as ``outcome`` (processed, failed, held, lost, ...).

    Never raises: a counter that cannot be written (a multiprocess directory
    that is gone, say) must not fail the item's work. The first such error is
    logged once, and counting stops in this process.
    """
    global _broken
    if _broken:
        return
    # The labelled child is cached: labels() takes a lock and builds a key per
    # call, and this runs once per item on the runner's hot path.
    child = _children.get((queue, outcome))
    try:
        if child is None:
            child = outcome_counter().labels(queue, outcome)
            _children[(queue, outcome)] = child
        child.inc()
    except Exception as exc:
        _broken = True
        logger.warning(
            "Outcome counters are off in this process: cannot count %s on queue %s: %s",
            outcome,
            queue,
            exc,
        )
