"""A pass started from the UI through Celery: a real worker process runs it.

The worker is ``celery -A bridge worker`` on the embedded filesystem broker
and SQLite results under the test's directory (``tests/celery_processes``);
the UI sends ``bridge.process_queue`` with an app of the test's own
configured the same way, and reads the pass's end from the result backend.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import bridge
import bridge.celery

from .pages import parse, post, queue_path
from celery_processes import Processes

pytestmark = pytest.mark.usefixtures("empty_registry")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"uq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def test_a_pass_runs_in_a_celery_worker_and_its_end_is_read_back(
    procs: Processes, make_app: Callable[..., Any]
) -> None:
    factory = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite")
    queue = factory.get(procs.queue)
    queue.create_items([f"item{n}" for n in range(6)])
    # The UI's process knows the worker too: it offers the button and sets the limits.
    bridge.queue_worker(procs.queue, cron_time=1)(lambda data: None)
    client_app = procs.client()
    bridge.celery.init_app(client_app)
    procs.worker("--concurrency", "1")
    procs.wait_for("the worker", lambda: "ready." in procs.log(), timeout=60)

    app = make_app(factory, runs="celery", celery_app=client_app)
    with TestClient(app) as client:
        page = parse(client.get(queue_path(queue.name)).text)
        assert "through Celery" in page.text
        answer = post(
            client, queue_path(queue.name), queue_path(queue.name, "run"), time_limit="20"
        )
        assert answer.status_code == 303
        location = answer.headers["location"]
        first = client.get(f"{location}.json").json()
        assert first["via"] == "celery"
        assert first["status"] in ("queued", "running", "empty")
        deadline = time.monotonic() + 60
        progress = first
        while not progress["finished"] and time.monotonic() < deadline:
            time.sleep(0.2)
            progress = client.get(f"{location}.json").json()
        assert progress["finished"], f"{progress}\n{procs.logs()}"
        assert progress["status"] == "empty"
        assert progress["summary"]["processed"] == 6
        assert (progress["value"], progress["max"]) == (6, 6)
    assert queue.number_of_items() == 0
    pids = {record.pid for record in procs.records()}
    assert pids, "the worker ran nothing"
    assert os.getpid() not in pids, "the items ran in the Celery worker, not here"
    factory.close()


def test_a_pass_no_worker_takes_does_not_block_the_next_for_ever(
    procs: Processes, make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.ui import runs

    monkeypatch.setattr(runs, "GIVE_UP_AFTER", 1.0)
    factory = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite")
    queue = factory.get(procs.queue)
    queue.create_item("waits")
    bridge.queue_worker(procs.queue, cron_time=5)(lambda data: None)
    client_app = procs.client()
    bridge.celery.init_app(client_app)
    app = make_app(factory, runs="celery", celery_app=client_app)  # and no worker runs
    with TestClient(app) as client:
        action = queue_path(queue.name, "run")
        first = post(client, queue_path(queue.name), action)
        assert first.status_code == 303
        assert client.get(f"{first.headers['location']}.json").json()["status"] == "queued"
        assert post(client, queue_path(queue.name), action).status_code == 409
        time.sleep(1.2)
        second = post(client, queue_path(queue.name), action)
        assert second.status_code == 303, "the first waited too long: revoked"
        gone = client.get(f"{first.headers['location']}.json").json()
        assert gone["status"] == "error"
        assert "revoked" in gone["error"]
    assert queue.number_of_items() == 1
    factory.close()
