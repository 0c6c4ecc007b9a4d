"""The SQS backend: what SQS really does under Drupal's queue API.

The contract suite runs on SQS through conftest's ``sqs`` kind (a local
moto server unless ``BRIDGE_TEST_SQS_URL`` is set); this file checks what
only SQS shows: server-side leases, claims settled from any connection, a
killed claimer, its limits, and names and bytes SQS would refuse. Every
queue has a unique name and is deleted afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bridge
from bridge.backends import open_backend
from bridge.backends.sqs import SQS_CAPABILITIES

from conftest import spec_for

sqs = pytest.mark.service("sqs")

Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(name, **options)``: the queue on a backend object of its own.

    Each call opens a new factory, as another process would. Queues are
    deleted and factories closed after.
    """
    factories: list[bridge.QueueFactory] = []
    names: set[str] = set()

    def make(name: str, **options: Any) -> bridge.Queue:
        spec = spec_for("sqs", None)
        spec["options"] = {**spec.get("options", {}), **options}
        factory = bridge.QueueFactory(default=spec)
        factories.append(factory)
        names.add(name)
        return factory.get(name)

    yield make
    for factory in factories:
        factory.close()
    cleaner = bridge.QueueFactory(default=spec_for("sqs", None))
    for name in names:
        cleaner.get(name).delete_queue()
    cleaner.close()


def unique(prefix: str = "sqs") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def claim_within(queue: bridge.Queue, seconds: float, lease: float = 60) -> bridge.QueueItem:
    deadline = time.monotonic() + seconds
    while (item := queue.claim_item(lease_time=lease)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable within {seconds} s")
        time.sleep(0.05)
    return item


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
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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


@sqs
def test_sqs_leases_are_held_by_the_server(connect: Connect) -> None:
    """The lease holds across connections and ends on its own, with nobody calling."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("job")
    first = holder.claim_item(lease_time=1)
    assert first is not None
    assert other.claim_item(lease_time=30) is None
    second = claim_within(other, 10, lease=30)
    assert (second.item_id, second.attempts) == (first.item_id, 2)
    assert other.delete_item(second)


@sqs
def test_sqs_claims_settle_from_any_connection(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_items(["a", "b"])
    a, b = holder.claim_items(2, lease_time=60)
    assert other.release_item(b), "a receipt handle works from any connection"
    assert other.delete_item(a)
    again = other.claim_item(lease_time=60)
    assert again is not None
    assert (again.data, again.attempts) == ("b", 2)


@sqs
def test_sqs_a_killed_claimer_s_item_comes_back_when_its_lease_ends(connect: Connect) -> None:
    name = unique()
    queue = connect(name)
    item_id = queue.create_item("survives a crash")
    assert claim_in_a_process_and_kill_it(spec_for("sqs", None), name, lease=2) == item_id
    started = time.monotonic()
    assert queue.claim_item(lease_time=30) is None, "the dead claimer's lease still holds"
    item = claim_within(queue, 10)
    assert time.monotonic() - started > 0.5
    assert (item.item_id, item.attempts) == (item_id, 2)


@sqs
def test_sqs_limits_and_capabilities(connect: Connect) -> None:
    queue = connect(unique())
    assert queue.capabilities == SQS_CAPABILITIES
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.create_item("x", priority=1)
    with pytest.raises(bridge.InvalidArgumentError, match="900"):
        queue.create_item("x", delay=901)
    with pytest.raises(bridge.InvalidArgumentError, match="43200"):
        queue.claim_item(lease_time=43_201)
    assert queue.number_of_items() == 0


@sqs
def test_sqs_names_and_bytes_sqs_would_refuse_are_mapped(connect: Connect) -> None:
    name = unique("émail.漢字 with spaces")
    queue = connect(name)
    backend = queue.backend
    payloads = [b"\x00\xff raw bytes", "text \ufffe".encode(), b'{"json": true}']
    ids = backend.create_items(name, payloads, 0, 0)
    claimed = backend.claim_items(name, 3, 30)
    assert [item.item_id for item in claimed] == ids
    assert [item.payload for item in claimed] == payloads
    assert backend.queue_names().get(name) == 3


def test_sqs_unreachable_is_unavailable() -> None:
    backend = open_backend("kombu+sqs://key:s3cret@127.0.0.1:1",
                           {"region": "us-east-1", "connect_timeout": 1})
    with pytest.raises(bridge.BackendUnavailableError) as raised:
        backend.claim_items("anything", 1, 30)
    assert "s3cret" not in str(raised.value)
