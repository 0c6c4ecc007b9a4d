"""Failed items: errors kept with the item, held items set aside, kicked back, deleted.

Every backend whose capabilities say ``hold`` runs these; the others are
refused up front by the facade (checked last). Where the store keeps only
that an item is held (``held_details`` False: no reason, error or time, no
order past the oldest held) or keeps counting attempts across a kick
(``kick_resets_attempts`` False), the tests check what it does keep.
"""

from __future__ import annotations

import time

import pytest

import bridge
from bridge.items import Undecodable

from .test_leases import SHORT_LEASE, claim_when_ready


@pytest.fixture
def holding(queue: bridge.Queue) -> bridge.Queue:
    if not queue.capabilities.hold:
        pytest.skip("the backend cannot hold items (capabilities.hold)")
    return queue


@pytest.fixture
def detailed(holding: bridge.Queue) -> bridge.Queue:
    if not holding.capabilities.held_details:
        pytest.skip("the store keeps no reason, error or order of held items (held_details)")
    return holding


@pytest.fixture
def keeps_errors(holding: bridge.Queue) -> bridge.Queue:
    if not holding.capabilities.keeps_errors:
        pytest.skip("the store keeps no error with an item (keeps_errors)")
    return holding


def claim_one(queue: bridge.Queue, lease_time: float = 60) -> bridge.QueueItem:
    item = queue.claim_item(lease_time=lease_time)
    assert item is not None
    return item


def test_a_held_item_is_counted_never_claimed_and_kicked_back(holding: bridge.Queue) -> None:
    holding.create_items(["poison", "fine"])
    poison = claim_one(holding)
    assert holding.hold_item(poison, reason="address bounced", error="ValueError: bounced")

    counts = holding.counts()
    assert (counts.held, counts.total) == (1, 2)
    assert holding.number_of_items() == 2, "nothing disappears from Drupal's count"
    assert [item.data for item in holding.peek(10)] == ["fine"], "a held item is not peeked"
    fine = claim_one(holding)
    assert fine.data == "fine"
    assert holding.claim_item(lease_time=60) is None, "a held item is never claimable"

    [held] = holding.held_items()
    assert (held.item_id, held.data, held.attempts) == (poison.item_id, "poison", 1)
    if holding.capabilities.held_details:
        assert held.hold_reason == "address bounced"
        assert held.held_at is not None
        assert abs(held.held_at - time.time()) < 60
    else:
        assert (held.hold_reason, held.held_at) == ("", None)
    kept = holding.capabilities.keeps_errors
    assert held.last_error == ("ValueError: bounced" if kept else None)

    assert holding.kick() == 1
    again = claim_one(holding)
    assert again.item_id == poison.item_id
    if holding.capabilities.kick_resets_attempts:
        assert again.attempts == 1, "kick resets attempts: this claim is the first again"
    else:
        assert again.attempts == 2, "the store's count goes on"
    if kept:
        assert again.last_error == "ValueError: bounced", "the error stays for the next worker"
    assert holding.counts().held == 0
    assert holding.delete_items([fine, again]) == 2


def test_a_stale_holder_cannot_hold_the_new_claim(holding: bridge.Queue) -> None:
    holding.create_item("contested")
    stale = claim_one(holding, lease_time=SHORT_LEASE)
    fresh = claim_when_ready(holding, lease_time=60)
    assert holding.hold_item(stale, reason="too late") is False
    assert holding.counts().held == 0
    assert holding.hold_item(fresh, reason="now")
    assert holding.delete_item(fresh) is False, "the hold ended the claim"
    assert holding.counts().held == 1


def test_held_items_are_listed_oldest_held_first_and_kicked_in_that_order(
    detailed: bridge.Queue,
) -> None:
    holding = detailed
    holding.create_items(["a", "b", "c"])
    claimed = holding.claim_items(3, lease_time=60)
    for item in reversed(claimed):  # held c, then b, then a
        assert holding.hold_item(item, reason=f"reason {item.data}")
        time.sleep(0.01)
    assert [item.data for item in holding.held_items()] == ["c", "b", "a"]
    assert [item.hold_reason for item in holding.held_items(2)] == ["reason c", "reason b"]

    assert holding.kick(limit=1) == 1
    assert claim_one(holding).data == "c"
    assert [item.data for item in holding.held_items()] == ["b", "a"]
    assert holding.kick_item(claimed[0].item_id)
    assert [item.data for item in holding.held_items()] == ["b"]
    assert holding.kick_item(claimed[0].item_id) is False, "a is no longer held"


def test_kick_item_of_an_item_that_is_not_held_changes_nothing(holding: bridge.Queue) -> None:
    item_id = holding.create_item("ready")
    leased = claim_one(holding)
    assert holding.kick_item(item_id) is False
    assert holding.kick_item("no-such-item") is False
    assert holding.delete_item(leased), "the claim is untouched"


def test_delete_held_deletes_only_held_items_oldest_first(holding: bridge.Queue) -> None:
    holding.create_items(["a", "b", "keep"])
    a, b = holding.claim_items(2, lease_time=60)
    assert holding.hold_item(a)
    time.sleep(0.01)
    assert holding.hold_item(b)
    assert holding.delete_held(limit=1) == 1
    assert [item.data for item in holding.held_items()] == ["b"]
    assert holding.delete_held() == 1
    assert holding.counts().held == 0
    assert holding.number_of_items() == 1
    assert claim_one(holding).data == "keep"


def test_release_all_leaves_held_items_held_and_delete_queue_deletes_them(
    holding: bridge.Queue,
) -> None:
    holding.create_items(["held", "leased"])
    held, _leased = holding.claim_items(2, lease_time=60)
    assert holding.hold_item(held)
    assert holding.release_all() == 1
    assert holding.counts().held == 1
    assert claim_one(holding).data == "leased"
    holding.delete_queue()
    assert holding.number_of_items() == 0
    assert holding.held_items() == []


def test_a_failed_attempt_s_error_reaches_the_next_claimer(keeps_errors: bridge.Queue) -> None:
    holding = keeps_errors
    holding.create_item("flaky")
    # Long enough to see it leased on a loaded machine; claim_when_ready waits for its end.
    first = claim_one(holding, lease_time=2)
    assert first.last_error is None
    assert holding.fail_item(first, "TimeoutError: the API did not answer")
    assert holding.counts().leased == 1, "without a delay the item waits for its lease"
    second = claim_when_ready(holding, lease_time=60)
    assert second.item_id == first.item_id
    assert second.attempts == 2
    assert second.last_error == "TimeoutError: the API did not answer"
    assert holding.fail_item(first, "stale") is False, "the old claim writes nothing"
    assert holding.delete_item(second)


def test_a_failed_attempt_with_a_delay_is_delayed(keeps_errors: bridge.Queue) -> None:
    holding = keeps_errors
    if not holding.capabilities.delay:
        pytest.skip("the backend cannot delay items (capabilities.delay)")
    holding.create_item("retry me")
    item = claim_one(holding)
    assert holding.fail_item(item, "ConnectionError", delay=2)
    assert holding.counts().delayed == 1
    assert holding.claim_item(lease_time=60) is None
    again = claim_when_ready(holding, lease_time=60)
    assert (again.item_id, again.last_error) == (item.item_id, "ConnectionError")


def test_a_long_error_is_cut_to_its_head_and_tail(keeps_errors: bridge.Queue) -> None:
    holding = keeps_errors
    holding.create_item("x")
    item = claim_one(holding)
    error = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "KeyError: 'k'"
    assert holding.hold_item(item, reason="r", error=error)
    [held] = holding.held_items()
    assert held.last_error is not None
    assert len(held.last_error) <= 4000
    assert held.last_error.startswith("Traceback")
    assert held.last_error.endswith("KeyError: 'k'")


def test_an_undecodable_item_is_held_and_the_others_are_handed_out(
    holding: bridge.Queue,
) -> None:
    # Written past the codec, as another program (or an older version) would.
    holding.backend.create_items(holding.name, [b'{"n": 1}'], 0, 0)
    [bad_id] = holding.backend.create_items(holding.name, [b"not json {"], 0, 0)
    holding.backend.create_items(holding.name, [b'{"n": 2}', b'{"n": 3}'], 0, 0)

    peeked = holding.peek(10)
    assert isinstance(peeked[1].data, Undecodable)
    assert peeked[1].data.raw == b"not json {"

    claimed = holding.claim_items(3, lease_time=60)
    assert [item.data for item in claimed] == [{"n": 1}, {"n": 2}, {"n": 3}]
    [held] = holding.held_items()
    assert held.item_id == bad_id
    if holding.capabilities.held_details:
        assert str(bad_id) in (held.hold_reason or "")
        assert "decode" in (held.hold_reason or "")
    assert isinstance(held.data, Undecodable)
    assert holding.delete_items(claimed) == 3


def test_a_claim_of_one_skips_past_an_undecodable_item(holding: bridge.Queue) -> None:
    holding.backend.create_items(holding.name, [b"\xff\xfe", b'"good"'], 0, 0)
    item = holding.claim_item(lease_time=60)
    assert item is not None
    assert item.data == "good"
    assert holding.counts().held == 1


def test_without_hold_support_holding_is_refused(queue: bridge.Queue) -> None:
    if queue.capabilities.hold:
        pytest.skip("the backend can hold items")
    queue.create_item("x")
    item = claim_one(queue)
    with pytest.raises(bridge.UnsupportedOperationError, match="hold_item"):
        queue.hold_item(item)
    with pytest.raises(bridge.UnsupportedOperationError, match="kick"):
        queue.kick()
