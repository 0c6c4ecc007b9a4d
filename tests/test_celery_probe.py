"""``python -m bridge.celery.probe``, deploy/'s liveness probe, against real processes.

It passes while the broker is down (restarting every worker would not bring
the broker back), fails while the broker answers and the node does not, and
passes once the node answers. The broker here is the embedded one, in the
test's own folder, so no other test's worker can answer for ours.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_processes import Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"pq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def _probe(
    procs: Processes, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.celery.probe", *args],
        cwd=procs.tmp_path,
        env={**procs.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_probe_passes_on_a_broker_outage_and_fails_only_a_silent_node(
    procs: Processes,
) -> None:
    down = _probe(
        procs,
        "worker",
        "--timeout",
        "2",
        env={"BRIDGE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"},
    )
    assert down.returncode == 0, down.stderr
    assert "broker unreachable" in down.stderr

    silent = _probe(procs, "worker", "--timeout", "2", "--node", "probe@test")
    assert silent.returncode == 1
    assert "probe@test did not answer a ping within 2 s while the broker did" in silent.stderr

    procs.worker("--concurrency", "1", "--hostname", "probe@test")
    procs.wait_for("the worker to be ready", lambda: "ready." in procs.log(), timeout=60)
    alive = _probe(procs, "worker", "--timeout", "10", "--node", "probe@test")
    assert alive.returncode == 0, alive.stderr
