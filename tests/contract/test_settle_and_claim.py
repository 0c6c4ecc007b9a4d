"""Settle a finished item and claim the next in one call: one round trip where the store can.

Every backend runs these (the contract's default is the two calls); the
all-or-nothing test runs where the ``settle_and_claim`` capability is on.
"""

from __future__ import annotations

import pytest

import bridge
from bridge import Settlement

from .test_holding import claim_one
from .test_leases import SHORT_LEASE, claim_when_ready


def test_delete_and_claim_the_next_in_claim_order(queue: bridge.Queue) -> None:
    queue.create_items(["first", "second", "third"])
    first = claim_one(queue)

    settled, claimed = queue.settle_and_claim(Settlement.delete(first), count=1, lease_time=60)
    assert settled is True
    assert [item.data for item in claimed] == ["second"]
    assert claimed[0].attempts == 1
    settled, claimed = queue.settle_and_claim(Settlement.delete(claimed[0]), count=5)
    assert settled is True
    assert [item.data for item in claimed] == ["third"]
    settled, claimed = queue.settle_and_claim(Settlement.delete(claimed[0]))
    assert (settled, claimed) == (True, [])
    assert queue.number_of_items() == 0


def test_release_and_claim_may_claim_the_released_item_again(queue: bridge.Queue) -> None:
    queue.create_item("only")
    first = claim_one(queue)
    settled, claimed = queue.settle_and_claim(Settlement.release(first))
    assert settled is True
    assert [(item.data, item.attempts) for item in claimed] == [("only", 2)]


def test_delay_fail_and_hold_settle_as_their_own_calls_do(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c", "d"])
    a = claim_one(queue)
    if queue.capabilities.delay:
        settled, claimed = queue.settle_and_claim(Settlement.delay_by(a, 600))
        assert settled is True
        assert queue.counts().delayed == 1
    else:
        settled, claimed = queue.settle_and_claim(Settlement.release(a))
    (b,) = claimed
    settled, claimed = queue.settle_and_claim(Settlement.fail(b, "ValueError: b"))
    assert settled is True
    (c,) = claimed
    assert c.data != b.data, "a failed item without a delay stays leased"
    if queue.capabilities.hold:
        settled, claimed = queue.settle_and_claim(Settlement.hold(c, "poison", "KeyError: c"))
        assert settled is True
        assert queue.counts().held == 1
        (held,) = queue.held_items()
        assert held.data == c.data
        if queue.capabilities.held_details:
            assert held.hold_reason == "poison"
        if queue.capabilities.keeps_errors:
            assert held.last_error == "KeyError: c"


def test_a_lost_claim_is_not_settled_and_the_claim_still_happens(queue: bridge.Queue) -> None:
    queue.create_items(["contested", "next"])
    stale = claim_one(queue, lease_time=SHORT_LEASE)
    assert stale.data == "contested"
    fresh = claim_when_ready(queue, lease_time=60)
    if fresh.data != "contested":  # unordered stores may hand out "next" first
        fresh = claim_when_ready(queue, lease_time=60)
    assert fresh.data == "contested"

    settled, claimed = queue.settle_and_claim(Settlement.delete(stale))
    assert settled is False, "a stale holder deletes nothing"
    assert queue.delete_item(fresh), "the new holder still holds it"
    assert [item.data for item in claimed] in (["next"], [])


def test_count_zero_only_settles(queue: bridge.Queue) -> None:
    queue.create_items(["one", "two"])
    one = claim_one(queue)
    settled, claimed = queue.settle_and_claim(Settlement.delete(one), count=0)
    assert (settled, claimed) == (True, [])
    assert queue.counts().total == 1


def test_bad_settlements_are_refused_before_anything_changes(
    queue: bridge.Queue, make_queue
) -> None:
    queue.create_item("kept")
    item = claim_one(queue)
    with pytest.raises(bridge.InvalidArgumentError, match="Settlement"):
        queue.settle_and_claim(item)  # type: ignore[arg-type]
    with pytest.raises(bridge.InvalidArgumentError, match="claimed from queue"):
        make_queue().settle_and_claim(Settlement.delete(item))
    if queue.capabilities.delay:
        with pytest.raises(bridge.InvalidArgumentError, match="delay"):
            queue.settle_and_claim(Settlement.delay_by(item, -1))
    with pytest.raises(bridge.InvalidArgumentError, match="lease_time"):
        queue.settle_and_claim(Settlement.delete(item), lease_time=0)
    assert queue.counts().leased == 1, "nothing was settled"
    assert queue.delete_item(item)


def test_settle_alone_makes_the_single_call_and_claims_nothing(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    a, b = claim_one(queue), claim_one(queue)
    assert queue.settle(Settlement.delete(a)) is True
    assert queue.settle(Settlement.delete(a)) is False, "already deleted"
    assert queue.settle(Settlement.fail(b, "ValueError: b")) is True
    assert b.last_error == "ValueError: b"
    counts = queue.counts()
    assert (counts.total, counts.leased) == (2, 1), "c was not claimed"
    with pytest.raises(bridge.InvalidArgumentError, match="Settlement"):
        queue.settle(b)  # type: ignore[arg-type]


def test_a_settled_failure_keeps_its_error_on_the_item(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    a = claim_one(queue)
    settled, _ = queue.settle_and_claim(Settlement.fail(a, "KeyError: a"))
    assert settled is True
    assert a.last_error == "KeyError: a", "as fail_item leaves it"
