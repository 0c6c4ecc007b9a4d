"""Runs the cells: every system in processes of its own, timed from outside.

For a drain cell the harness fills the queue through the system's control
process (a bulk enqueue, timed, which is also the enqueue figure), starts
the consumer processes and waits until each has built its system and said
ready, then releases them all at once. The cell's time runs from that
release to the last completion any consumer reports (``time.monotonic()``
is one clock for every process), and the harness checks with the system's
own storage that nothing is left and that the consumers completed exactly
as many jobs as were queued.
"""

from __future__ import annotations

import json
import os
import re
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class CellFailed(Exception):
    """A system failed or misbehaved in one cell; the run goes on without it."""


@dataclass
class Cell:
    """One measured figure: a system in one scenario, median of its repetitions."""

    family: str
    system: str
    label: str
    scenario: str  # "drain", "enqueue"
    consumers: int
    batch: int
    jobs: int
    rates: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def rate(self) -> float | None:
        return statistics.median(self.rates) if self.rates and not self.error else None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Logs:
    """Where the children's stderr goes: one file each, shown when a cell fails."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def open(self, key: str, role: str) -> Any:
        self.count += 1
        name = re.sub(r"[^A-Za-z0-9]+", "-", f"{self.count:04d}-{key}-{role}")
        return open(self.directory / f"{name}.log", "w")

    @staticmethod
    def tail(handle: Any, lines: int = 12) -> str:
        handle.flush()
        text = Path(handle.name).read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


def _read_line(proc: subprocess.Popen[str], timeout: float, what: str, log: Any) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        reason = "timed out" if not ready else f"exited with {proc.wait()}"
        raise CellFailed(f"{what} {reason}\n{Logs.tail(log)}")
    message: dict[str, Any] = json.loads(line)
    if "error" in message:
        raise CellFailed(f"{what}: {message['error']}\n{Logs.tail(log)}")
    return message


class Control:
    """A system's control process: reset, enqueue (timed inside), remaining."""

    def __init__(self, key: str, url: str, logs: Logs) -> None:
        self.key, self.log = key, logs.open(key, "control")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", "control", key, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=child_env(),
            cwd=ROOT,
        )

    def call(self, timeout: float, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise CellFailed(f"{self.key} control died\n{Logs.tail(self.log)}") from None
        return _read_line(self.proc, timeout, f"{self.key} {op}", self.log)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call(30, "quit")
            except CellFailed:
                pass
            except (BrokenPipeError, json.JSONDecodeError):
                self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def drain_once(
    key: str,
    url: str,
    control: Control,
    logs: Logs,
    *,
    consumers: int,
    batch: int,
    jobs: int,
    timeout: float,
    settle: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Fill, drain with ``consumers`` processes; returns (enqueue jobs/s, drain jobs/s).

    ``settle`` runs between the fill and the drain, untimed: the database's
    housekeeping (statistics, dead rows) is then the same for every system.
    """
    control.call(timeout, "reset")
    filled = control.call(timeout, "enqueue", count=jobs, batch=100)["elapsed"]
    # A broker's count may trail publishes it has not processed yet (RabbitMQ
    # without publisher confirms): give it a moment, untimed.
    deadline = time.monotonic() + 10
    while (held := control.call(timeout, "remaining")["remaining"]) != jobs:
        if time.monotonic() > deadline:
            raise CellFailed(f"{key}: the queue holds {held} of the {jobs} jobs just enqueued")
        time.sleep(0.1)
    settle()
    procs, handles = [], []
    try:
        for n in range(consumers):
            handle = logs.open(key, f"drain-{consumers}x{batch}-{n}")
            handles.append(handle)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.child", "drain", key, url, str(batch)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=handle,
                    text=True,
                    env=child_env(),
                    cwd=ROOT,
                )
            )
        for proc, handle in zip(procs, handles, strict=True):
            _read_line(proc, 120, f"{key} consumer start", handle)
        started = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
        results = [
            _read_line(proc, timeout, f"{key} drain", handle)
            for proc, handle in zip(procs, handles, strict=True)
        ]
    finally:
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for handle in handles:
            handle.close()
    completed = sum(result["count"] for result in results)
    left = control.call(timeout, "remaining")["remaining"]
    if left or completed != jobs:
        raise CellFailed(f"{key}: {jobs} queued, {completed} completed, {left} left")
    elapsed = max(result["last"] for result in results) - started
    return jobs / filled, jobs / elapsed


def enqueue_once(control: Control, *, batch: int, jobs: int, timeout: float) -> float:
    control.call(timeout, "reset")
    elapsed = float(control.call(timeout, "enqueue", count=jobs, batch=batch)["elapsed"])
    return jobs / elapsed
