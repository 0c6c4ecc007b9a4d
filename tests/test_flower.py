"""Flower beside a real worker on the embedded default: each run by queue, its counts live.

A worker and ``celery -A bridge flower --basic-auth=...`` (as deploy/ runs
it) run as subprocesses on a free local port. The test asks Flower's API to
run one queue, as an operator would, and polls the task while it runs: its
name carries the queue (``bridge.process_queue:<queue>``), its result shows
the running counts while the state is ``PROGRESS``, and no count lands in
one of Flower's own fields (``failed`` once showed as a 1970 timestamp).
Without credentials the API answers 401, while ``/metrics`` and
``/healthcheck`` stay open.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge

from celery_processes import Processes, free_port, http_get

ITEMS = 12
ITEM_SECONDS = 0.4
"""Long enough for Flower, which polls the filesystem broker each second, to see PROGRESS."""
LOGIN = "ops:s3cret"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"fq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def _request(url: str, body: Any = None, auth: bool = True) -> Any:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(LOGIN.encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers=headers, method="GET" if body is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _get_json(url: str) -> Any:
    try:
        return _request(url)
    except (OSError, ValueError):
        return None


def _flower_sees_worker(base: str) -> bool:
    try:
        text = http_get(f"{base}/metrics")
    except OSError:
        return False
    return re.search(r"^flower_worker_online\{[^}]*\} 1\.0$", text, re.MULTILINE) is not None


def test_flower_lists_each_run_by_queue_with_its_counts_while_it_runs(
    procs: Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite").get(
        procs.queue
    )
    procs.env["TEST_ITEM_SECONDS"] = str(ITEM_SECONDS)
    base = f"http://127.0.0.1:{free_port()}"
    procs.worker("--concurrency", "1")
    procs.start(
        "flower",
        f"--port={base.rsplit(':', 1)[1]}",
        "--address=127.0.0.1",
        f"--basic-auth={LOGIN}",
        name="flower",
    )
    procs.wait_for("Flower to see the worker online", lambda: _flower_sees_worker(base), timeout=60)

    queue.create_items([f"item-{n}" for n in range(ITEMS)])
    task_id = _request(
        f"{base}/api/task/async-apply/bridge.process_queue",
        {"args": [procs.queue], "kwargs": {"time_limit": 30}},
    )["task-id"]
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        info = _get_json(f"{base}/api/task/info/{task_id}") or {}
        seen.append(info)
        return info.get("state") == "SUCCESS"

    procs.wait_for("Flower to show the task succeeded", finished, timeout=60)

    name = f"bridge.process_queue:{procs.queue}"
    running = [info for info in seen if info.get("state") == "PROGRESS"]
    assert running, (
        f"Flower never showed PROGRESS, only {sorted({str(i.get('state')) for i in seen})}"
    )
    counts = ast.literal_eval(running[-1]["result"])
    assert counts["queue"] == procs.queue
    assert 0 < counts["processed"] < ITEMS
    assert counts["stopped_by"] == "running"
    assert all(info.get("failed") is None for info in seen), "a count in Flower's failed field"

    listing = _request(f"{base}/api/tasks?taskname={name}")
    task = listing[task_id]
    assert task["name"] == name
    result = ast.literal_eval(task["result"])
    assert (result["queue"], result["processed"], result["stopped_by"]) == (
        procs.queue,
        ITEMS,
        "empty",
    )
    assert task["failed"] is None
    assert _request(f"{base}/api/tasks?search=name:{procs.queue}").keys() == {task_id}
    with capsys.disabled():
        shown = {k: task[k] for k in ("name", "args", "state", "result", "worker")}
        print(
            f"\nGET /api/tasks?taskname={name} ->\n{json.dumps({task_id: shown}, indent=2)}"
            f"\nwhile running: {running[-1]['result']}"
        )

    metrics = http_get(f"{base}/metrics")
    assert re.search(
        rf'flower_events_total\{{[^}}]*task="{re.escape(name)}"[^}}]*'
        r'type="task-progress"[^}]*\} [1-9]',
        metrics,
    ), metrics
    assert queue.number_of_items() == 0

    with pytest.raises(urllib.error.HTTPError) as refused:
        _request(f"{base}/api/tasks", auth=False)
    assert refused.value.code == 401
    assert "flower_" in http_get(f"{base}/metrics"), "/metrics stays open for Prometheus"
    assert http_get(f"{base}/healthcheck").strip() == "OK"
