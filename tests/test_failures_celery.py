"""Celery sees failed passes: a pass in which nothing worked is a FAILURE task.

A real ``celery -A bridge worker`` runs one worker module with two queues:
one whose items all fail or are held, one with a failure among successes.
The first task must end in FAILURE with the counts in its error, so that
Flower and monitoring see it; the second is a SUCCESS whose result counts
``failed`` and ``held``.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge.celery.tasks import PassFailed, _raise_if_nothing_worked

from celery_processes import Processes

MODULE = "failing_workers"
SOURCE = textwrap.dedent("""
    import os

    import bridge

    @bridge.queue_worker(os.environ["TEST_QUEUE"], cron_time=60, max_attempts=1)
    def all_bad(data):
        if data == "hold":
            raise bridge.HoldItem("bounced")
        raise RuntimeError("boom")

    @bridge.queue_worker(os.environ["TEST_QUEUE_2"], cron_time=60, max_attempts=5)
    def mixed(data):
        if data == "bad":
            raise RuntimeError("boom")
""")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"cf_{uuid.uuid4().hex[:8]}")
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    made.env["BRIDGE_IMPORTS"] = MODULE
    made.env["TEST_QUEUE_2"] = f"cf_{uuid.uuid4().hex[:8]}"
    try:
        yield made
    finally:
        made.stop_all()


def test_a_pass_that_only_failed_is_a_failure_task_and_a_mixed_one_succeeds(
    procs: Processes,
) -> None:
    store = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite")
    bad, mixed = store.get(procs.queue), store.get(procs.env["TEST_QUEUE_2"])
    bad.create_items(["fail", "hold"])
    mixed.create_items(["good", "bad", "good"])
    procs.worker("--concurrency", "1")
    client = procs.client()

    failed = client.send_task("bridge.process_queue", args=[bad.name])
    failed.get(timeout=60, propagate=False)
    succeeded = client.send_task("bridge.process_queue", args=[mixed.name])
    result = succeeded.get(timeout=60)

    assert failed.state == "FAILURE"
    assert type(failed.result).__name__ == "PassFailed"
    message = str(failed.result)
    assert message.startswith("every item failed or was held: {")
    counts = json.loads(message.split(": ", 1)[1])
    assert (counts["processed"], counts["failed"], counts["held"]) == (0, 0, 2)
    assert counts["remaining"] == 2
    assert bad.counts().held == 2

    assert succeeded.state == "SUCCESS"
    assert (result["processed"], result["failed"], result["held"]) == (2, 1, 0)
    assert result["stopped_by"] == "empty"


def _result(**counts: object) -> dict[str, Any]:
    base: dict[str, Any] = {"processed": 0, "failed": 0, "held": 0, "stopped_by": "empty"}
    return {**base, **counts}


@pytest.mark.parametrize(
    ("results", "fails"),
    [
        ([_result()], False),
        ([_result(processed=1, failed=5, held=2)], False),
        ([_result(failed=1)], True),
        ([_result(held=1)], True),
        ([_result(stopped_by="backend unavailable", processed=3)], True),
        ([_result(failed=1), _result(processed=1)], False),
        ([_result(failed=1), _result(held=1)], True),
    ],
)
def test_which_runs_are_failures(results: list[dict[str, Any]], fails: bool) -> None:
    if fails:
        with pytest.raises(PassFailed):
            _raise_if_nothing_worked(results)
    else:
        _raise_if_nothing_worked(results)
