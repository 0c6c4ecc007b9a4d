"""Processed and failed items per minute, from the runner's outcome counters.

The runner counts every settled item in ``bridge_queue_outcomes_total``
(:mod:`bridge.stats`), in the process that ran it. This module samples that
counter each time the queues page or its JSON is read and turns the last
minute of samples into rates:

- with ``PROMETHEUS_MULTIPROC_DIR`` set (the directory the workers write
  to, as for ``bridge metrics``), the counters of every process on this
  host, added up: every queue has a rate, 0 included;
- without it, only this process's counter, which counts the passes run from
  the UI itself: a queue the UI has not run shows no rate ("—"), since its
  workers' counts are not visible here.

A rate needs two samples at least :data:`MIN_SPAN` seconds apart, so it
shows "—" for the first seconds after the UI starts. A counter that went
down (the directory emptied when the workers restarted) shows "—" until
the window has passed it.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bridge.metrics import multiprocess_dir
from bridge.stats import OUTCOMES_METRIC, outcome_counter

WINDOW = 60.0
"""Seconds the rate is taken over, once the UI has watched that long."""
MIN_SPAN = 10.0
"""The shortest span a rate is shown for."""
SAMPLE_EVERY = 1.0
FAILED = ("failed", "held")
"""Outcomes counted as failed: a failed attempt, and the last one, which held its item."""

Values = dict[tuple[str, str], float]


def read_counters() -> tuple[Values, bool]:
    """Every (queue, outcome) count, and whether they cover every process (multiprocess)."""
    path = multiprocess_dir()
    metrics: Iterable[Any]
    if path is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        collector = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call, unused-ignore]
        metrics = collector.collect()  # type: ignore[no-untyped-call, unused-ignore]
    else:
        metrics = outcome_counter().collect()
    values: Values = {}
    total = f"{OUTCOMES_METRIC}_total"
    for metric in metrics:
        for sample in metric.samples:
            if sample.name == total:
                key = (sample.labels.get("queue", ""), sample.labels.get("outcome", ""))
                values[key] = values.get(key, 0.0) + sample.value
    return values, path is not None


class OutcomeRates:
    """A minute of counter samples, and the per-minute rates they give."""

    def __init__(
        self,
        reader: Callable[[], tuple[Values, bool]] = read_counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._clock = clock
        self._samples: collections.deque[tuple[float, Values]] = collections.deque()
        self._everywhere = False
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """Where the counts come from, for the page's footnote."""
        if self._everywhere:
            return "the outcome counters of every process on this host (PROMETHEUS_MULTIPROC_DIR)"
        return "passes run by this UI process only (set PROMETHEUS_MULTIPROC_DIR for the workers')"

    def sample(self) -> None:
        """Read the counters, at most once a second; keep a window's worth."""
        now = self._clock()
        with self._lock:
            if self._samples and now - self._samples[-1][0] < SAMPLE_EVERY:
                return
        try:
            values, everywhere = self._reader()
        except Exception:  # a multiprocess file being written: next time
            return
        with self._lock:
            self._everywhere = everywhere
            self._samples.append((now, values))
            # Keep the newest sample older than the window: the baseline.
            while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
                self._samples.popleft()

    def per_minute(self, queue: str) -> tuple[float | None, float | None]:
        """(processed, failed) a minute for ``queue``; None where unknown."""
        with self._lock:
            if len(self._samples) < 2:
                return None, None
            (then, before), (now, latest) = self._samples[0], self._samples[-1]
            everywhere = self._everywhere
        span = now - then
        if span < MIN_SPAN:
            return None, None
        if not everywhere and not any(key[0] == queue for key in latest):
            return None, None
        return (
            _rate(before, latest, queue, ("processed",), span),
            _rate(before, latest, queue, FAILED, span),
        )


def _rate(
    before: Values, latest: Values, queue: str, outcomes: tuple[str, ...], span: float
) -> float | None:
    delta = sum(latest.get((queue, o), 0.0) - before.get((queue, o), 0.0) for o in outcomes)
    if delta < 0:
        return None
    return delta / span * 60.0


def rate_text(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
