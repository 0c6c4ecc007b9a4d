"""Queues as a whole: set-up, counting, isolation, arguments and capabilities."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import bridge


def test_create_queue_is_idempotent(queue: bridge.Queue) -> None:
    queue.create_queue()
    queue.create_item("x")
    queue.create_queue()
    queue.create_queue()
    assert queue.number_of_items() == 1
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == "x"


def test_items_can_be_created_without_create_queue(queue: bridge.Queue) -> None:
    assert queue.number_of_items() == 0
    item_id = queue.create_item("no set-up needed")
    assert queue.number_of_items() == 1
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.item_id == item_id


def test_number_of_items_counts_ready_leased_and_delayed(queue: bridge.Queue) -> None:
    if not queue.capabilities.counts_leased:
        pytest.skip("the backend counts only ready items (capabilities.counts_leased)")
    queue.create_items(["ready", "leased", "released"])
    assert queue.number_of_items() == 3
    claimed = queue.claim_items(3, lease_time=60)
    assert queue.number_of_items() == 3
    assert queue.release_item(claimed[2])
    if queue.capabilities.delay:
        queue.create_item("delayed", delay=60)
        assert queue.number_of_items() == 4
        assert queue.delay_item(claimed[0], 60)
        assert queue.number_of_items() == 4
    assert queue.delete_item(claimed[1])
    assert queue.number_of_items() == (3 if queue.capabilities.delay else 2)


def test_counts_split_ready_leased_and_delayed(queue: bridge.Queue) -> None:
    if not (queue.capabilities.counts_leased and queue.capabilities.delay):
        pytest.skip("the backend cannot see every leased and delayed item (capabilities)")
    queue.create_items(["a", "b", "c", "d"])
    queue.create_item("later", delay=60)
    leased = queue.claim_item(lease_time=60)
    delayed = queue.claim_item(lease_time=60)
    assert leased is not None
    assert delayed is not None
    assert queue.delay_item(delayed, 60)
    expired = queue.claim_item(lease_time=0.2)
    assert expired is not None
    time.sleep(0.3)
    counts = queue.counts()
    assert (counts.ready, counts.leased, counts.delayed) == (2, 1, 2), counts
    assert counts.total == queue.number_of_items() == 5


def test_delete_queue_empties_only_its_own_queue(
    make_queue: Callable[..., bridge.Queue],
) -> None:
    doomed, kept = make_queue(), make_queue()
    doomed.create_items(["d1", "d2", "d3"])
    kept.create_items(["k1", "k2"])
    leased = doomed.claim_item(lease_time=60)
    kept_leased = kept.claim_item(lease_time=60)
    assert leased is not None
    assert kept_leased is not None
    if doomed.capabilities.delay:
        doomed.create_item("d4", delay=60)

    doomed.delete_queue()
    assert doomed.number_of_items() == 0
    assert doomed.claim_item(lease_time=30) is None
    assert doomed.delete_item(leased) is False, "leased items went too"

    assert kept.number_of_items() == 2
    assert kept.delete_item(kept_leased)
    rest = kept.claim_item(lease_time=30)
    assert rest is not None
    assert rest.data == "k2"


def test_a_deleted_queue_can_be_used_again(queue: bridge.Queue) -> None:
    queue.create_items(["old 1", "old 2"])
    queue.delete_queue()
    queue.delete_queue()
    new_id = queue.create_item("new")
    assert queue.number_of_items() == 1
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert (item.item_id, item.data, item.attempts) == (new_id, "new", 1)


def test_names_that_look_like_patterns_stay_apart(
    make_queue: Callable[..., bridge.Queue],
) -> None:
    stem = f"q{uuid.uuid4().hex[:8]}"
    names = [f"{stem}_a", f"{stem}%", f"{stem}_", f"{stem}*", f"{stem}.a", f"{stem}\\"]
    queues = [make_queue(name) for name in names]
    for n, queue in enumerate(queues):
        queue.create_items([queue.name] * (n + 1))
    queues[1].delete_queue()
    queues[2].delete_queue()
    assert [queue.number_of_items() for queue in queues] == [1, 0, 0, 4, 5, 6]
    for queue in (queues[0], *queues[3:]):
        item = queue.claim_item(lease_time=30)
        assert item is not None
        assert item.data == queue.name


def test_names_differing_in_case_accents_or_trailing_spaces_stay_apart(
    make_queue: Callable[..., bridge.Queue],
) -> None:
    """Names compare as their exact characters, on every store (MariaDB's default
    collation would make all five of these one queue)."""
    stem = f"q{uuid.uuid4().hex[:8]}"
    names = [f"{stem}pad", f"{stem}PAD", f"{stem}pád", f"{stem}pad ", f"{stem}pad  "]
    queues = [make_queue(name) for name in names]
    for n, queue in enumerate(queues):
        queue.create_items([queue.name] * (n + 1))
    assert [queue.number_of_items() for queue in queues] == [1, 2, 3, 4, 5]
    for queue in queues:
        item = queue.claim_item(lease_time=30)
        assert item is not None
        assert item.data == queue.name
        assert queue.delete_item(item)
    queues[0].delete_queue()
    assert [queue.number_of_items() for queue in queues] == [0, 1, 2, 3, 4]


def test_unicode_and_long_queue_names(make_queue: Callable[..., bridge.Queue]) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"émail-漢字-🚀-{tag}", f"{tag}-" + "n" * 246, f"{tag} with spaces/and:colons"]
    assert len(names[1]) == 255
    queues = [make_queue(name) for name in names]
    for queue in queues:
        queue.create_item({"for": queue.name})
    for queue in queues:
        assert queue.number_of_items() == 1
        item = queue.claim_item(lease_time=30)
        assert item is not None
        assert item.data == {"for": queue.name}
        assert queue.delete_item(item)


@pytest.mark.parametrize("name", ["", "x" * 256, None, 7])
def test_bad_queue_names_are_refused(factory: bridge.QueueFactory, name: Any) -> None:
    with pytest.raises(bridge.InvalidArgumentError):
        factory.get(name)


def test_items_of_another_queue_are_refused(make_queue: Callable[..., bridge.Queue]) -> None:
    mine, theirs = make_queue(), make_queue()
    theirs.create_item("theirs")
    item = theirs.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.InvalidArgumentError, match=theirs.name):
        mine.delete_item(item)
    with pytest.raises(bridge.InvalidArgumentError):
        mine.delete_items([item])
    with pytest.raises(bridge.InvalidArgumentError):
        mine.release_item(item)
    if mine.capabilities.delay:
        with pytest.raises(bridge.InvalidArgumentError):
            mine.delay_item(item, 0)
    if mine.capabilities.extend_lease:
        with pytest.raises(bridge.InvalidArgumentError):
            mine.extend_lease(item, 30)
    assert theirs.claim_item(lease_time=60) is None, "still leased"
    assert theirs.delete_item(item), "its holder still holds it"


def test_things_that_are_not_items_are_refused(queue: bridge.Queue) -> None:
    queue.create_item("x")
    claimed = queue.claim_item(lease_time=60)
    assert claimed is not None
    for not_an_item in (claimed.item_id, {"item_id": claimed.item_id}, None):
        with pytest.raises(bridge.InvalidArgumentError):
            queue.delete_item(not_an_item)  # type: ignore[arg-type]
    assert queue.number_of_items() == 1


@pytest.mark.parametrize("lease", [0, -1, -0.5, float("nan"), float("inf"), "30", None, True])
def test_a_bad_lease_time_is_refused(queue: bridge.Queue, lease: Any) -> None:
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="lease_time"):
        queue.claim_item(lease_time=lease)
    with pytest.raises(bridge.InvalidArgumentError, match="lease_time"):
        queue.claim_items(3, lease_time=lease)
    item = queue.claim_item(lease_time=60)
    assert item is not None, "the refused claims claimed nothing"
    assert item.attempts == 1
    if queue.capabilities.extend_lease:
        with pytest.raises(bridge.InvalidArgumentError, match="lease_time"):
            queue.extend_lease(item, lease)
        assert queue.claim_item(lease_time=60) is None


@pytest.mark.parametrize("priority", [1.5, "1", None, True])
def test_a_bad_priority_is_refused(queue: bridge.Queue, priority: Any) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="priority"):
        queue.create_item("x", priority=priority)
    assert queue.number_of_items() == 0


def test_attempts_count_every_claim(queue: bridge.Queue) -> None:
    queue.create_item("poison")
    for expected in (1, 2, 3):
        item = queue.claim_item(lease_time=30)
        assert item is not None
        assert item.attempts == expected
        assert queue.release_item(item)


def test_peek_shows_the_claim_order_without_claiming(queue: bridge.Queue) -> None:
    ids = queue.create_items(["a", "b", "c"])
    leased = queue.claim_item(lease_time=60)
    assert leased is not None
    peeked = queue.peek(10)
    assert [item.item_id for item in peeked][:2] == ids[1:], "claimable items first"
    assert queue.peek(1)[0].item_id == ids[1]
    assert queue.peek(0) == []
    claimed = queue.claim_items(5, lease_time=60)
    assert [item.item_id for item in claimed] == ids[1:]
    assert all(item.attempts == 1 for item in claimed), "peeking did not claim"
    for item in peeked:
        assert queue.release_item(item) is False, "a peeked item holds no claim"
    assert queue.claim_item(lease_time=60) is None


def test_release_all_frees_every_lease_and_delay(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    claimed = queue.claim_items(2, lease_time=60)
    everything = ["a", "b", "c"]
    if queue.capabilities.delay and queue.capabilities.cancel_delays:
        queue.create_item("d", delay=60)
        everything.append("d")
    assert queue.release_all() == len(everything) - 1, "every item but the ready one"
    freed = queue.claim_items(10, lease_time=60)
    assert sorted(item.data for item in freed) == everything
    assert queue.delete_items(claimed) == 0, "the old claims were dropped"


def test_the_backend_lists_the_queue(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    listed = queue.backend.queue_names()
    assert listed.get(queue.name) == 2
    queue.delete_queue()
    assert queue.name not in queue.backend.queue_names()


def test_capabilities_are_declared(queue: bridge.Queue) -> None:
    capabilities = queue.capabilities
    assert isinstance(capabilities, bridge.Capabilities)
    assert capabilities is queue.backend.capabilities
    assert capabilities.lease in ("exact", "emulated")
    for flag in ("reliable", "shared", "extend_lease", "delay", "priority", "counts_leased"):
        assert isinstance(getattr(capabilities, flag), bool), flag


def test_a_shared_backend_is_seen_by_a_second_connection(
    queue: bridge.Queue, backend_spec: dict[str, Any]
) -> None:
    if not queue.capabilities.shared:
        pytest.skip("the backend is not shared (capabilities.shared)")
    ids = queue.create_items(["one", "two"])
    other_factory = bridge.QueueFactory(default=backend_spec)
    try:
        other = other_factory.get(queue.name)
        assert other.backend is not queue.backend
        assert other.number_of_items() == 2
        theirs = other.claim_item(lease_time=60)
        assert theirs is not None
        assert theirs.item_id == ids[0]
        mine = queue.claim_item(lease_time=60)
        assert mine is not None
        assert mine.item_id == ids[1], "the other connection's claim is seen here"
        assert queue.claim_item(lease_time=60) is None
        assert other.delete_item(theirs)
        assert queue.number_of_items() == 1
        other.create_item("three")
        fresh = queue.claim_item(lease_time=60)
        assert fresh is not None
        assert fresh.data == "three"
    finally:
        other_factory.close()


def test_a_reliable_backend_keeps_items_across_connections(
    queue: bridge.Queue, backend_spec: dict[str, Any]
) -> None:
    if not (queue.capabilities.reliable and queue.capabilities.shared):
        pytest.skip("the backend is not reliable and shared (capabilities)")
    writer = bridge.QueueFactory(default=backend_spec)
    writer.get(queue.name).create_item({"survives": True})
    leased = writer.get(queue.name).claim_item(lease_time=0.2)
    writer.close()
    assert leased is not None
    assert queue.number_of_items() == 1
    reader = bridge.QueueFactory(default=backend_spec)
    try:
        item = None
        for _ in range(200):
            item = reader.get(queue.name).claim_item(lease_time=30)
            if item is not None:
                break
            time.sleep(0.05)
        assert item is not None, "the closed claimer's lease ran out and the item came back"
        assert item.data == {"survives": True}
        assert item.attempts == 2
    finally:
        reader.close()
