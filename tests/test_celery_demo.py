"""``bridge celery-demo`` as a newcomer runs it, then each command it prints, as printed.

The demo runs for real on the embedded default with Flower on a free port;
then every "run the pieces yourself" line goes through ``sh -c`` in the same
directory and environment: the long-running ones must come up (worker
ready, Flower and the exporter answering), the one-shot one must succeed.
A taken Flower port is refused before anything starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celery_processes import free_port, http_get


def _environment() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_", "FLOWER_"))
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "celery-demo", *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _answers(url: str) -> bool:
    try:
        http_get(url, timeout=2)
    except OSError:
        return False
    return True


def _comes_up(command: str, cwd: Path, ready: str) -> None:
    """Run ``command`` as printed until ``ready`` (a log text or a URL) shows it started."""
    log = cwd / f"next-{abs(hash(command))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["sh", "-c", command],
            cwd=cwd,
            env=_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            up = _answers(ready) if ready.startswith("http") else ready in log.read_text()
            if up:
                return
            assert proc.poll() is None, f"{command!r} exited:\n{log.read_text()}"
            time.sleep(0.2)
        pytest.fail(f"{command!r} did not come up:\n{log.read_text()}")
    finally:
        # The shell and all it started, at once: only that it came up is checked. A
        # SIGTERM to the whole group would reach the pool processes too, and a
        # Celery whose pool died under it can hang at exit (billiard's pool lock).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _wait_group_gone(proc.pid)


def _wait_group_gone(group: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"process group {group} outlived SIGKILL")


def test_the_demo_and_every_command_it_prints_work(tmp_path: Path) -> None:
    port = free_port()
    done = _demo(tmp_path, "--seconds", "8", "--rate", "10", "--flower", "--flower-port", str(port))
    log = tmp_path / "var" / "celery-demo.log"
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log.read_text()}"
    assert f"Flower: http://localhost:{port}/tasks" in done.stdout
    assert "task: bridge_demo processed" in done.stdout, done.stdout
    drained = re.search(r"The worker drained (\d+) items", done.stdout)
    assert drained, done.stdout
    assert int(drained[1]) > 0, done.stdout

    commands = done.stdout.split("run the pieces yourself (each in its own terminal):\n")[1]
    lines = [line.strip() for line in commands.splitlines() if line.strip()]
    assert len(lines) == 5, lines
    worker, flower, metrics, ui, send = lines
    _comes_up(worker, tmp_path, "ready.")
    _comes_up(flower, tmp_path, f"http://127.0.0.1:{port}/healthcheck")
    _comes_up(metrics, tmp_path, "http://127.0.0.1:9808/metrics")
    _comes_up(ui, tmp_path, "http://127.0.0.1:8010/")
    sent = subprocess.run(
        ["sh", "-c", send],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip(), "no item id printed"
    assert shlex.split(send)[-1] == '{"n": 27}'


def test_a_taken_flower_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _demo(tmp_path, "--seconds", "1", "--flower", "--flower-port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: cannot run Flower on port {port}: Address already in use; another Flower? "
        "Pick a free port with --flower-port"
    ), done.stderr
    assert not (tmp_path / "var" / "celery-demo.log").exists(), "the worker was started"
