"""Message TTL and claim grace (Zaqar's), on every backend with the ``ttl`` capability.

An item is expired once its TTL has passed while no lease holds it. TTLs
here are 0.3 s and the tests sleep past them, so a loaded machine makes an
item more expired, never less; what must still be alive has 30 s to spare.
"""

from __future__ import annotations

import math
import time

import pytest

import bridge
from bridge.contract import Expiring

TTL = 0.3
PAST = 0.5
"""Sleep this long for a TTL of TTL s to have passed, whatever the machine's load."""
PATIENCE = 10.0


def needs(queue: bridge.Queue, *capabilities: str) -> None:
    missing = [name for name in capabilities if not getattr(queue.capabilities, name)]
    if missing:
        pytest.skip(f"{queue.backend.url} has no {', '.join(missing)}")


def claim_when_ready(queue: bridge.Queue) -> bridge.QueueItem:
    deadline = time.monotonic() + PATIENCE
    while (item := queue.claim_item(lease_time=30)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable in {PATIENCE} s")
        time.sleep(0.02)
    return item


def test_an_item_past_its_ttl_is_never_claimed_and_leaves_the_counts(
    queue: bridge.Queue,
) -> None:
    needs(queue, "ttl")
    queue.create_items(["short", "lived"], ttl=TTL)
    kept = queue.create_item("kept")
    queue.create_item("long", ttl=3600)
    time.sleep(PAST)

    counts = queue.counts()
    assert (counts.ready, counts.expired, counts.total) == (2, 2, 2)
    assert queue.number_of_items() == 2
    assert [item.data for item in queue.peek(10)] == ["kept", "long"]
    claimed = queue.claim_items(10, lease_time=30)
    assert [item.data for item in claimed] == ["kept", "long"]
    assert claimed[0].item_id == kept
    assert queue.claim_item() is None

    queue.garbage_collection()
    assert queue.counts().expired == 0
    assert queue.number_of_items() == 2
    assert queue.delete_items(claimed) == 2


def test_an_item_claimed_in_time_stays_while_its_lease_holds(queue: bridge.Queue) -> None:
    needs(queue, "ttl")
    queue.create_item("slow work", ttl=TTL)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    time.sleep(PAST)

    queue.garbage_collection()
    counts = queue.counts()
    assert (counts.leased, counts.expired) == (1, 0)
    assert queue.delete_item(item) is True
    assert queue.number_of_items() == 0


def test_a_delayed_item_whose_ttl_ends_first_is_never_claimed(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "delay")
    queue.create_item("too late", delay=PAST, ttl=TTL)
    time.sleep(PAST + 0.2)
    assert queue.claim_item() is None
    assert queue.counts().expired == 1


def test_a_release_after_the_ttl_expires_the_item(queue: bridge.Queue) -> None:
    needs(queue, "ttl")
    queue.create_item("released", ttl=TTL)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    time.sleep(PAST)

    assert queue.release_item(item) is True
    assert queue.claim_item() is None
    assert (queue.counts().expired, queue.number_of_items()) == (1, 0)


def test_grace_keeps_a_claimed_item_alive_past_its_ttl(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "grace")
    item_id = queue.create_item("graced", ttl=TTL)
    first = queue.claim_item(lease_time=TTL, grace=30)
    assert first is not None
    time.sleep(PAST)  # the lease and the TTL have both ended; the grace has not

    second = claim_when_ready(queue)
    assert (second.item_id, second.attempts) == (item_id, 2)
    assert queue.release_item(second) is True
    assert queue.counts().ready == 1
    again = claim_when_ready(queue)
    assert queue.delete_item(again) is True


def test_without_grace_an_abandoned_claim_past_the_ttl_is_expired(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "grace")
    queue.create_item("abandoned", ttl=TTL)
    assert queue.claim_items(1, lease_time=0.1, grace=0) != []
    time.sleep(PAST)
    assert queue.claim_item() is None
    assert queue.counts().expired == 1


def test_grace_on_an_item_without_ttl_changes_nothing(queue: bridge.Queue) -> None:
    needs(queue, "grace")
    queue.create_item("forever")
    item = queue.claim_item(lease_time=0.1, grace=0)
    assert item is not None
    time.sleep(PAST)
    queue.garbage_collection()
    assert claim_when_ready(queue).attempts == 2


@pytest.mark.parametrize("ttl", [-1, 0, math.nan, math.inf, True, "5"])
def test_a_bad_ttl_is_refused_before_anything_is_written(queue: bridge.Queue, ttl: object) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="ttl"):
        queue.create_items(["a", "b"], ttl=ttl)  # type: ignore[arg-type]
    assert queue.number_of_items() == 0


@pytest.mark.parametrize("grace", [-0.5, math.nan, -math.inf])
def test_a_bad_grace_is_refused_before_anything_is_claimed(
    queue: bridge.Queue, grace: float
) -> None:
    queue.create_item("untouched")
    with pytest.raises(bridge.InvalidArgumentError, match="grace"):
        queue.claim_item(lease_time=30, grace=grace)
    assert queue.claim_item(lease_time=30) is not None


def test_a_store_without_ttl_or_grace_refuses_them_by_name(queue: bridge.Queue) -> None:
    capabilities = queue.capabilities
    if capabilities.ttl and capabilities.grace:
        pytest.skip(f"{queue.backend.url} has both ttl and grace")
    if not capabilities.ttl:
        with pytest.raises(bridge.UnsupportedOperationError, match="ttl") as refused:
            queue.create_item("never written", ttl=60)
        assert queue.backend.url in str(refused.value)
        assert queue.number_of_items() == 0
    if not capabilities.grace:
        queue.create_item("not claimed")
        with pytest.raises(bridge.UnsupportedOperationError, match="grace") as refused:
            queue.claim_item(lease_time=30, grace=5)
        assert queue.backend.url in str(refused.value)


def test_the_claim_that_replaces_an_undecodable_item_keeps_the_grace(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "grace", "hold")
    backend = queue.backend
    assert isinstance(backend, Expiring)
    # Written past the codec, as another program would: the first one is no JSON.
    backend.create_expiring_items(queue.name, [b"not json {", b'"good"'], 0, 0, TTL)
    first = queue.claim_item(lease_time=TTL, grace=30)
    assert first is not None
    assert first.data == "good"
    assert queue.counts().held == 1
    time.sleep(PAST)  # past the lease and the TTL, within the grace
    assert claim_when_ready(queue).item_id == first.item_id


def test_an_extension_with_grace_moves_the_deadline_as_a_claim_does(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "grace", "extend_lease")
    item_id = queue.create_item("renewed", ttl=TTL)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.extend_lease(item, TTL, grace=30)  # Zaqar's claim update
    time.sleep(PAST)  # past the new lease and the TTL, within the grace
    assert claim_when_ready(queue).item_id == item_id


def test_an_extension_without_grace_leaves_the_deadline(queue: bridge.Queue) -> None:
    needs(queue, "ttl", "extend_lease")
    queue.create_item("not renewed", ttl=TTL)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.extend_lease(item, 0.1)
    time.sleep(PAST)
    assert queue.claim_item() is None
    assert queue.counts().expired == 1
