"""A worker process killed mid-item loses nothing: its lease brings the item back;
an item that kills its worker on every attempt is held after ``max_attempts`` kills.

A real OS process claims an item through ``process_queue`` and is SIGKILLed
while its worker runs, as the OOM killer or a Celery hard time limit would.
The item must stay counted, stay unclaimable until the dead worker's lease
ends, and then be processed exactly once more, with ``attempts`` saying so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge
from bridge import workers

from conftest import SHARED_BACKENDS, spec_for

LEASE = 3.0
"""The dead worker's lease: long enough to look at the item while it holds."""

WORKER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    import bridge
    from bridge.workers import current_item

    spec, name, started = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

    @bridge.queue_worker(name, lease_time=float(sys.argv[4]))
    def work(data):
        if data == "hang":
            started.write_text(str(current_item().attempts))
            time.sleep(600)

    bridge.process_queue(name, factory=bridge.QueueFactory(default=spec))
""")


pytestmark = pytest.mark.usefixtures("empty_registry")


def wait_for_start(proc: subprocess.Popen[bytes], marker: Path, timeout: float = 60) -> float:
    """When the worker process began the item (monotonic), failing if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return time.monotonic()
        if proc.poll() is not None:
            _, stderr = proc.communicate()
            pytest.fail(f"worker process exited {proc.returncode}: {stderr.decode()}")
        time.sleep(0.02)
    pytest.fail(f"worker process did not start the item within {timeout} s")


@pytest.fixture(params=SHARED_BACKENDS)
def shared_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    yield made
    made.close()


def test_a_killed_worker_loses_nothing_and_the_item_runs_once_more(
    shared_factory: bridge.QueueFactory, tmp_path: Path
) -> None:
    name = f"crash_{uuid.uuid4().hex[:10]}"
    queue = shared_factory.get(name)
    queue.create_items(["done", "hang"])
    script, marker = tmp_path / "worker.py", tmp_path / "started"
    script.write_text(WORKER_SCRIPT)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            json.dumps(shared_factory.default),
            name,
            str(marker),
            str(LEASE),
        ],
        stderr=subprocess.PIPE,  # the environment is the isolated one set up above
    )
    try:
        started = wait_for_start(proc, marker)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert marker.read_text() == "1"

        # "done" was deleted before the crash; "hang" is still there.
        if queue.capabilities.crash_recovery == "lease":
            assert queue.number_of_items() == 1
            assert time.monotonic() - started < LEASE, "machine too slow to observe the lease"
            assert queue.claim_item(lease_time=LEASE) is None, "back before its lease ended"
        else:
            # The broker requeues it once it notices the dead worker's
            # connection drop: soon, and well before the lease would end.
            deadline = time.monotonic() + LEASE
            while queue.counts().ready != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert queue.counts().ready == 1, "the broker did not redeliver at once"

        time.sleep(max(0.0, started + LEASE + 0.3 - time.monotonic()))
        seen: list[tuple[str, int]] = []

        @bridge.queue_worker(name)
        def work(data: str) -> None:
            item = workers.current_item()
            assert item is not None
            seen.append((data, item.attempts))

        summary = bridge.process_queue(name, lease_time=LEASE, factory=shared_factory)

        assert seen == [("hang", 2)]
        assert (summary.processed, summary.failed, summary.lost) == (1, 0, 0)
        assert queue.number_of_items() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        queue.delete_queue()


CRASH_LOOP_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    import bridge
    from bridge.workers import current_item

    spec, name, record = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    lease, max_attempts = float(sys.argv[4]), int(sys.argv[5])

    @bridge.queue_worker(name, lease_time=lease, max_attempts=max_attempts)
    def work(data):
        with record.open("a") as out:
            out.write(f"{current_item().attempts}\\n")
        time.sleep(600)

    summary = bridge.process_queue(name, factory=bridge.QueueFactory(default=spec))
    print(json.dumps(summary.as_dict()))
""")
MAX_ATTEMPTS = 3
CRASH_LEASE = 2.0


def _runs(record: Path) -> list[str]:
    return record.read_text().split() if record.exists() else []


def test_an_item_that_kills_its_worker_every_time_is_held_after_max_attempts_kills(
    shared_factory: bridge.QueueFactory, tmp_path: Path
) -> None:
    """A poison item that takes its process down (OOM, a segfault) on every attempt."""
    name = f"loop_{uuid.uuid4().hex[:10]}"
    queue = shared_factory.get(name)
    if not queue.capabilities.hold:
        pytest.skip("the backend cannot hold items, so max_attempts is refused (capabilities.hold)")
    queue.create_item("poison")
    script, record = tmp_path / "worker.py", tmp_path / "runs"
    script.write_text(CRASH_LOOP_SCRIPT)
    args = [
        sys.executable,
        str(script),
        json.dumps(shared_factory.default),
        name,
        str(record),
        str(CRASH_LEASE),
        str(MAX_ATTEMPTS),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for kill in range(1, MAX_ATTEMPTS + 1):
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            procs.append(proc)
            deadline = time.monotonic() + 60
            while len(_runs(record)) < kill:
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    pytest.fail(f"run {kill} exited {proc.returncode}: {out!r} {err.decode()}")
                assert time.monotonic() < deadline, f"run {kill} never started the item"
                time.sleep(0.02)
            started = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            # The item must be claimable again before the next run starts.
            if queue.capabilities.crash_recovery == "lease":
                time.sleep(max(0.0, started + CRASH_LEASE + 0.3 - time.monotonic()))
            deadline = time.monotonic() + 30
            while queue.counts().ready != 1:
                assert time.monotonic() < deadline, "the killed run's item never came back"
                time.sleep(0.05)

        last = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(last)
        out, err = last.communicate(timeout=60)
        assert last.returncode == 0, err.decode()
        summary = json.loads(out.decode().splitlines()[-1])

        assert _runs(record) == ["1", "2", "3"], "the worker ran once per kill, then never"
        assert (summary["held"], summary["processed"], summary["failed"]) == (1, 0, 0)
        [held] = queue.held_items()
        assert held.data == "poison"
        assert held.attempts == MAX_ATTEMPTS + 1
        if queue.capabilities.held_details:
            assert (held.hold_reason or "").startswith(
                f"attempts exhausted: claimed {MAX_ATTEMPTS + 1} times, max_attempts is 3"
            )
        counts = queue.counts()
        assert (counts.held, counts.ready, counts.leased, counts.delayed) == (1, 0, 0, 0)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        queue.delete_queue()
