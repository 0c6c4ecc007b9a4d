"""What the runner reports as it settles items, for metrics to count.

The runner calls :func:`record_outcome` once per settled item; metrics
count them per queue and outcome. Kept apart from both so that the runner
imports no metrics library and metrics import no runner.
"""

from __future__ import annotations


def record_outcome(queue: str, outcome: str) -> None:
    """One item of ``queue`` settled as ``outcome`` (processed, failed, held, lost, ...)."""
