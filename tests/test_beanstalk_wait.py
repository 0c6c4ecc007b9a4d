"""``bridge queue watch`` on beanstalkd: a blocking reserve, its job parked for the claim.

The backend's wait is tested directly first (what ends it, what a parked
job becomes), then the watcher as a subprocess, with ``tests/test_watch.py``'s
harness and its generic cases run on beanstalkd too.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_watch import Watch

import bridge
from bridge.backends.beanstalk import BeanstalkBackend
from bridge.backends.beanstalk_parked import PARK_LEASE

from children import claim_within
from conftest import spec_for

pytestmark = pytest.mark.service("beanstalk")


@pytest.fixture
def factory() -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec_for("beanstalk", None))
    yield made
    made.close()


@pytest.fixture
def other() -> Iterator[bridge.QueueFactory]:
    """Another connection, as another process has."""
    made = bridge.QueueFactory(default=spec_for("beanstalk", None))
    yield made
    made.close()


@pytest.fixture
def queue(factory: bridge.QueueFactory) -> Iterator[bridge.Queue]:
    made = factory.get(f"bw_{uuid.uuid4().hex[:10]}")
    yield made
    made.delete_queue()


def backend_of(queue: bridge.Queue) -> BeanstalkBackend:
    backend = queue.backend
    assert isinstance(backend, BeanstalkBackend)
    return backend


def parked_one(queue: bridge.Queue) -> BeanstalkBackend:
    """The queue's backend, after a wait that parked the queue's one ready item."""
    backend = backend_of(queue)
    assert backend.wait_for_items([queue.name], 1.0) is True  # the first call
    assert backend.wait_for_items([queue.name], 1.0) is True, "reserved and parked"
    return backend


# -- the wait itself ---------------------------------------------------------------


def test_the_wait_ends_when_an_item_is_created_not_at_its_timeout(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    backend = backend_of(queue)
    assert backend.wait_for_items([queue.name], 1.0) is True, "the first call: at once"
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 1.0) is False, "nothing came"
    assert 0.9 < time.monotonic() - started < 1.5
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 0.3) is False, "below a second: reserve 0, sleep"
    assert 0.25 < time.monotonic() - started < 0.8

    # Through another connection: the wait holds this object's lock and connection.
    timer = threading.Timer(0.3, lambda: other.get(queue.name).create_item("new"))
    created = time.monotonic() + 0.3
    timer.start()
    try:
        assert backend.wait_for_items([queue.name], 1.0) is True
        assert time.monotonic() - created < 0.1, "woken by the put, not the timeout"
    finally:
        timer.join()


def test_a_parked_job_is_handed_out_by_the_next_claim_with_one_attempt(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    queue.create_items(["first", "second"])
    backend = parked_one(queue)
    counts = queue.counts()
    assert (counts.ready, counts.leased) == (2, 0), "parked: claimable here, counted ready"
    assert other.get(queue.name).counts().leased == 1, "reserved, as beanstalkd sees it"
    assert [item.data for item in queue.peek(5)] == ["first", "second"]
    assert backend.wait_for_items([queue.name], 1.0) is True, "a parked job: claim first"

    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.attempts) == ("first", 1), "the reserve counted once"
    assert item.expire > time.time() + 50, "the lease the claim asked for"
    assert queue.extend_lease(item, 120), "a claim like any other"
    assert queue.delete_item(item)
    second = queue.claim_item(lease_time=60)
    assert second is not None
    assert (second.data, second.attempts) == ("second", 1)
    assert queue.delete_item(second)


def test_a_parked_job_not_claimed_goes_back_to_other_claimers(
    factory: bridge.QueueFactory, other: bridge.QueueFactory
) -> None:
    name, elsewhere = f"bw_{uuid.uuid4().hex[:10]}", f"bw_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    try:
        queue.create_item("parked")
        parked_one(queue)
        theirs = other.get(name)
        assert theirs.claim_item(lease_time=30) is None, "reserved here"
        time.sleep(PARK_LEASE + 0.1)
        assert factory.get(elsewhere).claim_item(lease_time=30) is None
        item = claim_within(theirs, 2)
        assert (item.data, item.attempts) == ("parked", 2), "released: its next claim counts"
        assert theirs.delete_item(item)
    finally:
        queue.delete_queue()


def test_a_wait_that_leaves_the_queue_out_gives_its_parked_job_back(
    factory: bridge.QueueFactory, other: bridge.QueueFactory
) -> None:
    queue, rested = factory.get(f"bw_{uuid.uuid4().hex[:10]}"), factory.get("bw_rested")
    try:
        queue.create_item("x")
        backend = parked_one(queue)
        assert backend.wait_for_items([rested.name], 0.1) is True, "a new name: at once"
        assert backend.wait_for_items([rested.name], 0.1) is False
        item = claim_within(other.get(queue.name), 2)
        assert item.data == "x"
        assert other.get(queue.name).delete_item(item)
    finally:
        queue.delete_queue()


@pytest.mark.parametrize("how", ["close", "release_all", "garbage_collection"])
def test_close_release_all_and_gc_give_a_parked_job_back(
    queue: bridge.Queue, other: bridge.QueueFactory, how: str
) -> None:
    queue.create_item("x")
    parked_one(queue)
    if how == "close":
        queue.backend.close()
    elif how == "release_all":
        assert queue.release_all() == 1
    else:
        time.sleep(PARK_LEASE + 0.1)
        queue.garbage_collection()
    item = claim_within(other.get(queue.name), 2)
    assert (item.data, item.attempts) == ("x", 2)
    assert other.get(queue.name).delete_item(item)


def test_delete_queue_deletes_a_parked_job(queue: bridge.Queue, other: bridge.QueueFactory) -> None:
    queue.create_item("x")
    parked_one(queue)
    queue.delete_queue()
    assert other.get(queue.name).number_of_items() == 0


def test_a_wait_on_two_queues_parks_for_the_queue_the_job_is_in(
    factory: bridge.QueueFactory,
) -> None:
    a, b = factory.get(f"bw_{uuid.uuid4().hex[:10]}"), factory.get(f"bw_{uuid.uuid4().hex[:10]}")
    try:
        backend = backend_of(a)
        assert backend.wait_for_items([a.name, b.name], 1.0) is True
        b.create_item("for b")
        assert backend.wait_for_items([a.name, b.name], 1.0) is True
        assert a.claim_item(lease_time=30) is None, "a's claim watches a's tube only"
        item = b.claim_item(lease_time=30)
        assert item is not None
        assert (item.data, item.attempts) == ("for b", 1)
        assert b.delete_item(item)
    finally:
        a.delete_queue()
        b.delete_queue()


def test_the_wait_ends_when_a_lease_held_here_ends(queue: bridge.Queue) -> None:
    backend = backend_of(queue)
    queue.create_item("x")
    assert backend.wait_for_items([queue.name], 1.0) is True
    item = queue.claim_item(lease_time=0.3)  # a failed item, left to its lease
    assert item is not None
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 1.0) is True
    assert 0.2 < time.monotonic() - started < 0.6
    again = queue.claim_item(lease_time=30)
    assert again is not None
    assert (again.item_id, again.attempts) == (item.item_id, 2)
    assert queue.delete_item(again)


# -- the watcher, a subprocess -------------------------------------------------------


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Watch]:
    watcher = Watch("beanstalk", tmp_path)
    yield watcher
    watcher.close()


def test_a_second_signal_mid_wait_stops_at_once(watch: Watch) -> None:
    watch.start()
    watch.signal()
    watch.signal(signal.SIGTERM)  # raised in the reserve: the connection is dropped
    status, err = watch.exited(within=5)
    assert status == 0, err
    watch.a.create_item("after")
    item = claim_within(watch.a, 2)
    assert (item.data, item.attempts) == ("after", 1)
    assert watch.a.delete_item(item)
