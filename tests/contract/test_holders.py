"""Who may settle a claim: the holder, as in Drupal, until someone else claims.

Drupal's ``DatabaseQueue`` updates and deletes by item id, so one holder's
calls succeed for as long as the item exists: ``delayItem`` then
``releaseItem`` both return TRUE, and both return FALSE after
``deleteItem``. bridge keeps those return values for every sequence of one
holder's calls, and adds one fence: once *another* claimer holds the item,
or ``release_all`` freed it, the old holder's calls return False.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

import bridge
from bridge.contract import MAX_COUNT, MAX_NAME_BYTES, MAX_PRIORITY, MAX_SECONDS, MIN_PRIORITY

Call = Callable[[bridge.Queue, bridge.QueueItem], bool]
CALLS: dict[str, Call] = {
    "delete": lambda queue, item: queue.delete_item(item),
    "release": lambda queue, item: queue.release_item(item),
    "delay": lambda queue, item: queue.delay_item(item, 60),
    "extend": lambda queue, item: queue.extend_lease(item, 60),
}


def supported(queue: bridge.Queue) -> list[str]:
    caps = queue.capabilities
    return [
        name
        for name in CALLS
        if (name != "delay" or caps.delay) and (name != "extend" or caps.extend_lease)
    ]


def test_one_holder_gets_drupal_s_return_values_for_every_sequence(
    queue: bridge.Queue,
) -> None:
    if not queue.capabilities.settle_after_release:
        pytest.skip("the backend ends a claim on release (capabilities.settle_after_release)")
    names = supported(queue)
    sequences = list(itertools.product(names, repeat=3))
    queue.create_items(range(len(sequences)))
    items = queue.claim_items(len(sequences), lease_time=60)
    assert len(items) == len(sequences)
    for sequence, item in zip(sequences, items, strict=True):
        exists = True
        for call in sequence:
            # Drupal: every call succeeds while the item exists; delete ends it.
            assert CALLS[call](queue, item) is exists, f"{call} in {sequence}"
            exists = exists and call != "delete"


def test_a_delayed_item_stays_its_holder_s(queue: bridge.Queue) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    if not queue.capabilities.settle_after_release:
        pytest.skip("the backend ends a claim on delay (capabilities.settle_after_release)")
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.delay_item(item, 60)
    assert queue.counts().delayed == 1
    assert queue.release_item(item), "Drupal: releaseItem after delayItem is TRUE"
    assert queue.delete_item(item)
    assert queue.number_of_items() == 0


def test_another_claimer_fences_the_released_holder(queue: bridge.Queue) -> None:
    queue.create_item("x")
    first = queue.claim_item(lease_time=60)
    assert first is not None
    assert queue.release_item(first)
    second = queue.claim_item(lease_time=60)
    assert second is not None
    assert second.item_id == first.item_id
    for name in supported(queue):
        assert CALLS[name](queue, first) is False, name
    assert queue.delete_item(second)


def test_release_all_ends_the_claims_it_frees(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    held = queue.claim_items(2, lease_time=60)
    assert len(held) == 2
    assert queue.release_all() == 2
    for name in supported(queue):
        assert CALLS[name](queue, held[0]) is False, f"{name} after release_all"
    again = queue.claim_items(2, lease_time=60)
    assert sorted(item.item_id for item in again) == sorted(item.item_id for item in held)
    assert queue.delete_items(again) == 2


# -- limits: one set, refused up front, on every backend ----------------------------


@pytest.mark.parametrize("seconds", [MAX_SECONDS + 1, 9.3e12, 2**64])
def test_a_lease_or_delay_past_the_limit_is_refused(queue: bridge.Queue, seconds: float) -> None:
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="at most"):
        queue.claim_item(lease_time=seconds)
    if queue.capabilities.delay:
        with pytest.raises(bridge.InvalidArgumentError, match="at most"):
            queue.create_item("y", delay=seconds)
    item = queue.claim_item(lease_time=60)
    assert item is not None
    if queue.capabilities.extend_lease:
        with pytest.raises(bridge.InvalidArgumentError, match="at most"):
            queue.extend_lease(item, seconds)
    if queue.capabilities.delay:
        with pytest.raises(bridge.InvalidArgumentError, match="at most"):
            queue.delay_item(item, seconds)
    assert queue.number_of_items() == 1, "nothing written"
    assert queue.delete_item(item)


def test_the_longest_lease_holds(queue: bridge.Queue) -> None:
    longest = queue.capabilities.max_lease or MAX_SECONDS
    queue.create_item("x")
    item = queue.claim_item(lease_time=longest)
    assert item is not None
    assert queue.claim_item(lease_time=60) is None, "a long lease must not wrap around"
    if queue.capabilities.extend_lease:
        assert queue.extend_lease(item, longest)
    assert queue.delete_item(item)


@pytest.mark.parametrize("priority", [MAX_PRIORITY + 1, MIN_PRIORITY - 1, 2**63])
def test_a_priority_past_the_limit_is_refused(queue: bridge.Queue, priority: int) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="priority"):
        queue.create_item("x", priority=priority)
    assert queue.number_of_items() == 0


def test_the_extreme_priorities_are_kept(queue: bridge.Queue) -> None:
    if not queue.capabilities.priority:
        pytest.skip("the backend has no priorities (capabilities.priority)")
    high = queue.capabilities.max_priority or MAX_PRIORITY
    low = 0 if queue.capabilities.max_priority else MIN_PRIORITY
    queue.create_item("low", priority=low)
    queue.create_item("high", priority=high)
    first = queue.claim_item(lease_time=60)
    assert first is not None
    assert (first.data, first.priority) == ("high", high)


@pytest.mark.parametrize("count", [MAX_COUNT + 1, 2**64, -1])
def test_a_count_past_the_limit_is_refused(queue: bridge.Queue, count: int) -> None:
    queue.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="count"):
        queue.claim_items(count, lease_time=60)
    with pytest.raises(bridge.InvalidArgumentError, match="limit"):
        queue.peek(count)
    assert queue.counts().ready == 1, "nothing claimed"


@pytest.mark.parametrize("name", ["🚀" * 64, "é" * 128, "x" * (MAX_NAME_BYTES + 1)])
def test_a_name_past_the_byte_limit_is_refused(factory: bridge.QueueFactory, name: str) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="bytes"):
        factory.get(name)
