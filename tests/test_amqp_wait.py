"""``wait_for_items`` on RabbitMQ: a consumer on each queue, the pushed message parked.

What this file checks, on quorum and classic queues, against the real broker
(the watcher as a process is in ``tests/test_watch.py``):

* an item created by another connection during a wait ends it at once;
* the message pushed to the wait is handed out by the next claim, without a
  fetch, counted once (attempts 1), and the claim chain after it streams;
* nothing is hidden that the next claim here does not hand out: the wait's
  idle consumers are gone, and a parked claim not taken comes back to other
  connections (garbage collection, a claim of another queue, a wait on
  other queues, ``close``, ``release_all``);
* a delayed item ends the wait when its delay does.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import bridge
from bridge import Settlement
from bridge.backends.amqp_wait import PARK_LEASE

from children import connections
from conftest import AMQP_URL

pytestmark = pytest.mark.service("rabbitmq")
Connect = Callable[..., bridge.Queue]


@pytest.fixture(params=["quorum", "classic"])
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(queue_type: str) -> Iterator[Connect]:
    """``connect(name)``: the queue on a broker connection of its own, of ``queue_type``."""
    yield from connections({"url": AMQP_URL, "options": {"queue_type": queue_type}})


def unique() -> str:
    return f"wait_{uuid.uuid4().hex[:10]}"


def wait(queue: bridge.Queue, timeout: float, *names: str) -> bool:
    backend = queue.backend
    assert isinstance(backend, bridge.contract.Waiting)
    return backend.wait_for_items(list(names) or [queue.name], timeout)


def listening(queue: bridge.Queue, *names: str) -> None:
    """The first wait, which returns True at once (the contract), done."""
    assert wait(queue, 1.0, *names) is True


def count_fetches(queue: bridge.Queue) -> list[int]:
    """Count the ``basic.get`` calls on the queue's channel from now on: [n]."""
    queue.create_queue()
    channel = queue.backend._session.channels[queue.name]  # type: ignore[attr-defined]
    fetches = [0]
    fetch = channel.basic_get

    def counted(*args: object, **kwargs: object) -> object:
        fetches[0] += 1
        return fetch(*args, **kwargs)

    channel.basic_get = counted
    return fetches


def sibling(queue: bridge.Queue, name: str) -> bridge.Queue:
    """Queue ``name`` on ``queue``'s backend object (its connection)."""
    return bridge.Queue(name, queue.backend, queue.codec, queue.failure_policy)


def park(waiter: bridge.Queue, other: bridge.Queue, data: str) -> None:
    """``other`` creates an item; ``waiter``'s wait is pushed it and parks it."""
    other.create_item(data)
    assert wait(waiter, 5.0) is True
    assert other.claim_item(lease_time=5) is None, "parked: the waiter's until claimed"


def test_the_first_wait_returns_at_once_and_an_idle_one_times_out(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_queue()
    began = time.monotonic()
    assert wait(queue, 5.0) is True
    assert time.monotonic() - began < 1.0
    began = time.monotonic()
    assert wait(queue, 0.3) is False
    assert 0.29 <= time.monotonic() - began < 1.0
    assert queue.counts() == bridge.ItemCounts(0, 0, 0, 0)


def test_an_item_created_during_a_wait_ends_it_at_once(connect: Connect) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    listening(waiter)
    created: list[float] = []

    def create() -> None:
        time.sleep(0.3)
        created.append(time.monotonic())
        other.create_item("new")

    creator = threading.Thread(target=create)
    creator.start()
    try:
        assert wait(waiter, 5.0) is True
        woke = time.monotonic()
    finally:
        creator.join()
    # A sleeping watcher would see it 0.125 s later on average.
    assert woke - created[0] < 0.1, woke - created[0]
    item = waiter.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.attempts) == ("new", 1)


def test_a_parked_item_is_handed_out_once_and_the_chain_streams(connect: Connect) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    listening(waiter)
    park(waiter, other, "a")
    assert waiter.counts() == bridge.ItemCounts(1, 0, 0, 0), "parked: ready, not leased"
    assert other.counts().ready == 0
    other.create_items(["b", "c"])
    fetches = count_fetches(waiter)
    item = waiter.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.attempts) == ("a", 1), "counted once, on quorum queues too"
    assert fetches == [0], "handed out, not fetched"
    assert item.expire == pytest.approx(time.time() + 60, abs=5), "the claim's lease"
    assert waiter.counts() == bridge.ItemCounts(2, 1, 0, 0)
    seen = []
    while item is not None:
        seen.append((item.data, item.attempts))
        settled, claimed = waiter.settle_and_claim(Settlement.delete(item), 1, 60)
        assert settled
        item = claimed[0] if claimed else None
    # b and c come as any chain's pushes do; their attempts are test_amqp_stream.py's
    # (a quorum queue redelivered one of a chain once, under load: noted there).
    assert seen[0] == ("a", 1)
    assert [data for data, _ in seen] == ["a", "b", "c"]
    assert other.counts() == bridge.ItemCounts(0, 0, 0, 0)


def test_settle_and_claim_hands_out_a_parked_claim_first(connect: Connect) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    waiter.create_item("in hand")
    in_hand = waiter.claim_item(lease_time=60)
    assert in_hand is not None
    listening(waiter)
    park(waiter, other, "parked")
    fetches = count_fetches(waiter)
    settled, claimed = waiter.settle_and_claim(Settlement.delete(in_hand), 1, 60)
    assert settled
    assert [(item.data, item.attempts) for item in claimed] == [("parked", 1)]
    assert fetches == [0]
    assert waiter.counts() == bridge.ItemCounts(0, 1, 0, 0)
    assert waiter.delete_item(claimed[0])


def test_a_wait_on_several_queues_parks_only_what_was_pushed(connect: Connect) -> None:
    first, second = unique(), unique()
    waiter, other = connect(first), connect(second)
    mine = sibling(waiter, second)
    waiter.create_queue()
    mine.create_queue()
    listening(waiter, first, second)
    other.create_item("for the second")
    assert wait(waiter, 5.0, first, second) is True
    later = connect(first)
    later.create_item("for the first, after the wait")
    item = later.claim_item(lease_time=60)
    assert item is not None, "no consumer left on the first queue"
    assert later.delete_item(item)
    assert other.counts().ready == 0, "the second's item is the waiter's, parked"
    assert mine.counts() == bridge.ItemCounts(1, 0, 0, 0)
    item = mine.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.attempts) == ("for the second", 1)
    assert mine.delete_item(item)


@pytest.mark.parametrize("how", ["garbage_collection", "another queue's claim", "close"])
def test_a_parked_item_not_claimed_comes_back_to_other_connections(
    connect: Connect, queue_type: str, how: str
) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    listening(waiter)
    park(waiter, other, "parked")
    time.sleep(PARK_LEASE + 0.05)
    if how == "garbage_collection":
        waiter.garbage_collection()
    elif how == "close":
        waiter.backend.close()
    else:
        assert waiter.backend.claim_items(unique(), 1, 60) == []
    item = other.claim_item(lease_time=60)
    assert item is not None
    assert item.data == "parked"
    assert item.attempts == 2, "delivered once to the wait"
    assert other.delete_item(item)
    assert waiter.counts() == bridge.ItemCounts(0, 0, 0, 0)


def test_a_wait_gives_back_what_it_parked_for_a_queue_it_no_longer_waits_on(
    connect: Connect,
) -> None:
    name, resting = unique(), unique()
    waiter, other = connect(resting), connect(resting)
    waiter.create_queue()
    listening(waiter, name, resting)
    other.create_item("for the resting queue")
    assert wait(waiter, 5.0, name, resting) is True
    assert wait(waiter, 0.1, name) is False, "the resting queue is not named"
    item = other.claim_item(lease_time=60)
    assert item is not None, "given back at once, park lease or not"
    assert other.delete_item(item)


def test_release_all_and_delete_queue_take_parked_claims_too(connect: Connect) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    listening(waiter)
    park(waiter, other, "parked")
    assert waiter.release_all() == 1
    assert other.counts().ready == 1
    item = other.claim_item(lease_time=60)
    assert item is not None
    assert item.data == "parked"
    assert other.delete_item(item)
    park(waiter, other, "another")
    waiter.delete_queue()
    assert waiter.counts() == bridge.ItemCounts(0, 0, 0, 0)
    assert waiter.claim_items(5, lease_time=60) == []


def test_a_delayed_item_ends_the_wait_when_its_delay_does(connect: Connect) -> None:
    name = unique()
    waiter, other = connect(name), connect(name)
    listening(waiter)
    created = time.monotonic()
    other.create_item("later", delay=0.5)
    while not wait(waiter, 1.0):
        assert time.monotonic() - created < 5, "the delay never ended"
    woke = time.monotonic() - created
    assert 0.45 <= woke < 1.5, woke
    item = waiter.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.attempts) == ("later", 1)
