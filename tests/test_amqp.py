"""The RabbitMQ backend: what the broker really does under Drupal's queue API.

The contract suite runs on RabbitMQ's default layout (quorum queues) through
conftest's ``rabbitmq`` kind, and on classic queues through its
``rabbitmq-classic`` kind; ``test_amqp_crash.py`` kills the broker, and
``test_amqp_holding.py`` checks held items, failures and the moves between
queues, killing the processes that make them; ``test_amqp_stream.py`` the
consumers claims stream through. This file checks what only a broker shows:
refused Kombu transports, the layout (queue types, holding queues, names),
claims that take no more than asked, the emulated lease (alive, expired,
killed), real delays, priorities, claims that only their own connection can
settle, a killed connection, queues declared before by others. Every queue
has a unique name and is deleted afterwards.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bridge
from bridge.backends import open_backend
from bridge.backends.amqp import amqp_capabilities
from bridge.backends.amqp_layout import (
    BUCKETS_MS,
    MAX_DELAY,
    Layout,
    bucket_for,
    holding_name,
    index_name,
    parse_version,
)

from children import claim_in_a_process_and_kill_it, claim_within, connections
from conftest import AMQP_URL, spec_for

RABBIT_URL = "kombu+" + AMQP_URL
rabbitmq = pytest.mark.service("rabbitmq")

Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Callable[..., bridge.Queue]]:
    """``connect(name, **options)``: the queue on a RabbitMQ connection of its own.

    Each call opens a new factory, so two calls are two broker connections,
    as two processes would have. Queues are deleted and factories closed after.
    """
    yield from connections({"url": AMQP_URL})


@pytest.fixture
def raw() -> Iterator[Callable[[], Any]]:
    """Open bare py-amqp channels, to see and make what bridge would not."""
    kombu: Any = importlib.import_module("kombu")
    conn = kombu.Connection(AMQP_URL)
    conn.connect()
    yield conn.channel
    conn.release()


def unique(prefix: str = "amqp") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def count_becomes(queue: bridge.Queue, expected: int, seconds: float = 5) -> int:
    """The queue's count once it is ``expected``: a quorum queue applies requeues a moment late."""
    deadline = time.monotonic() + seconds
    while (count := queue.number_of_items()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


# -- URLs, transports and options (no broker needed) ------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "kombu+sqla+sqlite:///var/kombu.sqlite",
        "kombu+sqlalchemy+postgresql://user@localhost/db",
        "kombu+filesystem://",
        "kombu+memory://",
    ],
)
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
    with pytest.raises(bridge.ConfigurationError, match="'quorum' or 'classic'"):
        open_backend(AMQP_URL, {"queue_type": "stream"})
    with pytest.raises(bridge.ConfigurationError, match="two priority levels"):
        open_backend(AMQP_URL, {"queue_type": "quorum", "max_priority": 5})
    with pytest.raises(bridge.ConfigurationError, match="disagree"):
        open_backend(
            AMQP_URL, {"queue_type": "classic", "queue_arguments": {"x-queue-type": "quorum"}}
        )


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


def test_quorum_queues_where_the_server_has_them_classic_for_priorities() -> None:
    quorum = {"x-queue-type": "quorum", "x-delivery-limit": 2**31 - 1}
    default = Layout.of(None, None, None)
    assert default.main_arguments((3, 10, 8)) == quorum
    assert default.main_arguments((4, 1, 0)) == quorum
    assert default.main_arguments((3, 9, 29)) == {}, "no quorum TTL before 3.10: classic"
    assert default.main_arguments(None) == {}
    assert not default.strict, "an existing queue of another type is used as it is"
    priorities = Layout.of(None, 10, None)
    assert priorities.main_arguments((4, 1, 0)) == {"x-max-priority": 10}
    assert priorities.strict
    assert Layout.of("classic", None, None).main_arguments((3, 10, 8)) == {}
    legacy = Layout.of(None, None, {"x-queue-type": "quorum"})
    assert legacy.queue_type == "quorum"
    assert legacy.main_arguments((3, 10, 8)) == quorum


def test_holding_queues_dead_letter_into_their_queue_and_expire_when_unused() -> None:
    holding = Layout.of(None, None, None).holding_arguments("jobs", 65536, (3, 10, 8))
    assert holding == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "jobs",
        "x-expires": 65536 + 600_000,
        "x-queue-type": "quorum",
        "x-overflow": "reject-publish",
        "x-dead-letter-strategy": "at-least-once",
    }
    classic = Layout.of("classic", None, None).holding_arguments("jobs", 65536, (3, 10, 8))
    assert "x-queue-type" not in classic
    index = Layout.of(None, None, None).index_arguments((3, 10, 8))
    assert index["x-expires"] > BUCKETS_MS[-1] + 600_000, "the index outlives every holding queue"


@pytest.mark.parametrize(
    ("delay", "bucket"),
    [
        (0.0001, 256),
        (0.256, 256),
        (0.2561, 512),
        (1, 1024),
        (60, 65536),
        (65.536, 65536),
        (65.537, 131072),
        (MAX_DELAY, 2**31),
    ],
)
def test_delays_fall_in_power_of_two_buckets(delay: float, bucket: int) -> None:
    assert bucket_for(delay) == bucket


def test_the_longest_delay_fits_rabbitmq_s_32_bit_milliseconds() -> None:
    assert amqp_capabilities().max_delay == MAX_DELAY
    assert (BUCKETS_MS[-1] + 2 * 600_000) < 2**32, "x-expires of the index"
    with pytest.raises(ValueError, match="longest"):
        bucket_for(MAX_DELAY + 1)


@pytest.mark.parametrize("name", ["jobs", "x" * 255, "é" * 127 + "x", "🚀" * 63, "a.b c/d"])
def test_holding_queue_names_stay_within_255_bytes(name: str) -> None:
    derived = [holding_name(name, bucket) for bucket in BUCKETS_MS] + [index_name(name)]
    assert all(len(queue.encode()) <= 255 for queue in derived)
    assert len(set(derived)) == len(derived)
    if len(name.encode()) < 200:
        assert derived[0] == f"bridge.delay.256ms.{name}", "short names stay readable"
    else:
        assert holding_name(name, 256) != holding_name(name[:-1] + "y", 256)


def test_the_server_version_is_read_from_its_properties() -> None:
    assert parse_version("3.10.8") == (3, 10, 8)
    assert parse_version(b"4.0.0-rc.2") == (4, 0, 0)
    assert parse_version("") is None
    assert parse_version(None) is None


# -- RabbitMQ ---------------------------------------------------------------------


@rabbitmq
def test_a_claim_takes_what_it_asked_for_and_nothing_more(connect: Connect) -> None:
    """No prefetch past the claim: what one connection has not claimed, another can."""
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
    with pytest.raises(bridge.UnsupportedOperationError):
        other.delay_item(item, 30)
    assert holder.delete_item(item)
    assert other.number_of_items() == 0


@rabbitmq
def test_priorities_with_max_priority(connect: Connect) -> None:
    name = unique()
    queue = connect(name, max_priority=10)
    assert (queue.capabilities.priority, queue.capabilities.max_priority) == (True, 10)
    assert queue.capabilities.ordered, "classic queues requeue at the old place"
    queue.create_item("low")
    queue.create_item("high", priority=9)
    queue.create_items(["mid 1", "mid 2"], priority=5)
    claimed = queue.claim_items(4, lease_time=60)
    assert [(item.data, item.priority) for item in claimed] == [
        ("high", 9),
        ("mid 1", 5),
        ("mid 2", 5),
        ("low", 0),
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
    caps = queue.capabilities
    assert (caps.lease, caps.delay, caps.cancel_delays, caps.settle_after_release) == (
        "emulated",
        True,
        True,
        False,
    )
    assert (caps.max_lease, caps.max_delay) == (1740, MAX_DELAY)
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.create_item("x", priority=1)
    queue.create_items(["a", "b"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.extend_lease(item, 120)
    # counts_leased=False: another connection's claims are invisible to counts.
    assert queue.number_of_items() == 2
    assert other.number_of_items() == 1
    assert (other.counts().ready, other.counts().leased) == (1, 0)
    assert (queue.counts().ready, queue.counts().leased) == (1, 1)


@rabbitmq
def test_leases_end_within_max_lease_of_the_delivery(connect: Connect) -> None:
    """RabbitMQ's consumer_timeout counts from the delivery, so leases do too."""
    queue = connect(unique(), max_lease=4)
    assert queue.capabilities.max_lease == 2, "half of a short max_lease is kept back"
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="at most 2 seconds"):
        queue.claim_item(lease_time=2.5)
    item = queue.claim_item(lease_time=2)
    assert item is not None
    assert queue.extend_lease(item, 2), "a full lease, extended by a full lease at once"
    time.sleep(2.2)
    with pytest.raises(bridge.InvalidArgumentError, match="max_lease"):
        queue.extend_lease(item, 2)
    assert queue.extend_lease(item, 1.5)
    assert queue.delete_item(item)


def close_socket(queue: bridge.Queue) -> None:
    queue.backend._session._conn.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]


def close_with_rabbitmqctl(queue: bridge.Queue) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed here")
    port = queue.backend._session._conn.connection.sock.getsockname()[1]  # type: ignore[attr-defined]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if listed.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot list connections: {listed.stderr.strip()}")
    pids = [
        line.split("\t")[0]
        for line in listed.stdout.splitlines()
        if line.split("\t")[-1:] == [str(port)]
    ]
    assert pids, f"no connection from port {port} in {listed.stdout!r}"
    subprocess.run(
        ["rabbitmqctl", "close_connection", pids[0], "bridge test"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    time.sleep(0.2)


@rabbitmq
@pytest.mark.parametrize("kill", [close_socket, close_with_rabbitmqctl], ids=["socket", "broker"])
def test_a_lost_connection_raises_backend_unavailable_then_reconnects(
    connect: Connect,
    kill: Callable[[bridge.Queue], None],
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
    assert count_becomes(queue, 2) == 2, "reconnected; the broker requeued the claim"
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


# -- queue types --------------------------------------------------------------------


def declare(channel: Any, name: str, arguments: dict[str, Any]) -> Any:
    """The broker's answer to a declare of ``name`` with ``arguments``: ok or the error."""
    try:
        return channel.queue_declare(
            queue=name, durable=True, auto_delete=False, arguments=arguments
        )
    except Exception as exc:
        return exc


@rabbitmq
def test_queues_are_quorum_queues_by_default(connect: Connect, raw: Callable[[], Any]) -> None:
    name = unique()
    queue = connect(name)
    queue.create_item("x")
    quorum = {"x-queue-type": "quorum", "x-delivery-limit": 2**31 - 1}
    assert getattr(declare(raw(), name, quorum), "message_count", None) == 1
    assert getattr(declare(raw(), name, {}), "code", None) == 406, "not a classic queue"
    assert not queue.capabilities.ordered, "quorum queues requeue in the order items came back"


@rabbitmq
def test_quorum_queues_count_attempts_across_connections(connect: Connect) -> None:
    name = unique()
    first, second = connect(name), connect(name)
    first.create_items(["a", "b"])
    for attempt in (1, 2):
        a = first.claim_item(lease_time=30)
        assert a is not None
        assert (a.data, a.attempts) == ("a", attempt), "a released item comes back first"
        assert first.release_item(a)
    assert first.claim_item(lease_time=30) is not None  # "a" a third time
    first.backend.close()  # the broker requeues it
    claimed: dict[str, int] = {}
    deadline = time.monotonic() + 5
    while len(claimed) < 2 and time.monotonic() < deadline:
        claimed.update((item.data, item.attempts) for item in second.claim_items(2, lease_time=30))
    assert claimed == {"a": 4, "b": 1}, "the broker counted every delivery"


@rabbitmq
def test_a_classic_queue_from_before_is_used_as_it_is(
    connect: Connect,
    raw: Callable[[], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Queues declared before quorum queues were the default cannot become quorum ones."""
    name = unique()
    channel = raw()
    declare(channel, name, {})
    channel.basic_publish(channel.prepare_message(b'"old"'), exchange="", routing_key=name)
    queue = connect(name)
    with caplog.at_level(logging.WARNING, logger="bridge.backends.amqp_session"):
        queue.create_item("new")
        assert queue.number_of_items() == 2
        assert [item.data for item in queue.claim_items(2, lease_time=30)] == ["old", "new"]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert "uses it as it is" in warnings[0]
    assert "queue_type='classic'" in warnings[0]
    with pytest.raises(bridge.ConfigurationError, match="delete it or match them"):
        connect(name, queue_type="quorum").create_item("x")
    assert connect(name, queue_type="classic").number_of_items() == 0, "both claimed"


# -- delays -------------------------------------------------------------------------


@rabbitmq
def test_a_delayed_item_comes_back_on_its_own(connect: Connect) -> None:
    """The holder does nothing more: the broker brings the item back when the delay ends."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("retry me")
    item = holder.claim_item(lease_time=60)
    assert item is not None
    started = time.monotonic()
    assert holder.delay_item(item, 0.8)
    assert other.claim_item(lease_time=60) is None
    assert other.counts() == bridge.ItemCounts(0, 0, 1), "another process sees it delayed"
    calls: list[Callable[[], bool]] = [
        lambda: holder.delete_item(item),
        lambda: holder.release_item(item),
        lambda: holder.extend_lease(item, 5),
        lambda: holder.delay_item(item, 5),
    ]
    for call in calls:
        assert call() is False, "a delay ends the holder's claim on RabbitMQ"
    again = claim_within(other, 10)
    assert time.monotonic() - started >= 0.75
    assert (again.item_id, again.data, again.attempts) == (item.item_id, "retry me", 2)
    assert other.counts() == bridge.ItemCounts(0, 1, 0)
    assert other.delete_item(again)


@rabbitmq
def test_create_item_with_a_delay_is_held_by_the_broker(connect: Connect) -> None:
    name = unique()
    producer, consumer = connect(name), connect(name)
    started = time.monotonic()
    later = producer.create_item("later", delay=0.6)
    assert consumer.counts() == bridge.ItemCounts(0, 0, 1)
    assert consumer.claim_item(lease_time=30) is None
    item = claim_within(consumer, 10)
    assert time.monotonic() - started >= 0.55
    assert (item.item_id, item.attempts) == (later, 1)


@rabbitmq
def test_delays_in_other_buckets_do_not_wait_for_each_other(connect: Connect) -> None:
    name = unique()
    queue = connect(name)
    started = time.monotonic()
    queue.create_item("long", delay=2.0)
    queue.create_item("short", delay=0.3)
    first = claim_within(queue, 10)
    assert first.data == "short"
    assert 0.25 <= time.monotonic() - started < 1.5, "not behind the longer delay"
    second = claim_within(queue, 10)
    assert second.data == "long"
    assert time.monotonic() - started >= 1.95


@rabbitmq
def test_in_one_bucket_a_delay_can_be_late_never_early(connect: Connect) -> None:
    """RabbitMQ expires a queue's head only: 0.6 s behind 0.9 s (both under 1024 ms) waits."""
    name = unique()
    queue = connect(name)
    started = time.monotonic()
    queue.create_item("0.9 s", delay=0.9)
    queue.create_item("0.6 s", delay=0.6)
    claimed = [claim_within(queue, 10), claim_within(queue, 10)]
    elapsed = time.monotonic() - started
    assert {item.data for item in claimed} == {"0.9 s", "0.6 s"}
    assert 0.85 <= elapsed < 3


@rabbitmq
def test_release_all_hands_delayed_items_back_at_once(connect: Connect) -> None:
    name = unique()
    queue, other = connect(name), connect(name)
    queue.create_item("delayed", delay=60)
    queue.create_item("held")
    held = queue.claim_item(lease_time=60)
    assert held is not None
    assert other.counts() == bridge.ItemCounts(0, 0, 1)
    assert queue.release_all() == 2
    assert queue.delete_item(held) is False, "release_all ended the claim"
    freed = queue.claim_items(5, lease_time=60)
    assert sorted(item.data for item in freed) == ["delayed", "held"]
    assert queue.counts() == bridge.ItemCounts(0, 2, 0)


@rabbitmq
def test_delete_queue_deletes_its_holding_queues(connect: Connect, raw: Callable[[], Any]) -> None:
    name = unique()
    queue = connect(name)
    queue.create_items(["a", "b"], delay=60)
    holding = holding_name(name, bucket_for(60))
    assert getattr(declare(raw(), holding, {}), "code", None) == 406, "it exists, quorum"
    queue.delete_queue()
    assert queue.number_of_items() == 0
    for gone in (name, holding, index_name(name)):
        channel = raw()
        with pytest.raises(Exception, match="NOT_FOUND"):
            channel.queue_declare(queue=gone, passive=True)


@rabbitmq
@pytest.mark.parametrize("name", ["é" * 127 + "x", "🚀" * 63], ids=["255-bytes", "emoji"])
def test_long_names_delay_without_errors(connect: Connect, name: str) -> None:
    """255-byte names (RabbitMQ's limit) get holding queues named by their hash."""
    queue = connect(name)
    queue.create_item("x", delay=0.3)
    assert queue.counts().delayed == 1
    item = claim_within(queue, 10)
    assert queue.delay_item(item, 0.3)
    item = claim_within(queue, 10)
    assert item.attempts == 2
    assert queue.delete_item(item)


@rabbitmq
def test_names_rabbitmq_or_bridge_keep_are_refused(connect: Connect) -> None:
    for name in ("amq.mine", "bridge.delay.mine", "bridge.held.mine"):
        with pytest.raises(bridge.InvalidArgumentError, match=r"never start with 'amq\.'"):
            connect(name).create_item("x")
