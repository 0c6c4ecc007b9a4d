"""Tests that take a shared server away run alone, while the rest run in parallel.

The suite runs on several pytest-xdist workers against the same servers.
A test marked ``exclusive`` (it stops or kills a server that every other
test uses: tests/test_outages.py, tests/test_amqp_crash.py) must not
overlap any other test, on any worker. Every test takes a lock shared by
all workers around its whole run: shared for an ordinary test, exclusive
for a marked one. The lock prefers the exclusive side, so that a marked
test waits only for the tests already running, not for every test the
other workers would start meanwhile: a gate lock is taken before the
shared one and let go at once by ordinary tests, and held by an exclusive
test until it is done. ``flock`` locks die with their process, so a
crashed worker never leaves the others waiting.

Without xdist (one process) it does nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Generator
from pathlib import Path
from typing import IO

import pytest

MARKER = "exclusive: stops or kills a shared server; runs with no other test on any worker"


def _lock_files() -> tuple[IO[bytes], IO[bytes]] | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None or os.environ.get("PYTEST_XDIST_WORKER") is None:
        return None
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"bridge-tests-{run}"
    return open(f"{base}.gate", "ab"), open(f"{base}.lock", "ab")


_files = _lock_files()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    if _files is None:
        yield
        return
    gate, shared = _files
    exclusive = item.get_closest_marker("exclusive") is not None
    fcntl.flock(gate, fcntl.LOCK_EX)
    if exclusive:
        fcntl.flock(shared, fcntl.LOCK_EX)
    else:
        fcntl.flock(shared, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
    try:
        yield
    finally:
        fcntl.flock(shared, fcntl.LOCK_UN)
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
