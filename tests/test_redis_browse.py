"""The Redis backend's operator views: browse, find_item, remove_item.

What the contract suite cannot see: the order of a page (ready in claim
order, then leases and delays by their end, then held items), that an ended
lease or delay is listed as ready where it stands (and counted so), that a
cursor whose item was claimed, deleted or moved between pages still lands
where it was, that a page costs the same deep in a large queue as at its
head, that damaged members are passed over, and that removing an item
leaves nothing of it.

Every test uses a key prefix of its own and deletes its keys afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis

import bridge
from bridge.backends import redis_scripts
from bridge.backends.redis import RedisBackend
from bridge.items import ItemState
from bridge.queue import BrowsedPage

from conftest import REDIS_URL

pytestmark = pytest.mark.service("redis")


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def queue(admin: redis.Redis) -> Iterator[bridge.Queue]:
    prefix = f"bridge_t_{uuid.uuid4().hex[:10]}"
    factory = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": prefix}})
    yield factory.get(f"q_{uuid.uuid4().hex[:8]}")
    factory.close()
    for key in admin.scan_iter(match=f"{prefix}:*", count=1000):
        admin.unlink(key)


def backend_of(queue: bridge.Queue) -> RedisBackend:
    assert isinstance(queue.backend, RedisBackend)
    return queue.backend


def script_keys(queue: bridge.Queue) -> redis_scripts.QueueKeys:
    return redis_scripts.queue_keys(backend_of(queue).key_prefix, queue.name)[0]


def listing(
    queue: bridge.Queue, limit: int, state: ItemState | None = None
) -> list[tuple[ItemState, object]]:
    shown, after = [], None
    while True:
        page = queue.browse(state=state, after=after, limit=limit)
        assert len(page.items) <= limit
        shown += [(listed.state, listed.item.data) for listed in page.items]
        if page.next_after is None:
            return shown
        after = page.next_after


def test_a_listing_runs_ready_in_claim_order_then_leased_delayed_and_held(
    queue: bridge.Queue,
) -> None:
    queue.create_items(["low 1", "low 2"], priority=0)
    queue.create_items(["high"], priority=5)
    queue.create_items(["later"], delay=600)
    queue.create_items(["soon"], delay=300)
    queue.create_items(["a", "b", "c"], priority=1)
    _, short = queue.claim_items(2, lease_time=600)  # "high", then "a"
    assert queue.extend_lease(short, 60)
    held = queue.claim_item(lease_time=60)
    assert held is not None
    assert queue.hold_item(held, reason="poison")

    expected = [
        (ItemState.READY, "c"),
        (ItemState.READY, "low 1"),
        (ItemState.READY, "low 2"),
        (ItemState.LEASED, "a"),  # its lease ends first
        (ItemState.LEASED, "high"),
        (ItemState.DELAYED, "soon"),
        (ItemState.DELAYED, "later"),
        (ItemState.HELD, "b"),
    ]
    for limit in (1, 2, 3, 100):
        assert listing(queue, limit) == expected, limit
    ready = [data for state, data in expected if state == ItemState.READY]
    assert [item.data for item in queue.peek(3)] == ready, "ready is listed in claim order"
    for state in ItemState:
        assert listing(queue, 2, state) == [e for e in expected if e[0] == state], state


def test_an_ended_lease_or_delay_is_listed_as_ready_where_it_stands(queue: bridge.Queue) -> None:
    queue.create_items(["long lease"])
    ended_delay = queue.create_item("short delay", delay=0.2)
    queue.create_items(["long delay"], delay=600)
    queue.create_items(["short lease", "never claimed"])
    assert queue.claim_item(lease_time=600) is not None  # "long lease"
    assert queue.claim_item(lease_time=0.2) is not None  # "short lease"
    time.sleep(0.3)

    shown = listing(queue, 2)
    assert shown == [
        (ItemState.READY, "never claimed"),
        (ItemState.READY, "short lease"),  # ended: ready, first among the leases
        (ItemState.LEASED, "long lease"),
        (ItemState.READY, "short delay"),  # ended: ready, first among the delays
        (ItemState.DELAYED, "long delay"),
    ]
    counts = queue.counts()
    for state, counted in [
        (ItemState.READY, counts.ready),
        (ItemState.LEASED, counts.leased),
        (ItemState.DELAYED, counts.delayed),
        (ItemState.HELD, counts.held),
    ]:
        assert [s for s, _ in shown].count(state) == counted, state
        assert len(listing(queue, 1, state)) == counted, state
    ended = queue.find_item(ended_delay)
    assert ended is not None
    assert ended.state == ItemState.READY
    assert ended.item.expire < time.time(), "the ended delay's end is shown"


def test_a_cursor_whose_item_left_or_moved_still_lands_in_its_place(queue: bridge.Queue) -> None:
    ids = queue.create_items([f"item {n}" for n in range(10)])
    first = queue.browse(limit=4)
    assert [listed.item.item_id for listed in first.items] == ids[:4]
    assert queue.remove_item(ids[3]), "the cursor's own item is gone"
    assert queue.remove_item(ids[1])
    second = queue.browse(after=first.next_after, limit=3)
    assert [listed.item.item_id for listed in second.items] == ids[4:7]

    # The cursor's item claimed (moved to leased) and another deleted: the next
    # page goes on in ready from where the cursor stood.
    claimed = queue.claim_items(5, lease_time=60)
    assert [item.item_id for item in claimed] == [ids[0], ids[2], *ids[4:7]]
    third = queue.browse(after=second.next_after, limit=10)
    assert [(listed.state, listed.item.item_id) for listed in third.items] == [
        (ItemState.READY, ids[7]),
        (ItemState.READY, ids[8]),
        (ItemState.READY, ids[9]),
        *[(ItemState.LEASED, item.item_id) for item in claimed],
    ]
    assert third.next_after is None


def test_a_cursor_from_another_state_or_store_or_hand_is_refused_or_read_in_order(
    queue: bridge.Queue,
) -> None:
    queue.create_items(["a", "b"])
    held = queue.claim_item(lease_time=60)
    assert held is not None
    assert queue.hold_item(held, reason="x")
    page = queue.browse(state=ItemState.HELD, limit=1)
    assert page.next_after is None
    whole = queue.browse(limit=1)
    assert whole.next_after is not None
    assert whole.next_after.startswith("r:0:"), "zset, score, member: readable in a URL"
    # A cursor in held, given to a listing of ready items: nothing follows it.
    held_cursor = f"h:{int(time.time() * 1e6)}:{held.item_id:016d}"
    assert queue.browse(state=ItemState.READY, after=held_cursor).items == []
    one = "0000000000000001"
    for bad in ["", "r", "r:0", f"q:0:{one}", f"r:x:{one}", "r:0:12", f"r:nan:{one}",
                f"r: 1:{one}", "r:0:xzz", "r:0:1:2"]:  # fmt: skip
        with pytest.raises(bridge.InvalidArgumentError, match="cursor"):
            queue.browse(after=bad)


def test_find_item_shows_each_state_with_its_fields(queue: bridge.Queue) -> None:
    ids = queue.create_items(["leased", "delayed", "held", "ready"], priority=3)
    claimed = {item.data: item for item in queue.claim_items(3, lease_time=60)}
    assert queue.delay_item(claimed["delayed"], 600)
    assert queue.hold_item(claimed["held"], reason="why", error="E: bad")

    found = [queue.find_item(item_id) for item_id in ids]
    assert [(f.state, f.item.data) if f else None for f in found] == [
        (ItemState.LEASED, "leased"),
        (ItemState.DELAYED, "delayed"),
        (ItemState.HELD, "held"),
        (ItemState.READY, "ready"),
    ]
    now = time.time()
    as_leased, as_delayed, as_held, as_ready = found
    assert as_leased
    assert as_delayed
    assert as_held
    assert as_ready
    assert now + 50 < as_leased.item.expire < now + 70
    assert now + 590 < as_delayed.item.expire < now + 610
    assert as_held.item.expire == 0.0
    assert as_held.item.held_at is not None
    assert abs(as_held.item.held_at - now) < 5
    assert (as_held.item.hold_reason, as_held.item.last_error) == ("why", "E: bad")
    assert (as_ready.item.expire, as_ready.item.attempts, as_ready.item.priority) == (0.0, 0, 3)
    assert as_leased.item.attempts == 1
    assert all(f.item.token == "" for f in (as_leased, as_delayed, as_held, as_ready))
    assert queue.find_item(cast(int, ids[-1]) + 1) is None
    assert queue.find_item(10**17) is None, "no id this backend issues"


def test_remove_item_leaves_nothing_of_the_item_and_fences_its_holder(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    keep, gone = queue.create_items(["keep", "gone"])
    queue.claim_item(lease_time=60)
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.item_id == gone
    assert queue.fail_item(item, "E: once")
    _, _, _, items_key, _ = script_keys(queue)
    member = f"{gone:016d}".encode()

    def fields_of_gone() -> list[bytes]:
        fields = cast(list[bytes], admin.hkeys(items_key))
        return [field for field in fields if field.startswith(member)]

    assert fields_of_gone()

    assert queue.remove_item(gone)
    assert fields_of_gone() == []
    assert queue.extend_lease(item, 60) is False
    assert queue.release_item(item) is False
    assert queue.delete_item(item) is False
    assert queue.remove_item(gone) is False
    assert queue.counts().total == 1
    assert queue.find_item(keep) is not None


def test_damaged_members_are_passed_over_and_the_cursor_goes_on(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    ready, _, _, items_key, held = script_keys(queue)
    queue.create_items(["a", "b"])
    admin.zadd(ready, {"junk\xff": 0, "0000000000000777": 0})  # no item, or no id
    admin.zadd(held, {"gone": 5})
    admin.hset(items_key, "0000000000000002:c", "not a time")

    shown: list[tuple[object, ...]] = []
    after: str | None = None
    pages = 0
    while True:
        page = queue.browse(after=after, limit=1)
        pages += 1
        shown += [(item.item.item_id, item.item.data, item.item.created) for item in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert [(item_id, data) for item_id, data, _ in shown] == [(1, "a"), (2, "b")]
    assert shown[1][2] == 0.0, "a field that is not a number is shown as 0"
    assert pages >= 4, "members with no item take a place in the pages, unlisted"
    assert queue.find_item(777) is None
    assert queue.counts().total == 5, "browsing drops nothing (a claim will)"


def test_a_page_deep_in_a_large_queue_costs_what_the_first_does(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    """200,000 ready items of one priority: the worst case for a cursor, since
    every score is the same; a page from an offset would scan 200,000."""
    size = 200_000
    for _ in range(size // 20_000):
        queue.create_items([0] * 20_000)
    last_ids = [size - 100, size - 99]
    deep = f"r:0:{size - 101:016d}"
    gone = f"r:0:{size + 500:016d}"  # past every member: found by the binary search

    def page_time(after: str | None) -> tuple[float, BrowsedPage]:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            page = queue.browse(after=after, limit=50)
            times.append(time.perf_counter() - started)
        return sorted(times)[len(times) // 2], page

    head, _ = page_time(None)
    deeper, page = page_time(deep)
    assert [listed.item.item_id for listed in page.items[:2]] == last_ids
    missing, empty = page_time(gone)
    assert empty.items == []
    assert removal_lands(queue, size), "a removed cursor item, deep"
    # A scan from an offset would take tens of ms here; a page takes well under one.
    assert deeper < max(5 * head, 0.005), (head, deeper)
    assert missing < max(5 * head, 0.005), (head, missing)


def removal_lands(queue: bridge.Queue, size: int) -> bool:
    cursor_id = size - 1000
    assert queue.remove_item(cursor_id)
    page = queue.browse(after=f"r:0:{cursor_id:016d}", limit=2)
    return [listed.item.item_id for listed in page.items] == [cursor_id + 1, cursor_id + 2]
