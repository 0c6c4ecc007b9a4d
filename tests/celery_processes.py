"""Real Celery processes for tests: a worker module in tmp_path, start, wait, stop.

Every process starts in its own process group with its output in a log file
under tmp_path, and :meth:`Processes.stop_all` (run by the fixture whatever
the test did) asks each to stop and kills its whole group if it will not, so
no pool child or embedded beat outlives a test. A failed wait names what it
waited for and shows the tail of every log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery

from bridge.celery.config import environment_config, prepare_folders

CELERY = [sys.executable, "-m", "celery", "-A", "bridge"]
WORKER_MODULE = "bridge_test_workers"

WORKER_SOURCE = """
import os, time

import bridge
from bridge.workers import current_item

def work(data):
    item = current_item()
    with open(os.environ["TEST_RECORD"], "a") as record:
        record.write(f"{data} {item.attempts} {os.getpid()} {time.time():.3f} {item.expire:.3f} "
                     f"{os.environ.get('TEST_WORKER_NAME', '-')}\\n")
    if data == "hang":
        time.sleep(600)
    time.sleep(float(os.environ.get("TEST_ITEM_SECONDS", "0")))

for name in filter(None, [os.environ["TEST_QUEUE"], os.environ.get("TEST_QUEUE_2")]):
    bridge.queue_worker(name, cron_time=float(os.environ["TEST_CRON_TIME"]))(work)
"""


@dataclass(frozen=True)
class Record:
    """One start of the test worker on one item."""

    data: str
    attempts: int
    pid: int
    at: float
    expire: float
    """The item's lease deadline when the worker started it."""
    worker: str = "-"
    """``TEST_WORKER_NAME`` of the Celery worker that ran it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode()


@dataclass
class Processes:
    """The test's Celery processes, its environment and its worker module."""

    tmp_path: Path
    queue: str
    env: dict[str, str] = field(default_factory=dict)
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        (self.tmp_path / f"{WORKER_MODULE}.py").write_text(WORKER_SOURCE)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BRIDGE_", "CELERY_", "FLOWER_"))
        }
        self.env = {
            **inherited,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.tmp_path), os.environ.get("PYTHONPATH")])
            ),
            "BRIDGE_IMPORTS": WORKER_MODULE,
            "TEST_QUEUE": self.queue,
            "TEST_CRON_TIME": "1",
            "TEST_RECORD": str(self.tmp_path / "record.txt"),
            **self.env,
        }

    def start(
        self,
        *args: str,
        name: str = "worker",
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``celery -A bridge`` (or ``command``) with ``args``; ``env`` adds variables."""
        log = self.tmp_path / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*(CELERY if command is None else command), *args],
                cwd=self.tmp_path,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((proc, log))
        return proc

    def worker(
        self, *args: str, name: str = "worker", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``celery -A bridge worker`` with INFO logs, plus ``args``.

        A node name of its own unless ``args`` give one: two workers of the same
        name on one RabbitMQ (tests running side by side) share the exclusive
        pidbox queue, and the second one dies on RESOURCE_LOCKED.
        """
        if not any(arg in ("-n", "--hostname") or arg.startswith("--hostname=") for arg in args):
            args = ("--hostname", f"{name}-{uuid.uuid4().hex[:8]}@%h", *args)
        return self.start("worker", "--loglevel", "INFO", *args, name=name, env=env)

    def log(self, name: str = "worker") -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> Celery:
        """A Celery app of this test's own, configured as the processes are, to send tasks."""
        conf = environment_config({**self.env, "BRIDGE_VAR_DIR": str(self.tmp_path / "var")})
        client = Celery("test-client", set_as_current=False)
        client.config_from_object(conf)
        prepare_folders(conf)
        return client

    def records(self) -> list[Record]:
        path = Path(self.env["TEST_RECORD"])
        if not path.exists():
            return []
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        return [Record(d, int(a), int(p), float(t), float(e), w) for d, a, p, t, e, w in rows]

    def starts(self) -> Counter[str]:
        """How often the worker started on each item's data."""
        return Counter(record.data for record in self.records())

    def logs(self, lines: int = 40) -> str:
        tails = []
        for proc, log in self.started:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            tails.append(
                f"--- {log.name} (pid {proc.pid}, exit {proc.poll()}) ---\n"
                + "\n".join(text[-lines:])
            )
        return "\n".join(tails)

    def wait_for(self, what: str, check: Callable[[], object], timeout: float) -> None:
        """Poll ``check`` until true; fail naming ``what`` if a process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            dead = [
                proc
                for proc, _ in self.started
                if proc.pid not in self.killed and proc.poll() is not None
            ]
            if dead:
                pytest.fail(f"a process exited while waiting for {what}:\n{self.logs()}")
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and everything it started (pool children, beat)."""
        self.killed.add(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 3  # for a warm shutdown, unless a task hangs
        for proc, _ in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
