"""``bridge celery-demo``: the real thing on the embedded default, fed and watched.

Starts ``celery -A bridge worker --beat`` as a child process with the demo
worker registered (``BRIDGE_IMPORTS`` gains ``bridge.demo``) and beat ticking
the ``bridge_demo`` queue every 2 s, optionally Flower beside it, then feeds
the queue from this process and prints, each second, what was created, what
the worker drained and what each finished task reported. It ends with the
same pieces as commands to run by hand; each works as printed (a test runs
them).

Flower is started first and must answer before anything else starts: a
taken port is refused up front, and a Flower that exits anyway is reported
with the end of its log, never left to a log file nobody reads.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from bridge.demo import DEMO_QUEUE, demo_items
from bridge.errors import BridgeError
from bridge.factory import QueueFactory
from bridge.metrics import queue_depth
from bridge.queue import Queue

DEMO_EVERY = 2.0
"""Seconds between beat ticks of the demo queue (its cron_time is 10)."""
FLOWER_PORT = 5555
FLOWER_START = 60.0
"""Seconds Flower may take to answer on a slow machine."""


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment plus the demo worker module and its short beat interval."""
    env = dict(environ)
    imports = [m.strip() for m in env.get("BRIDGE_IMPORTS", "").split(",") if m.strip()]
    env["BRIDGE_IMPORTS"] = ",".join(
        [*imports, "bridge.demo"] if "bridge.demo" not in imports else imports
    )
    schedules = json.loads(env.get("BRIDGE_SCHEDULES") or "{}")
    schedules.setdefault(DEMO_QUEUE, DEMO_EVERY)
    env["BRIDGE_SCHEDULES"] = json.dumps(schedules)
    return env


@contextmanager
def _child(
    args: list[str], env: Mapping[str, str], log: IO[bytes]
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group: asked to stop at exit (a Celery warm shutdown),
    its whole group killed if it has not within 20 s."""
    proc = subprocess.Popen(
        args, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _task_lines(log: Path, offset: int) -> tuple[list[str], int]:
    """One line per finished bridge task in the worker's log since ``offset``."""
    with log.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    found = []
    for line in complete.decode(errors="replace").splitlines():
        head, sep, result = line.partition("succeeded in ")
        if not sep or "bridge.process_queue" not in head:
            continue
        try:
            summary = ast.literal_eval(result.split(": ", 1)[1])
        except (IndexError, SyntaxError, ValueError):
            continue
        found.append(
            f"    task: {summary['queue']} processed {summary['processed']} in "
            f"{summary['elapsed']:.2f} s, stopped by {summary['stopped_by']}"
        )
    return found, offset + len(complete)


def _feed(
    queue: Queue,
    worker: subprocess.Popen[bytes],
    log: Path,
    echo: Callable[[str], Any],
    seconds: float,
    rate: int,
) -> int:
    """Create ``rate`` items a second and report; how many items were created."""
    left_before = queue.number_of_items()
    created, offset, started = 0, 0, time.monotonic()
    try:
        while not seconds or time.monotonic() - started < seconds:
            if worker.poll() is not None:
                raise BridgeError(f"the worker exited with {worker.returncode}; see {log}")
            queue.create_items(demo_items(rate))
            created += rate
            time.sleep(1.0)
            depth = queue_depth(DEMO_QUEUE, queue.backend)
            waiting = depth.total or 0
            states = (
                f" (ready {depth.counts.ready}, leased {depth.counts.leased})"
                if depth.counts
                else ""
            )
            echo(
                f"{time.monotonic() - started:5.0f} s  created {created:5d}  processed "
                f"{created + left_before - waiting:5d}  waiting {waiting:4d}{states}"
            )
            lines, offset = _task_lines(log, offset)
            for line in lines:
                echo(line)
    except KeyboardInterrupt:
        echo("Stopping.")
    return created + left_before


def check_port_free(port: int) -> None:
    """Refuse a port something already listens on, before anything starts."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BridgeError(
                f"cannot run Flower on port {port}: {exc.strerror or exc}; another Flower? "
                "Pick a free port with --flower-port"
            ) from None


def _flower_command(port: int) -> list[str]:
    # Bound to localhost, so its API may be open without a login (a laptop demo).
    return ["flower", "--address=127.0.0.1", f"--port={port}"]


def _wait_for_flower(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until Flower answers its health check; a clear error if it exits or never does."""
    deadline = time.monotonic() + FLOWER_START
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise BridgeError(f"Flower exited with {proc.returncode}: {lines[-1]} (see {log})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise BridgeError(
        f"Flower did not answer on port {port} within {FLOWER_START:.0f} s (see {log})"
    )


def next_commands(flower_port: int) -> list[str]:
    """The demo's pieces as commands a user runs by hand, each working as printed."""
    flower = " ".join(["celery", "-A", "bridge", *_flower_command(flower_port)])
    return [
        "BRIDGE_IMPORTS=bridge.demo celery -A bridge worker --beat --loglevel INFO",
        f"FLOWER_UNAUTHENTICATED_API=true {flower}",
        "bridge metrics --port 9808",
        # The Queue UI (docs/ui.md): the demo queue's items, held failures and a pass run by hand.
        "bridge --import bridge.demo ui --port 8010",
        f"bridge --import bridge.demo queue send {DEMO_QUEUE} {shlex.quote(json.dumps({'n': 27}))}",
    ]


def run_demo(
    factory: QueueFactory,
    echo: Callable[[str], Any],
    seconds: float,
    rate: int,
    concurrency: int,
    flower: bool,
    flower_port: int = FLOWER_PORT,
) -> None:
    """Run a worker with beat (and Flower) while feeding ``rate`` items a second."""
    if flower:
        check_port_free(flower_port)
    queue = factory.get(DEMO_QUEUE)
    queue.create_queue()
    env = worker_environment(os.environ)
    var = Path(os.environ.get("BRIDGE_VAR_DIR") or "var")
    log, flower_log = var / "celery-demo.log", var / "celery-demo-flower.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    celery = [sys.executable, "-m", "celery", "-A", "bridge"]
    with ExitStack() as stack:
        if flower:
            out = stack.enter_context(flower_log.open("wb"))
            proc = stack.enter_context(
                _child(
                    [*celery, *_flower_command(flower_port)],
                    {**env, "FLOWER_UNAUTHENTICATED_API": "true"},
                    out,
                )
            )
            _wait_for_flower(proc, flower_port, flower_log)
            echo(
                f"Flower: http://localhost:{flower_port}/tasks (its API too, on this machine "
                f"only: curl http://localhost:{flower_port}/api/tasks); its log: {flower_log}"
            )
        out = stack.enter_context(log.open("wb"))
        worker = stack.enter_context(
            _child(
                [
                    *celery,
                    "worker",
                    "--beat",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    str(concurrency),
                ],
                env,
                out,
            )
        )
        echo(f"Started `celery -A bridge worker --beat` (pid {worker.pid}); its log: {log}")
        echo(
            f"Feeding {rate} items a second into {DEMO_QUEUE} on {queue.backend.url}; Ctrl-C stops."
        )
        total = _feed(queue, worker, log, echo, seconds, rate)
    left = queue.number_of_items()
    echo(
        f"\nThe worker drained {total - left} items; {left} wait for the next run.\n"
        "Next, run the pieces yourself (each in its own terminal):"
    )
    for command in next_commands(flower_port):
        echo(f"  {command}")
