"""The Celery path against the direct loop: what running bridge's worker under Celery costs.

One child process (``python -m benchmarks.celery_path URL JOBS``) per backend
does both halves on the same queue:

* Celery: it fills the queue, starts ``celery -A bridge worker`` (solo pool,
  Redis broker and result backend on database 10) in a process of its own,
  waits until the worker answers a ping, sends one ``bridge.process_queue``
  task and times from the send until its result arrives; then it checks
  the queue is empty with its own read.
* Direct: it fills the queue again and times ``bridge.process_queue`` called
  in the child itself, as ``bridge queue run`` would.

Both run the no-op worker of ``benchmarks.noop_worker``, so the difference
is the task's overhead: its start, the runner's progress events, and the
worker process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import ROOT, Logs, child_env
from benchmarks.services import Services

BROKER = "redis://127.0.0.1:6379/10"
FILL_BATCH = 1000


@dataclass
class CeleryPath:
    family: str = ""
    jobs: int = 0
    celery: float | None = None  # jobs/s
    direct: float | None = None
    error: str = ""


def run(services: Services, quick: bool, logs: Logs) -> list[CeleryPath]:
    results = []
    for family in ("postgresql", "sqlite"):
        services.prepare(family)
        jobs = 300 if quick else 20_000
        result = CeleryPath(family, jobs)
        results.append(result)
        with logs.open(f"celery-path-{family}", "run") as log:
            command = [
                sys.executable,
                "-m",
                "benchmarks.celery_path",
                services.url(family, "celery-path"),
                str(jobs),
                str(log.name),
            ]
            done = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=child_env(),
                cwd=ROOT,
                timeout=1800,
                check=False,
            )
            if done.returncode:
                result.error = f"celery_path exited with {done.returncode}\n{Logs.tail(log)}"
            else:
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                result.celery, result.direct = figures["celery"], figures["direct"]
        print(
            f"  celery path {family}: {result.celery} vs direct {result.direct} jobs/s",
            file=sys.stderr,
            flush=True,
        )
    return results


def _fill(queue: Any, jobs: int) -> None:
    queue.delete_queue()
    for start in range(0, jobs, FILL_BATCH):
        queue.create_items([{"n": n} for n in range(start, min(jobs, start + FILL_BATCH))])


def _worker(url: str, log_path: str) -> subprocess.Popen[bytes]:
    env = child_env()
    env.update(
        BRIDGE_QUEUE_DEFAULT=url,
        BRIDGE_IMPORTS="benchmarks.noop_worker",
        BRIDGE_BROKER_URL=BROKER,
        BRIDGE_RESULT_BACKEND=BROKER,
    )
    log = open(log_path, "a")  # noqa: SIM115 - the worker's stderr for its lifetime
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bridge",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench-{os.getpid()}@%h",
        ],
        stdout=log,
        stderr=log,
        env=env,
        cwd=ROOT,
    )


def _measure(url: str, jobs: int, log_path: str) -> dict[str, float]:
    os.environ.update(
        BRIDGE_QUEUE_DEFAULT=url, BRIDGE_BROKER_URL=BROKER, BRIDGE_RESULT_BACKEND=BROKER
    )
    import bridge
    from benchmarks import noop_worker
    from bridge.celery import app
    from bridge.runner import process_queue

    queue = bridge.get_queue(noop_worker.QUEUE)
    queue.delete_queue()
    app.connection_for_write().default_channel.client.flushdb()  # no stale tasks
    worker = _worker(url, log_path)
    try:
        deadline = time.monotonic() + 120
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the Celery worker did not answer a ping")
        # One run on the empty queue first: the worker opens its queue and
        # connections then, as the direct loop below has already done.
        app.send_task("bridge.process_queue", args=(noop_worker.QUEUE,)).get(timeout=120)
        _fill(queue, jobs)
        started = time.monotonic()
        result = app.send_task("bridge.process_queue", args=(noop_worker.QUEUE,))
        summary = result.get(timeout=900)
        celery = jobs / (time.monotonic() - started)
        if summary["processed"] != jobs or queue.number_of_items():
            raise SystemExit(f"the Celery run processed {summary['processed']} of {jobs}")
    finally:
        worker.terminate()
        worker.wait(30)
    _fill(queue, jobs)
    started = time.monotonic()
    summary = process_queue(noop_worker.QUEUE)
    direct = jobs / (time.monotonic() - started)
    if summary.processed != jobs:
        raise SystemExit(f"the direct run processed {summary.processed} of {jobs}")
    queue.delete_queue()
    return {"celery": celery, "direct": direct}


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
