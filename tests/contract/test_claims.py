"""Claiming: what comes out of a queue, in which order, and to whom.

Runs unchanged on every backend; a test that needs an optional operation
skips on the backend's capabilities, never on its name.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import bridge


def test_two_queues_share_nothing(make_queue: Callable[..., bridge.Queue]) -> None:
    """The classic two-queue run: claims, counts and deletes stay on their own side."""
    left, right = make_queue(), make_queue()
    left.create_queue()
    right.create_queue()
    left_data = [{"side": "left", "n": n, "tags": ["a", n]} for n in range(4)]
    right_data = [{"side": "right", "n": n, "tags": ["b", n]} for n in range(4)]

    left_ids = [left.create_item(data) for data in left_data]
    assert len(set(left_ids)) == 4
    assert left.number_of_items() == 4
    assert right.number_of_items() == 0
    assert right.claim_item(lease_time=30) is None

    first_two = [left.claim_item(lease_time=30), left.claim_item(lease_time=30)]
    assert all(item is not None for item in first_two)
    if left.capabilities.counts_leased:
        assert left.number_of_items() == 4, "leased items still count"

    right_ids = [right.create_item(data) for data in right_data]
    assert len(set(right_ids)) == 4, "ids are unique within a queue"
    assert right.number_of_items() == 4

    right_claimed = [right.claim_item(lease_time=30) for _ in range(2)]
    assert [item.data for item in right_claimed if item] == right_data[:2]

    last_two = [left.claim_item(lease_time=30), left.claim_item(lease_time=30)]
    assert left.claim_item(lease_time=30) is None, "every left item is leased"
    left_claimed = [item for item in first_two + last_two if item is not None]
    assert [item.data for item in left_claimed] == left_data
    assert [item.item_id for item in left_claimed] == left_ids
    assert {item.queue for item in left_claimed} == {left.name}

    for item in left_claimed:
        assert left.delete_item(item)
    assert left.number_of_items() == 0
    assert right.number_of_items() == 4

    rest = right.claim_items(10, lease_time=30)
    assert [item.data for item in rest] == right_data[2:]
    right.delete_queue()
    assert right.number_of_items() == 0
    assert right.claim_item(lease_time=30) is None
    left.create_item("still works")
    assert left.number_of_items() == 1


def test_claim_on_an_empty_queue_gives_nothing(queue: bridge.Queue) -> None:
    assert queue.claim_item(lease_time=30) is None
    assert queue.claim_items(5, lease_time=30) == []
    queue.create_queue()
    assert queue.claim_item(lease_time=30) is None
    assert queue.claim_items(5, lease_time=30) == []
    assert queue.number_of_items() == 0


def test_claim_after_the_last_item_is_deleted_gives_nothing(queue: bridge.Queue) -> None:
    queue.create_item("only")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.delete_item(item)
    assert queue.claim_item(lease_time=30) is None
    assert queue.claim_items(3, lease_time=30) == []


def test_items_come_out_in_the_order_they_went_in(queue: bridge.Queue) -> None:
    created = [queue.create_item(f"item {n}") for n in range(6)]
    claimed = [queue.claim_item(lease_time=30) for _ in range(6)]
    assert [item.item_id for item in claimed if item] == created
    assert [item.data for item in claimed if item] == [f"item {n}" for n in range(6)]


def test_a_claimed_item_carries_its_lease(queue: bridge.Queue) -> None:
    item_id = queue.create_item({"k": "v"})
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.item_id == item_id
    assert item.data == {"k": "v"}
    assert item.attempts == 1
    assert item.priority == 0
    assert item.queue == queue.name
    assert isinstance(item.created, float)
    assert isinstance(item.expire, float)
    # The lease is measured on the backend's clock; 30 s leaves room for skew.
    assert 25 < item.expire - item.created < 35


def test_a_released_item_is_claimed_before_newer_ones(queue: bridge.Queue) -> None:
    first, second, third = (queue.create_item(name) for name in ("first", "second", "third"))
    head = queue.claim_item(lease_time=30)
    middle = queue.claim_item(lease_time=30)
    assert head is not None
    assert middle is not None
    assert (head.item_id, middle.item_id) == (first, second)

    assert queue.release_item(middle)
    assert middle.expire == 0.0
    again = queue.claim_item(lease_time=30)
    assert again is not None
    assert again.item_id == second, "the released item goes back ahead of newer items"
    assert again.attempts == 2

    assert queue.release_item(head)
    assert [item.item_id for item in queue.claim_items(5, lease_time=30)] == [first, third]


def test_release_makes_the_item_claimable_at_once(queue: bridge.Queue) -> None:
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.claim_item(lease_time=60) is None
    assert queue.release_item(item)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert again.item_id == item.item_id
    assert again.data == "x"


def test_higher_priority_first_then_fifo(queue: bridge.Queue) -> None:
    if not queue.capabilities.priority:
        pytest.skip("the backend has no priorities (capabilities.priority)")
    # Negative priorities where the store has them; RabbitMQ's start at 0.
    lowest = 0 if queue.capabilities.max_priority is not None else -3
    plan = [
        ("low-1", 1),
        ("high-1", 5),
        ("lowest-1", lowest),
        ("mid-1", 2),
        ("high-2", 5),
        ("low-2", 1),
        ("mid-2", 2),
        ("high-3", 5),
    ]
    for data, priority in plan:
        queue.create_item(data, priority=priority)
    claimed = queue.claim_items(3, lease_time=30) + [
        queue.claim_item(lease_time=30) for _ in range(5)
    ]
    assert [item.data for item in claimed if item] == [
        "high-1",
        "high-2",
        "high-3",
        "mid-1",
        "mid-2",
        "low-1",
        "low-2",
        "lowest-1",
    ]
    assert [item.priority for item in claimed if item] == [5, 5, 5, 2, 2, 1, 1, lowest]


def test_a_released_item_keeps_its_priority(queue: bridge.Queue) -> None:
    if not queue.capabilities.priority:
        pytest.skip("the backend has no priorities (capabilities.priority)")
    queue.create_item("urgent", priority=9)
    queue.create_item("routine")
    urgent = queue.claim_item(lease_time=30)
    assert urgent is not None
    assert urgent.data == "urgent"
    queue.create_item("routine 2")
    assert queue.release_item(urgent)
    again = queue.claim_item(lease_time=30)
    assert again is not None
    assert again.data == "urgent"
    assert again.priority == 9


def test_bulk_created_priority_applies_to_every_item(queue: bridge.Queue) -> None:
    if not queue.capabilities.priority:
        pytest.skip("the backend has no priorities (capabilities.priority)")
    queue.create_items(["a", "b"])
    queue.create_items(["c", "d"], priority=1)
    assert [item.data for item in queue.claim_items(4, lease_time=30)] == ["c", "d", "a", "b"]


def test_without_priority_support_priority_is_refused(queue: bridge.Queue) -> None:
    if queue.capabilities.priority:
        pytest.skip("the backend supports priorities")
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.create_item("x", priority=1)
    assert queue.number_of_items() == 0


def test_no_item_is_claimed_twice(queue: bridge.Queue) -> None:
    queue.create_items(list(range(20)))
    seen: list[object] = []
    while batch := queue.claim_items(3, lease_time=60):
        seen.extend(item.item_id for item in batch)
        single = queue.claim_item(lease_time=60)
        if single is not None:
            seen.append(single.item_id)
    assert len(seen) == 20
    assert len(set(seen)) == 20
