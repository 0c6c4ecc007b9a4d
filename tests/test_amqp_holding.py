"""Held items, failures and moves between queues on RabbitMQ, with the movers killed.

``tests/contract/test_holding.py`` checks what every backend does with held
items and failures; this file checks what only RabbitMQ shows: the held
queue (its name, type and arguments), looks that keep the held order,
attempts reset in every process by a kick, errors that travel with the
copy of a message, a held queue deleted under its holder, and the guarantee
of every move (hold, kick, delay) when the process making it is SIGKILLed:
afterwards each item is where it was or where it went, exactly once.

The killed processes are real and so is the broker. To hit the instants
that matter, a child replaces bridge's own commit with a SIGKILL to itself
(before the commit frame is sent, or right after); in the loop cases the
parent kills a child that holds, kicks or delays item after item.
"""

from __future__ import annotations

import collections
import importlib
import json
import random
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
from bridge.backends.amqp_layout import (
    BUCKETS_MS,
    DELIVERY_LIMIT,
    Layout,
    held_name,
    holding_name,
    index_name,
)

from children import connections
from conftest import AMQP_URL

rabbitmq = pytest.mark.service("rabbitmq")
LAYOUTS = [
    pytest.param({}, id="quorum"),
    pytest.param({"max_priority": 10}, id="classic"),
]
Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(name, **options)``: the queue on a broker connection of its own."""
    yield from connections({"url": AMQP_URL})


@pytest.fixture
def raw() -> Iterator[Callable[[], Any]]:
    """Open bare py-amqp channels, to see what bridge declared."""
    kombu: Any = importlib.import_module("kombu")
    conn = kombu.Connection(AMQP_URL)
    conn.connect()
    yield conn.channel
    conn.release()


def unique() -> str:
    return f"held_{uuid.uuid4().hex[:10]}"


def declared(channel: Any, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """What the broker answers to a declare: the queue's message count, or the error code."""
    try:
        if arguments is None:
            return channel.queue_declare(queue=name, passive=True).message_count
        return channel.queue_declare(
            queue=name, durable=True, auto_delete=False, arguments=arguments
        ).message_count
    except Exception as exc:
        return getattr(exc, "code", exc)


def claim(queue: bridge.Queue, lease: float = 60) -> bridge.QueueItem:
    deadline = time.monotonic() + 10
    while (item := queue.claim_item(lease_time=lease)) is None:
        if time.monotonic() > deadline:
            pytest.fail("nothing became claimable within 10 s")
        time.sleep(0.01)
    return item


# -- the layout (no broker needed) ---------------------------------------------------


@pytest.mark.parametrize("name", ["jobs", "x" * 255, "é" * 127 + "x", "🚀" * 63, "a.b c/d"])
def test_held_queue_names_stay_within_255_bytes_apart_from_the_others(name: str) -> None:
    held = held_name(name)
    assert len(held.encode()) <= 255
    assert held not in {holding_name(name, bucket) for bucket in BUCKETS_MS} | {index_name(name)}
    if len(name.encode()) < 200:
        assert held == f"bridge.held.{name}", "short names stay readable"
    else:
        assert held != held_name(name[:-1] + "y")


def test_held_queues_have_the_queue_s_type_and_nothing_that_drops_a_message() -> None:
    quorum = {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
    limited = Layout.of(None, None, {"x-max-length": 10, "x-message-ttl": 1000})
    assert limited.held_arguments((3, 10, 8)) == quorum, "no length limit, no TTL"
    assert limited.held_arguments((3, 9, 29)) == {}, "classic where the queue is classic"
    assert Layout.of(None, 10, None).held_arguments((3, 10, 8)) == {}, "no priorities"
    assert Layout.of("classic", None, None).held_arguments((4, 1, 0)) == {}


# -- held queues on the broker ---------------------------------------------------------


@rabbitmq
@pytest.mark.parametrize("options", LAYOUTS)
def test_the_held_queue_is_declared_at_the_first_hold_and_deleted_with_the_queue(
    connect: Connect, raw: Callable[[], Any], options: dict[str, Any]
) -> None:
    name = unique()
    queue = connect(name, **options)
    queue.create_item("poison")
    held = held_name(name)
    assert declared(raw(), held) == 404, "no held queue before a hold"
    assert queue.hold_item(claim(queue), reason="r")
    if options:
        assert declared(raw(), held, {}) == 1, "classic, without priorities"
    else:
        quorum = {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
        assert declared(raw(), held, quorum) == 1
        assert declared(raw(), held, {}) == 406, "not a classic queue"
    queue.delete_queue()
    assert declared(raw(), held) == 404


@rabbitmq
def test_held_items_show_in_every_process_with_why_when_and_the_error(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    item_id = holder.create_item({"to": "nobody@example.com"})
    assert holder.release_item(claim(holder))
    item = claim(holder)
    before = time.time()
    assert holder.hold_item(item, reason="address bounced", error="SMTPError: 550")
    after = time.time()

    assert other.counts() == bridge.ItemCounts(0, 0, 0, 1)
    assert other.number_of_items() == 1
    [shown] = other.held_items()
    assert (shown.item_id, shown.data, shown.attempts) == (item_id, item.data, 2)
    assert (shown.hold_reason, shown.last_error) == ("address bounced", "SMTPError: 550")
    assert shown.held_at is not None
    assert before - 1 <= shown.held_at <= after + 1
    assert other.peek(10) == [], "held items are not in the queue"


@rabbitmq
@pytest.mark.parametrize("options", LAYOUTS)
def test_looks_and_kicks_keep_the_order_items_were_held_in(
    connect: Connect, options: dict[str, Any]
) -> None:
    """A look fetches and requeues: on a quorum queue requeued messages jump the line."""
    name = unique()
    queue, other = connect(name, **options), connect(name, **options)
    ids = queue.create_items([f"item {n}" for n in range(6)])
    for item in queue.claim_items(6, lease_time=60):
        assert queue.hold_item(item)

    def held() -> list[Any]:
        return [item.item_id for item in other.held_items()]

    assert [item.item_id for item in other.held_items(2)] == ids[:2]
    assert [item.item_id for item in queue.held_items(4)] == ids[:4]
    assert held() == ids
    assert other.kick_item(ids[3])
    assert held() == ids[:3] + ids[4:]
    assert queue.kick_item(ids[0])
    assert other.kick_item("not held") is False
    assert held() == [ids[1], ids[2], ids[4], ids[5]]
    assert other.kick(limit=2) == 2
    assert other.delete_held(limit=1) == 1
    assert held() == [ids[5]]
    kicked = sorted(item.item_id for item in other.claim_items(10, lease_time=60))
    assert kicked == sorted([ids[0], ids[1], ids[2], ids[3]])


@rabbitmq
@pytest.mark.parametrize("options", LAYOUTS)
def test_a_kick_resets_attempts_in_every_process(connect: Connect, options: dict[str, Any]) -> None:
    """Even in one that counted the item's claims before (classic queues count per process)."""
    name = unique()
    worker, operator = connect(name, **options), connect(name, **options)
    worker.create_item("poison")
    for _ in range(2):
        assert worker.release_item(claim(worker))
    item = claim(worker)
    assert item.attempts == 3
    assert worker.hold_item(item, reason="too many attempts")
    assert operator.kick() == 1
    again = claim(worker)
    assert (again.item_id, again.attempts) == (item.item_id, 1)
    assert worker.release_item(again)
    assert claim(operator).attempts == 2


@rabbitmq
@pytest.mark.parametrize(
    "give_back",
    ["release_item", "garbage_collection", "release_all", "close"],
)
def test_a_failed_claim_s_error_goes_back_with_the_item(connect: Connect, give_back: str) -> None:
    """Without a delay the claim keeps the error; it leaves with the copy that goes back."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_items(["flaky", "next"])
    item = claim(holder, lease=0.2)
    assert holder.fail_item(item, "TimeoutError: no answer")
    assert holder.counts().leased == 1
    assert other.claim_item(lease_time=60) is not None, "the next item, not the failed one"
    if give_back == "release_item":
        assert holder.release_item(item)
    elif give_back == "garbage_collection":
        time.sleep(0.3)
        holder.garbage_collection()
    elif give_back == "release_all":
        assert holder.release_all() == 1
    else:
        holder.backend.close()
    again = claim(other)
    assert (again.item_id, again.attempts) == (item.item_id, 2)
    assert again.last_error == "TimeoutError: no answer"


@rabbitmq
def test_a_delayed_failure_carries_its_error_through_release_all(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("retry later")
    item = claim(holder)
    assert holder.fail_item(item, "ConnectionError", delay=60)
    assert other.counts() == bridge.ItemCounts(0, 0, 1, 0)
    assert other.release_all() == 1
    again = claim(other)
    assert (again.item_id, again.attempts, again.last_error) == (item.item_id, 2, "ConnectionError")


@rabbitmq
def test_a_held_queue_deleted_under_its_holder_is_declared_again(
    connect: Connect, raw: Callable[[], Any]
) -> None:
    name = unique()
    queue = connect(name)
    queue.create_items(["first", "second"])
    assert queue.hold_item(claim(queue))
    raw().queue_delete(queue=held_name(name))
    second = claim(queue)
    assert queue.hold_item(second), "the copy came back unroutable and was published again"
    assert [item.item_id for item in queue.held_items()] == [second.item_id]


FAILER = textwrap.dedent("""
    import json, sys, time
    import bridge

    spec, name = json.loads(sys.argv[1]), sys.argv[2]
    queue = bridge.QueueFactory(default=spec).get(name)
    item = queue.claim_item(lease_time=300)
    assert queue.fail_item(item, "RuntimeError: lost with me")
    print(json.dumps(item.item_id), flush=True)
    time.sleep(600)
""")


@rabbitmq
def test_a_claimer_killed_after_fail_item_loses_the_error(connect: Connect) -> None:
    """The documented limit: the broker requeues the message it had, without the error."""
    name = unique()
    queue = connect(name)
    item_id = queue.create_item("x")
    spec = {"url": AMQP_URL}
    child = subprocess.Popen(
        [sys.executable, "-c", FAILER, json.dumps(spec), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read().decode() if child.stderr else "no output"
        assert json.loads(line) == item_id
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    again = claim(queue)
    assert (again.item_id, again.attempts, again.last_error) == (item_id, 2, None)


# -- SIGKILL during a move -------------------------------------------------------------

MOVER = textwrap.dedent("""
    import json, os, signal, sys
    from amqp import spec as methods
    import bridge

    spec, name, mode, when = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    queue = bridge.QueueFactory(default=spec).get(name)
    session = queue.backend._session

    def die(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    def commit_then_die(channel):
        channel.send_method(methods.Tx.Commit)  # its reply is never read
        session._uncork()  # sent with the frames staged before it, as bridge's commit goes
        die()

    if when == "before-commit":
        session.confirmed = die
        session.mover().tx_commit = die
    elif when == "at-commit":
        session.confirmed = lambda queue_name: commit_then_die(session.channels[queue_name])
        mover = session.mover()
        mover.tx_commit = lambda: commit_then_die(mover)

    while True:
        if mode == "kick":
            queue.kick(limit=1)
        else:
            item = queue.claim_item(lease_time=60)
            if item is None:
                break
            if mode == "hold":
                queue.hold_item(item, reason="poison")
            else:
                queue.delay_item(item, 600)
        print("moved", flush=True)
""")
ITEMS = 40


def run_mover(name: str, options: dict[str, Any], mode: str, when: str) -> None:
    """A child moves items (``mode``) until it dies: at its first commit, or when killed."""
    spec = {"url": AMQP_URL, "options": options}
    child = subprocess.Popen(
        [sys.executable, "-c", MOVER, json.dumps(spec), name, mode, when],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        if when == "loop":
            for _ in range(random.randint(3, ITEMS // 2)):
                assert child.stdout.readline(), child.stderr.read().decode() if child.stderr else ""
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL, (
            child.stderr.read().decode() if child.stderr else child.returncode
        )
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def census(queue: bridge.Queue, expected: int) -> tuple[list[Any], list[Any], int]:
    """Every item, by where it is: (ready ids, held ids, delayed count); delayed ones claimed too.

    The broker requeues a dead connection's deliveries at once; the count
    may show them a moment later.
    """
    deadline = time.monotonic() + 10
    while queue.number_of_items() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and anything more there would be, a duplicate
    held = [item.item_id for item in queue.held_items(10 * expected)]
    delayed = queue.counts().delayed
    queue.release_all()
    ready: list[Any] = []
    while batch := queue.claim_items(100, lease_time=60):
        ready += [item.item_id for item in batch]
    return ready, held, delayed


@rabbitmq
@pytest.mark.parametrize("options", LAYOUTS)
@pytest.mark.parametrize("when", ["before-commit", "at-commit", "loop"])
@pytest.mark.parametrize("mode", ["hold", "kick", "delay"])
def test_a_mover_killed_at_any_instant_leaves_each_item_exactly_once(
    connect: Connect, options: dict[str, Any], mode: str, when: str
) -> None:
    name = unique()
    queue = connect(name, **options)
    ids = queue.create_items(range(ITEMS))
    if mode == "kick":
        for item in queue.claim_items(ITEMS, lease_time=60):
            assert queue.hold_item(item)
    run_mover(name, options, mode, when)

    ready, held, delayed = census(queue, ITEMS)
    every = collections.Counter(ready + held)
    assert sorted(every) == sorted(ids), "nothing lost"
    assert set(every.values()) == {1}, f"twice: {[i for i, n in every.items() if n > 1]}"
    moved = {"hold": len(held), "kick": len(ready), "delay": delayed}[mode]
    if when == "before-commit":
        assert moved == 0, "the transaction never reached the broker: nothing moved"
    elif when == "at-commit":
        assert moved <= 1, "the one item whose commit was sent moved, or none"
    else:
        assert 3 <= moved < ITEMS


@rabbitmq
@pytest.mark.parametrize("operation", ["hold_item", "kick"])
def test_a_move_on_a_lost_connection_is_unavailable_and_moves_nothing(
    connect: Connect, operation: str
) -> None:
    name = unique()
    queue, other = connect(name), connect(name)
    item_id = queue.create_item("x")
    item = claim(queue)
    if operation == "kick":
        assert queue.hold_item(item)
    queue.backend._session._conn.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
    move: Callable[[], object] = (
        queue.kick if operation == "kick" else lambda: queue.hold_item(item)
    )
    with pytest.raises(bridge.BackendUnavailableError, match=r"guest:\*\*\*@"):
        move()
    deadline = time.monotonic() + 5
    while other.number_of_items() != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    counts = other.counts()
    assert (counts.ready, counts.held) == ((1, 0) if operation == "hold_item" else (0, 1))
    assert queue.number_of_items() == 1, "the next call reconnects"
    assert [held.item_id for held in other.held_items()] == (
        [] if operation == "hold_item" else [item_id]
    )
