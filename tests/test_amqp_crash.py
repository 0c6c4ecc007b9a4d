"""RabbitMQ killed with SIGKILL while items are claimed and deleted: what comes back twice.

A classic durable queue writes acknowledgements lazily, so a broker that
dies redelivers messages acknowledged long before (612 and 1,037 duplicates
out of 2,000 in two runs, issue 9). A quorum queue, bridge's default,
commits them through its log: what comes back is what was in hand at the
crash, plus at most the batch acknowledged in the last moment before it
(RabbitMQ confirms a quorum queue's acknowledgement before writing it).

The test kills the local broker's Erlang VM by its process id, starts it
again with ``rabbitmq-server -detached`` and waits until it answers, in a
``finally`` block whatever happens. It needs ``rabbitmqctl`` and the right
to signal the broker; it runs in CI, where RabbitMQ is a required service.
"""

from __future__ import annotations

import collections
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest

import bridge

from conftest import AMQP_URL, REQUIRE_SERVICES

pytestmark = [pytest.mark.service("rabbitmq"), pytest.mark.timeout(600), pytest.mark.exclusive]

ITEMS = 2000
BATCH = 4
KILL_AFTER = 600
"""Acknowledged items before the broker is killed."""
START_SECONDS = 120.0


def _tools_or_skip() -> None:
    missing = [tool for tool in ("rabbitmqctl", "rabbitmq-server") if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed: cannot kill and restart the broker"
        if REQUIRE_SERVICES:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def broker_pid() -> int:
    """The OS process id of the local RabbitMQ node's Erlang VM."""
    status = subprocess.run(
        ["rabbitmqctl", "status"], capture_output=True, text=True, timeout=60, check=True
    )
    found = re.search(r"OS PID: (\d+)", status.stdout)
    assert found, f"no OS PID in rabbitmqctl status: {status.stdout[:500]!r}"
    return int(found.group(1))


def broker_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError:
        return False
    return (
        subprocess.run(
            ["rabbitmqctl", "await_startup", "--timeout", "5"], capture_output=True, timeout=60
        ).returncode
        == 0
    )


def start_broker() -> None:
    """Start the broker unless it answers, and wait until it does."""
    if broker_answers():
        return
    subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
    deadline = time.monotonic() + START_SECONDS
    while not broker_answers():
        if time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ did not come back within {START_SECONDS:.0f} s")
        time.sleep(1)


def kill_broker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the broker's VM (pid {pid}) outlived SIGKILL for 30 s")


QUEUE_SETTLES = 15.0
"""Seconds between declaring the quorum queue and letting the broker be killed."""


def drained(queue: bridge.Queue) -> bool:
    """Empty for 5 s: a restarted quorum queue may report no messages while it
    recovers (0.6 s of empty was once too short on a busy machine: 1,396 of
    2,000 items were still to come back)."""
    for _ in range(10):
        if queue.number_of_items():
            return False
        time.sleep(0.5)
    return True


def test_acknowledged_items_stay_acknowledged_across_a_broker_crash(
    record_property: Callable[[str, object], None],
) -> None:
    _tools_or_skip()
    name = f"crash_{uuid.uuid4().hex[:10]}"
    factory = bridge.QueueFactory(default={"url": AMQP_URL})
    queue = factory.get(name)
    try:
        queue.create_items(range(ITEMS))
        assert queue.number_of_items() == ITEMS
        # RabbitMQ itself forgets a quorum queue killed within seconds of its
        # declaration: its Raft member comes back a follower at term 0 with an
        # empty log and never elects itself (seen here on a fast machine: the
        # kill came 1-6 s after the declare, and 1,396 of 2,000 items never came
        # back; after 12 s they all did). What is under test is bridge's
        # acknowledgements across a crash, so the queue is given time first.
        time.sleep(QUEUE_SETTLES)
        pid = broker_pid()
        seen: collections.Counter[object] = collections.Counter()
        acknowledged: set[object] = set()
        unsettled: set[object] = set()
        came_back_acknowledged: list[object] = []
        killed = threading.Event()

        def killer() -> None:
            while len(acknowledged) < KILL_AFTER:
                time.sleep(0.001)
            # Anywhere in the next claim and delete: items in hand, or just acknowledged.
            time.sleep(random.uniform(0, 0.003))
            kill_broker(pid)
            killed.set()

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            batch: list[bridge.QueueItem] = []
            try:
                batch = queue.claim_items(BATCH, lease_time=120)
                if not batch and killed.is_set() and drained(queue):
                    break
                for item in batch:
                    seen[item.item_id] += 1
                    if item.item_id in acknowledged:
                        came_back_acknowledged.append(item.item_id)
                if queue.delete_items(batch) == len(batch):
                    acknowledged.update(item.item_id for item in batch)
                else:
                    unsettled.update(item.item_id for item in batch)
            except (bridge.BackendUnavailableError, bridge.BackendError):
                unsettled.update(item.item_id for item in batch)
                if killed.is_set():
                    start_broker()
                time.sleep(0.1)
        thread.join(timeout=60)
        assert killed.is_set(), "the broker was never killed"

        duplicates = sum(count - 1 for count in seen.values())
        record_property("duplicates", duplicates)
        record_property("acknowledged_then_redelivered", len(came_back_acknowledged))
        record_property("unsettled_at_crash", len(unsettled))
        print(
            f"\nquorum queue, kill -9: {duplicates} duplicates out of {ITEMS}; "
            f"{len(came_back_acknowledged)} of them acknowledged before the crash; "
            f"{len(unsettled)} items in hand"
        )
        assert len(seen) == ITEMS, "an item was lost"
        assert queue.number_of_items() == 0
        assert len(unsettled) <= BATCH
        assert len(came_back_acknowledged) <= BATCH, (
            "more came back than the one batch acknowledged as the broker died"
        )
        assert duplicates <= 2 * BATCH
    finally:
        start_broker()
        cleanup = bridge.QueueFactory(default={"url": AMQP_URL})
        cleanup.get(name).delete_queue()
        cleanup.close()
        factory.close()
