"""The kombu backend: what RabbitMQ and SQS really do under Drupal's queue API.

The contract suite runs on both through conftest's ``rabbitmq`` and ``sqs``
kinds; this file checks what only a broker shows: refused transports, one
message per fetch, the emulated lease of RabbitMQ (alive, expired, killed),
priorities, claims that only their own connection can settle, a killed
connection. SQS's own tests are in ``test_sqs.py``. Every queue has a unique
name and is deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
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
from bridge.backends.amqp import amqp_capabilities

from conftest import AMQP_URL, spec_for

RABBIT_URL = "kombu+" + AMQP_URL
rabbitmq = pytest.mark.service("rabbitmq")

Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Callable[..., bridge.Queue]]:
    """``connect(name, kind="rabbitmq", **options)``: the queue on a connection of its own.

    Each call opens a new factory, so two calls are two broker connections,
    as two processes would have. Queues are deleted and factories closed after.
    """
    factories: list[bridge.QueueFactory] = []
    names: set[tuple[str, str]] = set()

    def make(name: str, kind: str = "rabbitmq", **options: Any) -> bridge.Queue:
        spec = spec_for(kind, None)
        spec["options"] = {**spec.get("options", {}), **options}
        factory = bridge.QueueFactory(default=spec)
        factories.append(factory)
        names.add((kind, name))
        return factory.get(name)

    yield make
    for factory in factories:
        factory.close()
    for kind, name in names:
        cleaner = bridge.QueueFactory(default=spec_for(kind, None))
        cleaner.get(name).delete_queue()
        cleaner.close()


def unique(prefix: str = "kombu") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def claim_within(queue: bridge.Queue, seconds: float, lease: float = 60) -> bridge.QueueItem:
    deadline = time.monotonic() + seconds
    while (item := queue.claim_item(lease_time=lease)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable within {seconds} s")
        time.sleep(0.05)
    return item


# -- URLs, transports and options (no broker needed) ------------------------------


@pytest.mark.parametrize("url", [
    "kombu+sqla+sqlite:///var/kombu.sqlite",
    "kombu+sqlalchemy+postgresql://user@localhost/db",
    "kombu+filesystem://",
    "kombu+memory://",
])
def test_transports_that_lose_messages_are_refused(url: str) -> None:
    with pytest.raises(bridge.ConfigurationError) as refused:
        open_backend(url, {})
    message = str(refused.value)
    assert "never redelivered" in message
    assert "sqlite:///" in message
    assert "postgresql://" in message
    assert "memory://" in message


def test_kombu_redis_is_refused_for_bridge_s_own_redis_backend() -> None:
    with pytest.raises(bridge.ConfigurationError, match="redis://host"):
        open_backend("kombu+redis://localhost:6379/0", {})


def test_transports_bridge_has_not_checked_are_refused() -> None:
    known = r"kombu\+amqp, kombu\+amqps, kombu\+pyamqp, kombu\+sqs"
    with pytest.raises(bridge.ConfigurationError, match=known):
        open_backend("kombu+zookeeper://localhost:2181", {})


def test_unknown_options_are_refused() -> None:
    with pytest.raises(bridge.ConfigurationError, match="visibility"):
        open_backend(RABBIT_URL, {"visibility": 30})
    with pytest.raises(bridge.ConfigurationError, match="max_priority"):
        open_backend(RABBIT_URL, {"max_priority": 0})


def test_a_missing_kombu_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kombu", None)
    with pytest.raises(bridge.MissingDependencyError, match=r'pip install "bridge\[kombu\]"'):
        open_backend(RABBIT_URL, {})


def test_an_unreachable_broker_is_unavailable_and_the_password_stays_hidden() -> None:
    backend = open_backend("kombu+amqp://guest:s3cret@127.0.0.1:1//", {"connect_timeout": 1})
    with pytest.raises(bridge.BackendUnavailableError) as raised:
        backend.number_of_items("anything")
    assert "guest:***@127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)


# -- RabbitMQ ---------------------------------------------------------------------


@rabbitmq
def test_claims_fetch_one_message_at_a_time(connect: Connect) -> None:
    """No consumer prefetch: what one connection has not claimed, another can."""
    name = unique()
    first, second = connect(name), connect(name)
    ids = first.create_items([f"item {n}" for n in range(10)])

    mine = first.claim_item(lease_time=60)
    assert mine is not None
    assert mine.item_id == ids[0]
    assert second.number_of_items() == 9, "one message left the queue, not all ten"
    theirs = second.claim_item(lease_time=60)
    assert theirs is not None
    assert theirs.item_id == ids[1]

    assert [item.item_id for item in first.claim_items(3, lease_time=60)] == ids[2:5]
    assert second.number_of_items() == 5 + 1, "the ready five and the one it holds"
    assert first.number_of_items() == 5 + 4


@rabbitmq
def test_an_expired_lease_stays_with_its_connection_until_that_backend_acts(
    connect: Connect,
) -> None:
    """(a) The lease ran out in a live process: nobody else sees the item until it acts."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("slow job")
    stale = holder.claim_item(lease_time=0.3)
    assert stale is not None
    time.sleep(0.5)

    assert other.claim_item(lease_time=60) is None, "still an unacknowledged delivery"
    assert holder.extend_lease(stale, 30) is True, "the holder may still keep it"
    time.sleep(0.1)
    holder.garbage_collection()
    assert other.claim_item(lease_time=60) is None, "extended, so not handed back"

    assert holder.extend_lease(stale, 0.1)
    time.sleep(0.2)
    holder.garbage_collection()  # what process_queue and run_cron begin with
    fresh = claim_within(other, 5)
    assert (fresh.item_id, fresh.attempts) == (stale.item_id, 2)
    assert holder.delete_item(stale) is False
    assert holder.release_item(stale) is False
    assert other.delete_item(fresh)


@rabbitmq
def test_an_expired_lease_goes_back_when_its_backend_claims_again(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    ids = holder.create_items(["first", "second"])
    late = holder.claim_item(lease_time=0.2)
    assert late is not None
    time.sleep(0.3)
    again = holder.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.attempts) == (ids[0], 2), "back at its place, ahead"
    assert other.claim_item(lease_time=60) is not None, "the second item, still ready"
    assert holder.delete_item(late) is False


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


@rabbitmq
def test_a_killed_claimer_s_items_come_back_at_once(connect: Connect) -> None:
    """(b) The process died: RabbitMQ requeues at once, long before the lease ends."""
    name = unique()
    queue = connect(name)
    item_id = queue.create_item("survives a crash")
    claimed = claim_in_a_process_and_kill_it(spec_for("rabbitmq", None), name, lease=300)
    assert claimed == item_id
    started = time.monotonic()
    item = claim_within(queue, 10)
    assert time.monotonic() - started < 10 < 300
    assert (item.item_id, item.data, item.attempts) == (item_id, "survives a crash", 2)


@rabbitmq
def test_items_settle_only_through_the_connection_that_claimed_them(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("mine")
    item = holder.claim_item(lease_time=60)
    assert item is not None
    for settle in (other.delete_item, other.release_item):
        with pytest.raises(bridge.UnsupportedOperationError, match="another connection"):
            settle(item)
    with pytest.raises(bridge.UnsupportedOperationError):
        other.extend_lease(item, 30)
    assert holder.delete_item(item)
    assert other.number_of_items() == 0


@rabbitmq
def test_priorities_with_max_priority(connect: Connect) -> None:
    name = unique()
    queue = connect(name, max_priority=10)
    assert queue.capabilities.priority
    queue.create_item("low")
    queue.create_item("high", priority=9)
    queue.create_items(["mid 1", "mid 2"], priority=5)
    claimed = queue.claim_items(4, lease_time=60)
    assert [(item.data, item.priority) for item in claimed] == [
        ("high", 9), ("mid 1", 5), ("mid 2", 5), ("low", 0),
    ]
    assert queue.release_item(claimed[0])
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert (again.data, again.priority) == ("high", 9)
    for bad in (11, -1):
        with pytest.raises(bridge.InvalidArgumentError, match="0 to 10"):
            queue.create_item("out of range", priority=bad)


@rabbitmq
def test_a_queue_declared_without_priorities_cannot_gain_them(connect: Connect) -> None:
    name = unique()
    connect(name).create_item("plain")
    with pytest.raises(bridge.ConfigurationError, match="x-max-priority"):
        connect(name, max_priority=5).create_item("urgent", priority=5)


@rabbitmq
def test_the_capabilities_match_what_rabbitmq_does(connect: Connect) -> None:
    name = unique()
    queue, other = connect(name), connect(name)
    assert queue.capabilities == amqp_capabilities()
    assert queue.capabilities.lease == "emulated"
    for refused in (lambda: queue.create_item("x", delay=5),
                    lambda: queue.create_item("x", priority=1)):
        with pytest.raises(bridge.UnsupportedOperationError):
            refused()
    queue.create_items(["a", "b"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.delay_item(item, 5)
    assert queue.extend_lease(item, 120)
    # counts_leased=False: another connection's claims are invisible to counts.
    assert queue.number_of_items() == 2
    assert other.number_of_items() == 1
    assert (other.counts().ready, other.counts().leased) == (1, 0)
    assert (queue.counts().ready, queue.counts().leased) == (1, 1)


@rabbitmq
def test_leases_longer_than_the_broker_allows_are_refused(connect: Connect) -> None:
    queue = connect(unique(), max_lease=60)
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="consumer_timeout"):
        queue.claim_item(lease_time=61)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    with pytest.raises(bridge.InvalidArgumentError, match="max_lease"):
        queue.extend_lease(item, 90)


def close_socket(queue: bridge.Queue) -> None:
    queue.backend._session._conn.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]


def close_with_rabbitmqctl(queue: bridge.Queue) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed here")
    port = queue.backend._session._conn.connection.sock.getsockname()[1]  # type: ignore[attr-defined]
    listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
                            capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot list connections: {listed.stderr.strip()}")
    pids = [line.split("\t")[0] for line in listed.stdout.splitlines()
            if line.split("\t")[-1:] == [str(port)]]
    assert pids, f"no connection from port {port} in {listed.stdout!r}"
    subprocess.run(["rabbitmqctl", "close_connection", pids[0], "bridge test"],
                   check=True, capture_output=True, timeout=60)
    time.sleep(0.2)


@rabbitmq
@pytest.mark.parametrize("kill", [close_socket, close_with_rabbitmqctl], ids=["socket", "broker"])
def test_a_lost_connection_raises_backend_unavailable_then_reconnects(
    connect: Connect, kill: Callable[[bridge.Queue], None],
) -> None:
    name = unique()
    queue = connect(name)
    queue.create_items(["held", "ready"])
    held = queue.claim_item(lease_time=60)
    assert held is not None
    kill(queue)

    with pytest.raises(bridge.BackendUnavailableError) as raised:
        queue.number_of_items()
    assert "guest:***@127.0.0.1" in str(raised.value)
    assert ":guest@" not in str(raised.value)

    assert queue.delete_item(held) is False, "the claim went with the connection"
    assert queue.number_of_items() == 2, "reconnected; the broker requeued the claim"
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.attempts) == (held.item_id, 2)


@rabbitmq
def test_a_queue_deleted_by_another_connection_is_declared_again(connect: Connect) -> None:
    name = unique()
    queue, other = connect(name), connect(name)
    queue.create_item("before")
    assert queue.number_of_items() == 1
    other.delete_queue()
    assert queue.claim_item(lease_time=30) is None
    assert queue.number_of_items() == 0
    other.delete_queue()
    item_id = queue.create_item("after")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.item_id == item_id


@rabbitmq
def test_quorum_queues_count_attempts_across_connections(connect: Connect) -> None:
    name = unique()
    quorum = {"queue_arguments": {"x-queue-type": "quorum"}}
    first, second = connect(name, **quorum), connect(name, **quorum)
    first.create_items(["a", "b"])
    for _ in range(2):
        a = first.claim_item(lease_time=30)
        assert a is not None
        assert a.data == "a"
        assert first.release_item(a)  # to the back of a quorum queue
        first.claim_item(lease_time=30)  # "b", then "a" again
    first.backend.close()  # "a" was claimed 3 times, "b" once
    claimed = {item.data: item.attempts for item in second.claim_items(2, lease_time=30)}
    assert claimed == {"a": 4, "b": 2}, "the broker counted every delivery"
