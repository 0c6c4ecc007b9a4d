"""bridge in the user's own Celery app, routing per queue, and failing loudly; real processes.

- ``init_app`` on a user's app with its own broker (Redis): the user's
  ``@shared_task`` and a bridge cron queue run in one worker, and the user's
  task goes to the user's broker even when bridge's modules were imported
  first (they once made bridge's app the current one).
- A queue routed to a Celery queue of its own is served only by the worker
  that consumes it.
- A worker module that cannot be imported stops ``celery worker`` and
  ``celery beat`` at start with one line; a queue whose worker the worker
  process lacks fails its task with a clear error.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge

from celery_processes import WORKER_MODULE, Processes
from conftest import REDIS_URL


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"aq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def _queue(procs: Processes, name: str | None = None) -> bridge.Queue:
    factory = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite")
    return factory.get(name or procs.queue)


def _drained(procs: Processes, queue: bridge.Queue, expected: set[str]) -> bool:
    return set(procs.starts()) >= expected and queue.number_of_items() == 0


USER_PROJECT = """
import os

from celery import Celery, shared_task

import bridge.celery

app = Celery("userproj")
app.conf.update(
    broker_url=os.environ["USER_BROKER"],
    task_default_queue=os.environ["USER_QUEUE"],
    beat_schedule_filename=os.environ["USER_BEAT_FILE"],
)
bridge.celery.init_app(app, imports=[os.environ["USER_WORKERS"]],
                       schedules={os.environ["TEST_QUEUE"]: 1})


@shared_task(name="userproj.note")
def note(text):
    with open(os.environ["USER_RECORD"], "a") as record:
        record.write(text + "\\n")
"""

SENDER = """
import bridge.celery.schedules  # bridge first: it must not take the current app
import celery
import userproj
assert celery.current_app._get_current_object() is userproj.app, celery.current_app
userproj.note.delay("from the user's app")
"""


@pytest.mark.service("redis")
def test_init_app_runs_the_users_task_and_a_bridge_cron_queue_in_one_worker(
    procs: Processes,
) -> None:
    user_queue = f"userproj_{uuid.uuid4().hex[:10]}"
    (procs.tmp_path / "userproj.py").write_text(USER_PROJECT)
    record = procs.tmp_path / "user-record.txt"
    del procs.env["BRIDGE_IMPORTS"]  # the worker module comes from init_app(imports=...)
    procs.env.update(
        USER_BROKER=REDIS_URL,
        USER_QUEUE=user_queue,
        USER_RECORD=str(record),
        USER_WORKERS=WORKER_MODULE,
        USER_BEAT_FILE=str(procs.tmp_path / "beat"),
    )
    queue = _queue(procs)
    queue.create_items(["a", "b", "c"])
    try:
        procs.start(
            "-A",
            "userproj",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            command=[sys.executable, "-m", "celery"],
        )
        procs.wait_for(
            "the bridge cron queue to be drained",
            functools.partial(_drained, procs, queue, {"a", "b", "c"}),
            timeout=60,
        )
        sent = subprocess.run(
            [sys.executable, "-c", SENDER],
            cwd=procs.tmp_path,
            env=procs.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        procs.wait_for("the user's task to run", lambda: record.exists(), timeout=60)
    finally:
        procs.stop_all()
        queue.delete_queue()
        _delete_redis_keys(user_queue)
    assert record.read_text() == "from the user's app\n"
    log = procs.log()
    assert f"Sending due task bridge.process_queue:{procs.queue}" in log
    assert "userproj.note" in log
    assert not (procs.tmp_path / "var").exists(), "something used bridge's embedded broker"


def test_a_queue_routed_to_its_own_celery_queue_is_served_by_its_own_workers(
    procs: Processes,
) -> None:
    slow = f"{procs.queue}_slow"
    celery_queue = f"bridge.{slow}"
    procs.env.update(
        TEST_QUEUE_2=slow, BRIDGE_SCHEDULES=json.dumps({slow: {"every": 1, "queue": celery_queue}})
    )
    queue, slow_queue = _queue(procs), _queue(procs, slow)
    procs.worker(
        "--beat",
        "--concurrency",
        "1",
        "-Q",
        "bridge",
        "--hostname",
        "main@%h",
        name="main",
        env={"TEST_WORKER_NAME": "main"},
    )
    procs.worker(
        "--concurrency",
        "1",
        "-Q",
        celery_queue,
        "--hostname",
        "slow@%h",
        name="slow",
        env={"TEST_WORKER_NAME": "slow"},
    )
    queue.create_items([f"fast-{n}" for n in range(5)])
    slow_queue.create_items([f"slow-{n}" for n in range(5)])
    expected = {f"{kind}-{n}" for kind in ("fast", "slow") for n in range(5)}
    procs.wait_for(
        "both queues to be drained",
        lambda: (
            set(procs.starts()) >= expected
            and not queue.number_of_items()
            and not slow_queue.number_of_items()
        ),
        timeout=60,
    )
    served = {(record.data.split("-")[0], record.worker) for record in procs.records()}
    assert served == {("fast", "main"), ("slow", "slow")}


def _run(args: list[str], procs: Processes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", *args],
        cwd=procs.tmp_path,
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=90,
    )


BAD_PROJECT = """
from celery import Celery
import bridge.celery

app = Celery("badproj", broker="memory://")
bridge.celery.init_app(app, imports=["{module}"])
"""


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("nowhere.workers", "ModuleNotFoundError: No module named 'nowhere'"),
        ("broken_workers", "RuntimeError: no database configured"),
    ],
)
def test_a_worker_module_that_cannot_be_imported_stops_worker_and_beat_at_start(
    procs: Processes, module: str, reason: str
) -> None:
    (procs.tmp_path / "broken_workers.py").write_text(
        "raise RuntimeError('no database configured')\n"
    )
    (procs.tmp_path / "badproj.py").write_text(BAD_PROJECT.format(module=module))
    procs.env["BRIDGE_IMPORTS"] = module
    expected = f"bridge: cannot import worker module {module!r} (from BRIDGE_IMPORTS): {reason}"
    for args in (["-A", "bridge", "worker", "--beat"], ["-A", "bridge", "beat"]):
        done = _run(args, procs)
        assert done.returncode != 0, (args, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines()[-1] == expected, (args, done.stderr)
        assert "Traceback" not in done.stderr
    del procs.env["BRIDGE_IMPORTS"]
    done = _run(["-A", "badproj", "worker"], procs)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"bridge: cannot import worker module {module!r}: {reason}"
    ), done.stderr


def test_a_queue_whose_worker_the_worker_process_lacks_fails_its_task(procs: Processes) -> None:
    procs.worker("--concurrency", "1")
    client = procs.client()
    result = client.send_task("bridge.process_queue", args=["nobody"])
    with pytest.raises(
        Exception,
        match=r"no worker is registered for queue 'nobody' in this "
        rf"worker process .*worker modules: {WORKER_MODULE}",
    ):
        result.get(timeout=60)
    assert result.state == "FAILURE"
    no_cron = client.send_task("bridge.run_cron")
    assert no_cron.get(timeout=60), "the test worker is a cron queue: run_cron has it"


def _delete_redis_keys(fragment: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{fragment}*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def _no_stray_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("CELERY_")]:
        monkeypatch.delenv(key)
