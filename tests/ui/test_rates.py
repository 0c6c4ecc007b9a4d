"""Processed and failed a minute: from real passes' outcome counters, on a clock of the test's.

In this process (the passes the UI ran) and, with ``PROMETHEUS_MULTIPROC_DIR``,
from another process that ran a pass, as a Celery worker does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge.ui.rates import OutcomeRates, rate_text

pytestmark = pytest.mark.usefixtures("empty_registry")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_of_the_passes_this_process_ran() -> None:
    name = f"r_{uuid.uuid4().hex[:8]}"

    @bridge.queue_worker(name, max_attempts=1)
    def work(data: Any) -> None:
        if data == "bad":
            raise ValueError("bad item")

    factory = bridge.QueueFactory(default="memory://")
    clock = Clock()
    rates = OutcomeRates(clock=clock)
    rates.sample()
    assert rates.per_minute(name) == (None, None), "one sample gives no rate"

    factory.get(name).create_items(["ok"] * 5 + ["bad", "bad"])
    summary = bridge.process_queue(name, factory=factory)
    assert (summary.processed, summary.held) == (5, 2)

    clock.now += 5
    rates.sample()
    assert rates.per_minute(name) == (None, None), "5 s is too short a span"
    clock.now += 25
    rates.sample()
    processed, failed = rates.per_minute(name)
    assert processed == pytest.approx(5 / 30 * 60)
    assert failed == pytest.approx(2 / 30 * 60)
    assert rates.per_minute(f"never_{name}") == (None, None), "not run here: unknown, not 0"
    assert "this UI process only" in rates.source
    assert (rate_text(processed), rate_text(0.0), rate_text(None)) == ("10", "0", "—")

    clock.now += 120  # a quiet window: the rate falls to 0, still known
    rates.sample()
    clock.now += 30
    rates.sample()
    assert rates.per_minute(name) == (0.0, 0.0)


def test_rates_of_another_process_through_the_multiprocess_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    name = f"m_{uuid.uuid4().hex[:8]}"
    clock = Clock()
    rates = OutcomeRates(clock=clock)
    rates.sample()

    script = textwrap.dedent(
        f"""
        import bridge
        bridge.queue_worker({name!r})(lambda data: None)
        factory = bridge.QueueFactory(default="memory://")
        factory.get({name!r}).create_items(list(range(4)))
        assert bridge.process_queue({name!r}, factory=factory).processed == 4
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)

    clock.now += 60
    rates.sample()
    processed, failed = rates.per_minute(name)
    assert processed == pytest.approx(4.0)
    assert failed == 0.0
    assert rates.per_minute(f"other_{name}") == (0.0, 0.0), "every process is seen: 0 is known"
    assert "every process on this host" in rates.source
