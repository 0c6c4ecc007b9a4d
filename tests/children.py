"""Child processes the backend tests kill: a claimer SIGKILLed while it holds an item."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bridge

CLAIMER = textwrap.dedent("""
    import json, sys, time
    import bridge

    spec, name = json.loads(sys.argv[1]), sys.argv[2]
    queue = bridge.QueueFactory(default=spec).get(name)
    item = queue.claim_item(lease_time=float(sys.argv[3]))
    print(json.dumps(item.item_id if item else None), flush=True)
    time.sleep(600)
""")


def claim_in_a_process_and_kill_it(spec: dict[str, Any], name: str, lease: float) -> Any:
    """A child process claims one item and is SIGKILLed holding it; the item id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, json.dumps(spec), name, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read().decode() if child.stderr else "no output"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        return json.loads(line)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def start_mover(script: str, spec: dict[str, Any], name: str, *args: str) -> subprocess.Popen[str]:
    """A process running ``script`` (argv: spec, queue name, args) on the queue's store.

    Returns once the child has printed that it started ("kicking" or "holding").
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(spec), name, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line not in ("kicking", "holding"):
        proc.kill()
        pytest.fail(f"the child did not start: {line!r} {proc.communicate()[1]}")
    return proc


def kill_mover(proc: subprocess.Popen[str]) -> str:
    """SIGKILL the child; what it printed after it started."""
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return out


def claim_within(queue: bridge.Queue, seconds: float, lease: float = 60) -> bridge.QueueItem:
    """Claim as soon as something is claimable; fail if nothing is within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (item := queue.claim_item(lease_time=lease)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable within {seconds} s")
        time.sleep(0.02)
    return item


def connections(spec: dict[str, Any]) -> Iterator[Callable[..., bridge.Queue]]:
    """For a ``connect`` fixture: ``connect(name, **options)`` opens the queue on a factory
    of its own (a connection, as another process would have), options over ``spec``'s.

    Factories are closed and the queues deleted when the test ends.
    """
    factories: list[bridge.QueueFactory] = []
    names: set[str] = set()

    def make(name: str, **options: Any) -> bridge.Queue:
        merged = {**spec, "options": {**spec.get("options", {}), **options}}
        factory = bridge.QueueFactory(default=merged)
        factories.append(factory)
        names.add(name)
        return factory.get(name)

    yield make
    for factory in factories:
        factory.close()
    cleaner = bridge.QueueFactory(default=spec)
    for name in names:
        cleaner.get(name).delete_queue()
    cleaner.close()
