"""The bulk calls: create_items, claim_items and delete_items."""

from __future__ import annotations

import pytest

import bridge


def test_create_items_returns_the_ids_in_order(queue: bridge.Queue) -> None:
    data = [{"n": n} for n in range(25)]
    ids = queue.create_items(data)
    assert len(ids) == 25
    assert len(set(ids)) == 25
    assert queue.number_of_items() == 25
    claimed = queue.claim_items(25, lease_time=30)
    assert [item.item_id for item in claimed] == ids
    assert [item.data for item in claimed] == data


def test_create_items_accepts_any_iterable(queue: bridge.Queue) -> None:
    ids = queue.create_items(f"gen {n}" for n in range(3))
    assert len(ids) == 3
    assert [item.data for item in queue.claim_items(3, lease_time=30)] == [
        "gen 0",
        "gen 1",
        "gen 2",
    ]


def test_create_items_with_nothing_writes_nothing(queue: bridge.Queue) -> None:
    assert queue.create_items([]) == []
    assert queue.number_of_items() == 0


def test_bulk_and_single_creates_interleave_in_order(queue: bridge.Queue) -> None:
    first = queue.create_item("one")
    middle = queue.create_items(["two", "three"])
    last = queue.create_item("four")
    claimed = queue.claim_items(10, lease_time=30)
    assert [item.item_id for item in claimed] == [first, *middle, last]


def test_claim_items_returns_at_most_n_distinct_items_in_order(queue: bridge.Queue) -> None:
    ids = queue.create_items([f"item {n}" for n in range(7)])
    first = queue.claim_items(3, lease_time=30)
    second = queue.claim_items(10, lease_time=30)
    assert [item.item_id for item in first] == ids[:3]
    assert [item.item_id for item in second] == ids[3:]
    assert queue.claim_items(10, lease_time=30) == []
    everything = first + second
    assert len({item.item_id for item in everything}) == 7
    assert all(item.attempts == 1 for item in everything)
    assert all(item.queue == queue.name for item in everything)
    if queue.capabilities.counts_leased:
        assert queue.number_of_items() == 7


def test_claim_items_of_zero_claims_nothing(queue: bridge.Queue) -> None:
    queue.create_item("x")
    assert queue.claim_items(0, lease_time=30) == []
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.attempts == 1


@pytest.mark.parametrize("count", [-1, 1.5, "3", True, None])
def test_claim_items_refuses_a_bad_count(queue: bridge.Queue, count: object) -> None:
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="count"):
        queue.claim_items(count, lease_time=30)  # type: ignore[arg-type]
    assert queue.claim_item(lease_time=30) is not None, "nothing was claimed"


def test_delete_items_returns_how_many_were_held(queue: bridge.Queue) -> None:
    queue.create_items(list(range(6)))
    claimed = queue.claim_items(6, lease_time=30)
    assert queue.delete_item(claimed[0])
    assert queue.delete_items(claimed[:4]) == 3, "the first was already gone"
    assert queue.number_of_items() == 2
    assert queue.delete_items(claimed) == 2
    assert queue.number_of_items() == 0
    assert queue.delete_items(claimed) == 0
    assert queue.delete_items([]) == 0


def test_delete_items_leaves_other_items_alone(queue: bridge.Queue) -> None:
    ids = queue.create_items(["keep 1", "drop 1", "keep 2", "drop 2"])
    claimed = queue.claim_items(4, lease_time=30)
    dropped = [item for item in claimed if item.data.startswith("drop")]
    kept = [item for item in claimed if item.data.startswith("keep")]
    assert queue.delete_items(dropped) == 2
    assert queue.number_of_items() == 2
    for item in kept:
        assert queue.release_item(item)
    assert [item.item_id for item in queue.claim_items(4, lease_time=30)] == [ids[0], ids[2]]


def test_delete_items_refuses_a_peeked_item(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    peeked = queue.peek(2)
    assert [item.data for item in peeked] == ["a", "b"]
    assert queue.delete_items(peeked) == 0
    assert queue.number_of_items() == 2


# On moto, a thousand SQS messages take 30 s alone and several times that beside
# other workers under coverage; the default 120 s bound is for a hang, not for this.
@pytest.mark.timeout(600)
def test_a_large_batch(queue: bridge.Queue) -> None:
    data = [{"n": n, "pad": "x" * 100} for n in range(1000)]
    ids = queue.create_items(data)
    assert len(set(ids)) == 1000
    assert queue.number_of_items() == 1000
    claimed = []
    while batch := queue.claim_items(300, lease_time=60):
        assert len(batch) <= 300
        claimed.extend(batch)
    assert [item.data for item in claimed] == data
    assert queue.delete_items(claimed) == 1000
    assert queue.number_of_items() == 0
