"""Leases, delays and claim tokens: the time-dependent half of the contract.

Short leases (0.3 s) keep the suite fast; waits poll with a generous deadline
instead of sleeping a fixed guess, so a loaded machine slows the suite down
rather than failing it. Lower bounds are checked right after the call that
set them, while the lease is still far from its end.
"""

from __future__ import annotations

import time

import pytest

import bridge

SHORT_LEASE = 0.3
PATIENCE = 10.0
"""How long to wait for an item to come back before calling it lost."""


def claim_when_ready(queue: bridge.Queue, lease_time: float = 30) -> bridge.QueueItem:
    """Claim as soon as something is claimable; fail if nothing is within PATIENCE s."""
    deadline = time.monotonic() + PATIENCE
    while True:
        item = queue.claim_item(lease_time=lease_time)
        if item is not None:
            return item
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable in {PATIENCE} s")
        time.sleep(0.02)


def test_an_expired_lease_is_claimable_again_without_garbage_collection(
    queue: bridge.Queue,
) -> None:
    item_id = queue.create_item({"job": 1})
    first = queue.claim_item(lease_time=SHORT_LEASE)
    assert first is not None

    second = claim_when_ready(queue)
    assert second.item_id == item_id
    assert second.data == {"job": 1}
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.expire > first.expire
    assert queue.number_of_items() == 1


def test_a_stale_holder_cannot_touch_the_new_claim(queue: bridge.Queue) -> None:
    queue.create_item("contested")
    stale = queue.claim_item(lease_time=SHORT_LEASE)
    assert stale is not None
    fresh = claim_when_ready(queue, lease_time=30)
    assert fresh.item_id == stale.item_id
    stale_expire = stale.expire

    assert queue.delete_item(stale) is False
    assert queue.release_item(stale) is False
    if queue.capabilities.extend_lease:
        assert queue.extend_lease(stale, 30) is False
    if queue.capabilities.delay:
        assert queue.delay_item(stale, 0) is False
    assert queue.delete_items([stale]) == 0
    assert stale.expire == stale_expire

    assert queue.claim_item(lease_time=30) is None, "the new holder still holds the item"
    assert queue.number_of_items() == 1
    if queue.capabilities.extend_lease:
        assert queue.extend_lease(fresh, 30)
    assert queue.delete_item(fresh)
    assert queue.number_of_items() == 0


def test_delete_items_counts_only_items_still_held(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    stale = queue.claim_items(3, lease_time=SHORT_LEASE)
    assert len(stale) == 3
    fresh = claim_when_ready(queue, lease_time=30)
    # The other two leases ran out too but nobody claimed those items again,
    # so their holder still holds them.
    assert fresh.item_id == stale[0].item_id
    assert queue.delete_items(stale) == 2
    assert queue.number_of_items() == 1
    assert queue.delete_items([fresh]) == 1
    assert queue.number_of_items() == 0


def test_calls_on_a_deleted_item_return_false(queue: bridge.Queue) -> None:
    queue.create_item("gone soon")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.delete_item(item)
    assert queue.delete_item(item) is False
    assert queue.release_item(item) is False
    if queue.capabilities.delay:
        assert queue.delay_item(item, 1) is False
    if queue.capabilities.extend_lease:
        assert queue.extend_lease(item, 1) is False
    assert queue.number_of_items() == 0
    assert queue.claim_item(lease_time=30) is None


def test_extend_lease_holds_the_item_past_its_first_lease(queue: bridge.Queue) -> None:
    if not queue.capabilities.extend_lease:
        pytest.skip("the backend cannot extend leases (capabilities.extend_lease)")
    queue.create_item("long job")
    item = queue.claim_item(lease_time=SHORT_LEASE)
    assert item is not None
    first_expire = item.expire
    assert queue.extend_lease(item, 3)
    assert item.expire > first_expire + 2

    time.sleep(SHORT_LEASE + 0.5)
    assert queue.claim_item(lease_time=30) is None, "the extended lease still holds"
    assert queue.delete_item(item), "the holder still holds the item"
    assert queue.number_of_items() == 0


def test_extend_lease_after_the_claim_is_lost_returns_false(queue: bridge.Queue) -> None:
    if not queue.capabilities.extend_lease:
        pytest.skip("the backend cannot extend leases (capabilities.extend_lease)")
    queue.create_item("x")
    lost = queue.claim_item(lease_time=SHORT_LEASE)
    assert lost is not None
    winner = claim_when_ready(queue, lease_time=SHORT_LEASE)
    assert queue.extend_lease(lost, 30) is False
    # The winner's short lease was not stretched by the loser's call.
    again = claim_when_ready(queue, lease_time=30)
    assert again.item_id == winner.item_id
    assert again.attempts == 3


def test_without_extend_lease_support_it_is_refused(queue: bridge.Queue) -> None:
    if queue.capabilities.extend_lease:
        pytest.skip("the backend can extend leases")
    queue.create_item("x")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.extend_lease(item, 30)


def test_delay_item_hides_the_item_until_the_delay_has_passed(queue: bridge.Queue) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    queue.create_item("retry me")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    lease_end = item.expire

    started = time.monotonic()
    assert queue.delay_item(item, 0.5)
    assert queue.claim_item(lease_time=30) is None, "delayed, not claimable yet"
    assert item.expire < lease_end - 30, "the delay counts from now, not from the lease's end"

    again = claim_when_ready(queue)
    waited = time.monotonic() - started
    assert again.item_id == item.item_id
    assert again.attempts == 2
    assert waited >= 0.45
    if queue.capabilities.counts_leased:
        assert queue.number_of_items() == 1


def test_delay_zero_makes_the_item_claimable_now(queue: bridge.Queue) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.delay_item(item, 0)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert again.item_id == item.item_id


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan"), float("-inf")])
def test_a_bad_delay_is_refused_and_changes_nothing(queue: bridge.Queue, bad: float) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    expire = item.expire
    with pytest.raises(ValueError, match="delay") as raised:
        queue.delay_item(item, bad)
    assert isinstance(raised.value, bridge.InvalidArgumentError)
    assert item.expire == expire
    assert queue.claim_item(lease_time=60) is None, "the item stays leased"
    assert queue.delete_item(item), "and its holder still holds it"


def test_create_item_with_a_delay(queue: bridge.Queue) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    started = time.monotonic()
    later = queue.create_item("later", delay=0.6)
    now = queue.create_item("now")
    if queue.capabilities.counts_leased:
        assert queue.number_of_items() == 2, "delayed items count"
    first = queue.claim_item(lease_time=30)
    assert first is not None
    assert first.item_id == now, "an older delayed item does not block a ready one"
    assert queue.claim_item(lease_time=30) is None

    item = claim_when_ready(queue)
    assert time.monotonic() - started >= 0.55
    assert item.item_id == later
    assert item.data == "later"
    assert item.attempts == 1


def test_create_items_with_a_delay(queue: bridge.Queue) -> None:
    if not queue.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    ids = queue.create_items(["a", "b"], delay=0.5)
    assert queue.claim_items(2, lease_time=30) == []
    first = claim_when_ready(queue)
    rest = queue.claim_items(2, lease_time=30)
    assert [first.item_id, *[item.item_id for item in rest]] == ids


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf")])
def test_a_bad_delay_at_create_writes_nothing(queue: bridge.Queue, bad: float) -> None:
    queue.create_item("already there")
    with pytest.raises(ValueError, match="delay"):
        queue.create_item("x", delay=bad)
    with pytest.raises(bridge.InvalidArgumentError, match="delay"):
        queue.create_items(["y", "z"], delay=bad)
    assert queue.number_of_items() == 1


def test_without_delay_support_delays_are_refused(queue: bridge.Queue) -> None:
    if queue.capabilities.delay:
        pytest.skip("the backend can delay items")
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.create_item("x", delay=5)
    assert queue.number_of_items() == 0
    queue.create_item("x")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.delay_item(item, 5)


def test_garbage_collection_keeps_every_live_item(queue: bridge.Queue) -> None:
    queue.create_items(["held", "expiring", "ready"])
    held = queue.claim_item(lease_time=60)
    expiring = queue.claim_item(lease_time=SHORT_LEASE)
    assert held is not None
    assert expiring is not None
    if queue.capabilities.delay:
        queue.create_item("delayed", delay=60)
    time.sleep(SHORT_LEASE + 0.2)

    queue.garbage_collection()
    if queue.capabilities.counts_leased:
        assert queue.number_of_items() == (4 if queue.capabilities.delay else 3)
    claimed = queue.claim_items(5, lease_time=60)
    assert sorted(item.data for item in claimed) == ["expiring", "ready"]
    assert queue.delete_item(held), "collection did not take the live lease"


def test_times_have_sub_second_precision(queue: bridge.Queue) -> None:
    queue.create_item("a")
    time.sleep(0.25)
    queue.create_item("b")
    a, b = queue.claim_items(2, lease_time=30)
    assert 0.15 < b.created - a.created < 5

    queue.create_items(["c", "d"])
    started = time.monotonic()
    c = queue.claim_item(lease_time=10.25)
    d = queue.claim_item(lease_time=10.75)
    between = time.monotonic() - started
    assert c is not None
    assert d is not None
    assert 0.45 <= d.expire - c.expire <= 0.55 + between
