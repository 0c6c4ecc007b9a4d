"""``bridge ui``: the real script in a process of its own, over HTTP, and its refusals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge

BRIDGE = [sys.executable, "-c", "from bridge.cli import main; main()"]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "CELERY_", "PROMETHEUS_"))
    }
    return {
        **env,
        "BRIDGE_QUEUE_DEFAULT": f"sqlite:///{tmp_path}/bridge.sqlite",
        "CELERY_CONFIG_MODULE": f"no_celeryconfig_{uuid.uuid4().hex}",
        **extra,
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def serve(
    procs: list[subprocess.Popen[str]], tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.Popen[str], str]:
    """Start ``bridge ui ARGS``; the process and the URL it printed."""
    proc = subprocess.Popen(
        [*BRIDGE, "ui", "--port", "0", *args],
        env=environment(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Serving the queue UI on http://"), line + proc.stdout.read()
    return proc, line.split(" on ", 1)[1].split()[0]


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bridge_ui_serves_the_queues_and_stops_on_ctrl_c_or_sigterm(
    tmp_path: Path, started: list[Any]
) -> None:
    factory = bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite")
    factory.get("emails").create_items([1, 2, 3])
    factory.close()
    proc, url = serve(started, tmp_path, "--metrics")
    assert url.startswith("http://127.0.0.1:")
    status, page = get(url)
    assert status == 200
    assert 'data-testid="queue-row-emails"' in page
    status, metrics = get(url + "metrics")
    assert status == 200
    assert 'bridge_queue_items{backend="sqlite:///' in metrics
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0, "Ctrl-C: a quiet exit"
    assert proc.stdout is not None
    assert "Traceback" not in proc.stdout.read()

    proc, url = serve(started, tmp_path)
    assert get(url)[0] == 200
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down, then raises SIGTERM again: ended by it, as services are.
    assert proc.wait(timeout=15) == -signal.SIGTERM


def test_a_public_address_with_a_token_asks_for_it(tmp_path: Path, started: list[Any]) -> None:
    token = uuid.uuid4().hex
    proc, url = serve(started, tmp_path, "--host", "0.0.0.0", BRIDGE_UI_TOKEN=token)
    local = url.replace("0.0.0.0", "127.0.0.1")
    assert get(local)[0] == 401
    assert get(local, Authorization=f"Bearer {token}")[0] == 200
    assert proc.stdout is not None
    assert "in clear" in proc.stdout.readline()


def test_a_busy_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*BRIDGE, "ui", "--port", str(port)],
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_public_address_without_credentials_is_refused(tmp_path: Path) -> None:
    for args in (["--host", "0.0.0.0"], ["--host", "192.0.2.7"], ["--host", "::"]):
        done = subprocess.run(
            [*BRIDGE, "ui", *args],
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"Error: refusing to serve the queue UI on {args[1]}")
        assert "BRIDGE_UI_TOKEN" in lines[0]
        assert "Traceback" not in done.stderr
        assert not done.stdout
    for args in (["--user", "ops"], ["--password", "x"]):
        done = subprocess.run(
            [*BRIDGE, "ui", "--host", "0.0.0.0", *args],
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "needs both a user and a password" in done.stderr
