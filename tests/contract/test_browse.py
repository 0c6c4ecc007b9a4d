"""Operators' views of every item: pages by key, lookup by id, delete by id.

Backends whose capabilities say ``browse`` (and ``remove_item``) run these;
the others are refused up front by the facade, checked last.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import bridge
from bridge.items import ItemState

from .test_holding import claim_one
from .test_leases import SHORT_LEASE


@pytest.fixture
def browsable(queue: bridge.Queue) -> bridge.Queue:
    if not queue.capabilities.browse:
        pytest.skip("the backend cannot list items page by page (capabilities.browse)")
    return queue


def every_page(
    queue: bridge.Queue, limit: int, state: ItemState | str | None = None
) -> list[list[tuple[ItemState, Any]]]:
    pages: list[list[tuple[ItemState, Any]]] = []
    after: str | None = None
    while True:
        page = queue.browse(state=state, after=after, limit=limit)
        pages.append([(listed.state, listed.item.data) for listed in page.items])
        if page.next_after is None:
            return pages
        after = page.next_after
        assert len(pages) < 100, "the cursor does not move"


def test_pages_cover_every_item_once_in_every_state(browsable: bridge.Queue) -> None:
    queue = browsable
    queue.create_items([{"n": n} for n in range(7)])
    leased = claim_one(queue)
    delayed = claim_one(queue)
    if queue.capabilities.delay:
        assert queue.delay_item(delayed, 600)
    if queue.capabilities.hold:
        assert queue.hold_item(claim_one(queue), reason="broken")

    pages = every_page(queue, limit=3)
    assert all(len(page) <= 3 for page in pages)
    seen = [entry for page in pages for entry in page]
    assert sorted(entry[1]["n"] for entry in seen) == list(range(7)), "each item exactly once"
    states = {entry[1]["n"]: entry[0] for entry in seen}
    assert states[leased.data["n"]] == ItemState.LEASED
    if queue.capabilities.delay:
        assert states[delayed.data["n"]] == ItemState.DELAYED
    if queue.capabilities.hold:
        assert list(states.values()).count(ItemState.HELD) == 1
    assert queue.counts().total == 7, "browsing claims nothing"
    assert list(states.values()).count(ItemState.READY) == queue.counts().ready


def test_a_page_by_state_lists_only_that_state(browsable: bridge.Queue) -> None:
    queue = browsable
    queue.create_items(list(range(5)))
    claimed = [claim_one(queue), claim_one(queue)]

    leased = [entry for page in every_page(queue, 1, ItemState.LEASED) for entry in page]
    assert sorted(data for _, data in leased) == sorted(item.data for item in claimed)
    ready = [entry for page in every_page(queue, 2, "ready") for entry in page]
    assert {state for state, _ in ready} == {ItemState.READY}
    assert len(ready) == 3


def test_items_created_after_a_page_do_not_shift_it(browsable: bridge.Queue) -> None:
    queue = browsable
    queue.create_items(list(range(4)))
    first = queue.browse(limit=2)
    queue.create_items(list(range(100, 103)))
    rest = every_page_after(queue, first.next_after)
    shown = [listed.item.data for listed in first.items] + rest
    assert sorted(shown) == [0, 1, 2, 3, 100, 101, 102]


def every_page_after(queue: bridge.Queue, after: str | None) -> list[object]:
    found: list[object] = []
    while after is not None:
        page = queue.browse(after=after, limit=2)
        found += [listed.item.data for listed in page.items]
        after = page.next_after
    return found


def test_an_empty_queue_has_one_empty_last_page(browsable: bridge.Queue) -> None:
    page = browsable.browse(limit=10)
    assert (page.items, page.next_after) == ([], None)


def test_find_item_shows_one_item_with_its_error(browsable: bridge.Queue) -> None:
    queue = browsable
    item_id = queue.create_item({"to": "ada"})
    item = claim_one(queue)
    assert queue.fail_item(item, "Traceback ...\nValueError: bounced")

    found = queue.find_item(item_id)
    assert found is not None
    assert found.state == ItemState.LEASED
    assert found.item.data == {"to": "ada"}
    assert found.item.last_error == "Traceback ...\nValueError: bounced"
    assert found.item.attempts == 1
    assert found.item.token == "", "a listing hands out no claim"
    assert queue.delete_item(item), "looking did not end the claim"
    assert queue.find_item(item_id) is None


def test_remove_item_deletes_in_any_state_and_ends_the_claim(browsable: bridge.Queue) -> None:
    queue = browsable
    if not queue.capabilities.remove_item:
        pytest.skip("the backend cannot delete an item by id (capabilities.remove_item)")
    ready_id, leased_id = queue.create_items(["ready", "leased"])
    leased = claim_one(queue)
    assert leased.item_id == ready_id or leased.item_id == leased_id

    assert queue.remove_item(leased.item_id)
    assert queue.delete_item(leased) is False, "the holder finds its item gone"
    others = [i for i in (ready_id, leased_id) if i != leased.item_id]
    assert queue.remove_item(others[0])
    assert queue.remove_item(others[0]) is False, "already gone"
    assert queue.counts().total == 0
    if queue.capabilities.hold:
        queue.create_item("poison")
        assert queue.hold_item(claim_one(queue), reason="x")
        (held,) = queue.held_items()
        assert queue.remove_item(held.item_id)
        assert queue.counts().held == 0


def test_other_queues_items_are_never_listed_or_removed(
    browsable: bridge.Queue, make_queue
) -> None:
    other = make_queue()
    theirs = other.create_items(["theirs", "theirs too"])
    ours = browsable.create_item("ours")
    shown = [listed.item.data for listed in browsable.browse(limit=10).items]
    assert shown == ["ours"]
    # Ids may be counted per queue (Redis): only an id that is not also ours
    # names an item of theirs alone.
    foreign = [item_id for item_id in theirs if item_id != ours]
    assert foreign
    for item_id in foreign:
        assert browsable.find_item(item_id) is None
        if browsable.capabilities.remove_item:
            assert browsable.remove_item(item_id) is False
    found = browsable.find_item(ours)
    assert found is not None
    assert found.item.data == "ours"
    assert other.counts().total == 2


def test_each_item_shows_the_state_counts_counts_it_in(browsable: bridge.Queue) -> None:
    queue = browsable
    ids = queue.create_items(["expired", "leased", "ready"])
    expired = claim_one(queue, lease_time=SHORT_LEASE)
    claim_one(queue)
    time.sleep(SHORT_LEASE + 0.2)

    states = {listed.item.data: listed.state for listed in queue.browse(limit=10).items}
    assert states == {
        "expired": ItemState.READY,
        "leased": ItemState.LEASED,
        "ready": ItemState.READY,
    }, "a lease that ended is ready, as counts and claims see it"
    counts = queue.counts()
    assert (counts.ready, counts.leased) == (2, 1)
    found = queue.find_item(expired.item_id)
    assert found is not None
    assert (found.state, found.item.attempts) == (ItemState.READY, 1)
    ready = [listed.item.item_id for listed in queue.browse(state=ItemState.READY).items]
    assert sorted(map(str, ready)) == sorted(map(str, (ids[0], ids[2])))


def test_bad_arguments_are_refused_naming_the_problem(browsable: bridge.Queue) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="state must be one of"):
        browsable.browse(state="sleeping")
    with pytest.raises(bridge.InvalidArgumentError, match="limit"):
        browsable.browse(limit=-1)
    with pytest.raises(bridge.InvalidArgumentError, match="limit"):
        browsable.browse(limit=0)  # a page of none would never move on
    browsable.create_item("x")
    with pytest.raises(bridge.InvalidArgumentError, match="cursor"):
        browsable.browse(after="not a cursor from any page")
    with pytest.raises(bridge.InvalidArgumentError, match="item id"):
        browsable.find_item(None)  # type: ignore[arg-type]


def test_a_store_that_cannot_browse_refuses_up_front(queue: bridge.Queue) -> None:
    if queue.capabilities.browse:
        pytest.skip("the backend browses")
    with pytest.raises(bridge.UnsupportedOperationError, match="browse"):
        queue.browse()
    if not queue.capabilities.remove_item:
        with pytest.raises(bridge.UnsupportedOperationError, match="remove_item"):
            queue.remove_item(1)
