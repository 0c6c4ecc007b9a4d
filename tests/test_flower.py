"""Flower beside a real worker on the embedded default: bridge's tasks, by queue, with summaries.

A worker and ``celery -A bridge flower`` run as subprocesses on a free local
port. The test asks Flower's API to run one queue (as an operator would),
watches the task go through ``PROGRESS`` and reads the summary back from
``/api/tasks``; Flower's ``/metrics`` must have counted the progress events.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_processes import Processes, free_port, http_get

import bridge

ITEMS = 8
ITEM_SECONDS = 0.3
"""Long enough for Flower, which polls the filesystem broker each second, to see PROGRESS."""


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"fq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def _get_json(url: str) -> Any:
    try:
        return json.loads(http_get(url))
    except (OSError, ValueError):
        return None


def _flower_sees_worker(base: str) -> bool:
    try:
        text = http_get(f"{base}/metrics")
    except OSError:
        return False
    return re.search(r"^flower_worker_online\{[^}]*\} 1\.0$", text, re.MULTILINE) is not None


def _run_queue_through_flower(base: str, name: str) -> str:
    body = json.dumps({"args": [name], "kwargs": {"time_limit": 30}}).encode()
    request = urllib.request.Request(
        f"{base}/api/task/async-apply/bridge.process_queue", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        task_id: str = json.loads(response.read())["task-id"]
        return task_id


def test_flower_lists_bridge_tasks_by_queue_with_progress_and_summary(procs: Processes) -> None:
    queue = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite").get(
        procs.queue)
    procs.env.update(FLOWER_UNAUTHENTICATED_API="true", TEST_ITEM_SECONDS=str(ITEM_SECONDS))
    base = f"http://127.0.0.1:{free_port()}"
    procs.worker("--concurrency", "1")
    procs.start("flower", f"--port={base.rsplit(':', 1)[1]}", "--address=127.0.0.1",
                name="flower")
    procs.wait_for("Flower to see the worker online", lambda: _flower_sees_worker(base),
                   timeout=45)

    queue.create_items([f"item-{n}" for n in range(ITEMS)])
    task_id = _run_queue_through_flower(base, procs.queue)
    states: list[str] = []

    def finished() -> bool:
        info = _get_json(f"{base}/api/task/info/{task_id}") or {}
        states.append(str(info.get("state")))
        return info.get("state") == "SUCCESS"

    procs.wait_for("Flower to show the task succeeded", finished, timeout=45)

    tasks = _get_json(f"{base}/api/tasks?taskname=bridge.process_queue")
    task = tasks[task_id]
    assert task["name"] == "bridge.process_queue"
    assert procs.queue in task["args"]
    result = task["result"]
    assert f"'queue': '{procs.queue}'" in result
    assert f"'processed': {ITEMS}" in result
    assert "'stopped_by': 'empty'" in result
    assert "PROGRESS" in states, f"Flower never showed PROGRESS, only {sorted(set(states))}"
    metrics = http_get(f"{base}/metrics")
    assert re.search(r'flower_events_total\{[^}]*type="task-progress"[^}]*\} [1-9]', metrics)
    assert queue.number_of_items() == 0


def test_flower_api_needs_auth_unless_opened(procs: Processes) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    procs.start("flower", f"--port={base.rsplit(':', 1)[1]}", "--address=127.0.0.1",
                "--basic-auth=ops:secret", name="flower")

    def answers() -> bool:
        try:
            http_get(f"{base}/healthcheck")
        except OSError:
            return False
        return True

    procs.wait_for("Flower to answer", answers, timeout=30)
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_get(f"{base}/api/tasks")
    assert refused.value.code == 401
    assert "flower_" in http_get(f"{base}/metrics"), "/metrics stays open for Prometheus"
