"""What the Redis backend promises beyond the contract suite.

The server's clock, one hash slot per queue, key-prefix isolation, the
stored state behind a holder's calls (one zset per item, tokens kept and
cleared), held items in a zset of their own, the age of the oldest ready
item, the longest lease and delay stored exactly and anything longer
refused by the scripts themselves, one round trip per call, counts, damaged
keys (written here with redis-py, as another program or a failing disk
would) that never block a claim nor raise anything but bridge's errors, and
what a connection killed mid-call does: the
connection is killed for real (``CLIENT KILL`` from a second connection),
either before the request reaches the server or after the server ran it and
before its reply is read, and then the call is repeated.

Every test uses a key prefix of its own and deletes its keys afterwards; the
server is shared, so nothing here flushes it or pauses it.
"""

from __future__ import annotations

import gc
import logging
import select
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

import bridge
from bridge.backends import redis_scripts
from bridge.backends import redis_wire as wire
from bridge.backends.redis import RedisBackend
from bridge.contract import MAX_SECONDS, Backend
from bridge.items import ItemCounts, ItemId, Settlement

from children import kill_mover, start_mover
from conftest import REDIS_URL

pytestmark = pytest.mark.service("redis")


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefixes(admin: redis.Redis) -> Iterator[Callable[[], str]]:
    """Fresh key prefixes; every key under them is deleted after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"bridge_t_{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    for prefix in made:
        for key in admin.scan_iter(match=f"{prefix}:*", count=1000):
            admin.unlink(key)


@pytest.fixture
def factory(prefixes: Callable[[], str]) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": prefixes()}})
    yield made
    made.close()


@pytest.fixture
def queue(factory: bridge.QueueFactory) -> bridge.Queue:
    return factory.get(f"q_{uuid.uuid4().hex[:8]}")


def backend_of(queue: bridge.Queue) -> RedisBackend:
    assert isinstance(queue.backend, RedisBackend)
    return queue.backend


def keys_under(admin: redis.Redis, prefix: str) -> set[bytes]:
    return set(admin.scan_iter(match=f"{prefix}:*", count=1000))


def server_time(admin: redis.Redis) -> float:
    seconds, micros = admin.time()
    return seconds + micros / 1e6


# -- the clock ----------------------------------------------------------------


def test_times_come_from_the_server_clock(
    queue: bridge.Queue, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client clock a day behind must change nothing: no script reads it.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 86400)
    before = server_time(admin)
    queue.create_item("x")
    item = queue.claim_item(lease_time=30.5)
    after = server_time(admin)
    assert item is not None
    assert before <= item.created <= after
    assert before + 30.5 <= item.expire <= after + 30.5
    assert queue.extend_lease(item, 100.25)
    assert before + 100.25 <= item.expire <= server_time(admin) + 100.25
    assert queue.delay_item(item, 7.5)
    assert before + 7.5 <= item.expire <= server_time(admin) + 7.5


# -- keys -----------------------------------------------------------------------

NAMES = ["plain", "with {braces} inside", "}starts with a brace", "100%}{", "ünï 🚀:x"]


def test_every_key_of_a_queue_shares_one_hash_slot(
    factory: bridge.QueueFactory, admin: redis.Redis
) -> None:
    prefix = backend_of(factory.get("any")).key_prefix
    for name in NAMES:
        queue = factory.get(name)
        queue.create_items(["ready", "leased", "held"], priority=2)
        queue.create_item("delayed", delay=60)
        assert queue.claim_item(lease_time=60) is not None
        held = queue.claim_item(lease_time=60)
        assert held is not None
        assert queue.hold_item(held, reason="set aside")
    keys = keys_under(admin, prefix)
    for name in NAMES:
        tag = name.replace("%", "%25").replace("}", "%7D")
        mine = {key for key in keys if key.startswith(f"{prefix}:{{{tag}}}:".encode())}
        parts = {key.decode().rsplit("}:", 1)[1].split(":")[0] for key in mine}
        assert parts == {"ready", "leased", "delayed", "held", "items", "ids", "producer"}, name
        assert len({key_slot(key) for key in mine}) == 1, name
        assert key_slot(f"{{{tag}}}".encode()) == key_slot(next(iter(mine))), "the tag is the name"
    assert len(keys) == 7 * len(NAMES), "every key belongs to one queue's slot"
    assert set(backend_of(factory.get("any")).queue_names()) == set(NAMES)


def test_key_prefixes_keep_applications_apart(
    prefixes: Callable[[], str], admin: redis.Redis
) -> None:
    first, second = prefixes(), prefixes()
    one = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": first}})
    two = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": second}})
    try:
        mine, theirs = one.get("shared"), two.get("shared")
        mine.create_items(["a", "b"])
        assert theirs.number_of_items() == 0
        assert theirs.claim_item(lease_time=30) is None
        theirs.create_item("c")
        assert mine.backend.queue_names() == {"shared": 2}
        assert theirs.backend.queue_names() == {"shared": 1}
        theirs.delete_queue()
        assert mine.number_of_items() == 2
        assert all(key.startswith(f"{first}:".encode()) for key in keys_under(admin, first))
        item = mine.claim_item(lease_time=30)
        assert item is not None
        assert item.data == "a"
    finally:
        one.close()
        two.close()


def test_deleting_every_queue_leaves_only_expiring_producer_records(
    factory: bridge.QueueFactory, admin: redis.Redis
) -> None:
    queues = [factory.get(f"q{n}") for n in range(3)]
    for queue in queues:
        queue.create_items([1, 2])
        queue.claim_item(lease_time=30)
    prefix = backend_of(queues[0]).key_prefix
    for queue in queues:
        queue.delete_queue()
    left = keys_under(admin, prefix)
    assert len(left) == 3
    assert all(b":producer:" in key and 0 < admin.ttl(key) <= 600 for key in left)
    assert queues[0].create_item("again") == 1, "the counter starts over"


# -- counts and order ---------------------------------------------------------------


def test_number_of_items_counts_delayed_and_leased_items(queue: bridge.Queue) -> None:
    queue.create_items(["ready", "leased"])
    queue.create_item("delayed", delay=60)
    assert queue.claim_item(lease_time=60) is not None
    assert queue.number_of_items() == 3
    assert queue.counts() == bridge.ItemCounts(ready=1, leased=1, delayed=1)
    assert queue.backend.queue_names() == {queue.name: 3}


def test_an_expired_lease_goes_back_to_its_place(queue: bridge.Queue) -> None:
    ids = queue.create_items(["a", "b", "c"])
    high = queue.create_item("high", priority=5)
    assert queue.claim_item(lease_time=0.2) is not None  # high
    assert queue.claim_items(2, lease_time=0.2) != []  # a, b
    time.sleep(0.3)
    again = queue.claim_items(10, lease_time=30)
    assert [item.item_id for item in again] == [high, *ids]
    assert [item.attempts for item in again] == [2, 2, 2, 1]


def test_more_expired_leases_than_a_claim_moves_are_all_claimed_again(
    queue: bridge.Queue,
) -> None:
    ids = queue.create_items(list(range(2500)))
    assert len(queue.claim_items(2500, lease_time=0.3)) == 2500
    time.sleep(0.4)
    seen = []
    while batch := queue.claim_items(7, lease_time=60):
        seen.extend(batch)
    assert sorted(item.item_id for item in seen) == ids
    assert {item.attempts for item in seen} == {2}
    assert queue.delete_items(seen) == 2500
    assert queue.number_of_items() == 0


def test_batches_larger_than_luas_unpack_limit(queue: bridge.Queue) -> None:
    ids = queue.create_items([{"n": n} for n in range(12_000)], priority=1)
    claimed = queue.claim_items(12_000, lease_time=60)
    assert [item.item_id for item in claimed] == ids
    assert queue.release_all() == 12_000
    assert tokens(queue) == {}, "release_all clears tokens in slices too"
    claimed = queue.claim_items(12_000, lease_time=60)
    assert queue.delete_items(claimed) == 12_000
    assert queue.number_of_items() == 0


def test_an_emptied_queue_is_no_longer_listed(queue: bridge.Queue) -> None:
    queue.create_item("x")
    assert queue.name in queue.backend.queue_names()
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.delete_item(item)
    assert queue.name not in queue.backend.queue_names()


def test_a_prefix_with_glob_characters_lists_only_its_own_queues(
    prefixes: Callable[[], str],
) -> None:
    plain = prefixes()
    starred = plain + "*"
    one = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": starred}})
    two = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": plain + "x"}})
    try:
        one.get("mine").create_item(1)
        two.get("theirs").create_item(2)
        assert one.get("mine").backend.queue_names() == {"mine": 1}
    finally:
        one.get("mine").delete_queue()
        two.get("theirs").delete_queue()
        one.close()
        two.close()


# -- a holder's calls, as stored ----------------------------------------------------------


def script_keys(queue: bridge.Queue) -> redis_scripts.QueueKeys:
    return redis_scripts.queue_keys(backend_of(queue).key_prefix, queue.name)[0]


def state(queue: bridge.Queue, item_id: int) -> list[str]:
    """The zsets holding the item: exactly one while it exists."""
    ready, leased, delayed, _, held = script_keys(queue)
    client = backend_of(queue).client
    member = f"{item_id:016d}"
    zsets = (ready, leased, delayed, held)
    return [key.rsplit(":", 1)[1] for key in zsets if client.zscore(key, member) is not None]


def tokens(queue: bridge.Queue) -> dict[int, bytes]:
    """Every item's stored token, by id."""
    items_key = script_keys(queue)[3]
    fields = cast("dict[bytes, bytes]", backend_of(queue).client.hgetall(items_key))
    return {int(field[:-2]): value for field, value in fields.items() if field.endswith(b":t")}


def test_a_holder_moves_its_item_between_states_and_keeps_its_token(
    queue: bridge.Queue,
) -> None:
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    steps: list[tuple[Callable[[], bool], str, bridge.ItemCounts]] = [
        (lambda: queue.delay_item(item, 60), "delayed", bridge.ItemCounts(0, 0, 1)),
        (lambda: queue.release_item(item), "ready", bridge.ItemCounts(1, 0, 0)),
        (lambda: queue.extend_lease(item, 60), "leased", bridge.ItemCounts(0, 1, 0)),
        (lambda: queue.release_item(item), "ready", bridge.ItemCounts(1, 0, 0)),
        (lambda: queue.delay_item(item, 60), "delayed", bridge.ItemCounts(0, 0, 1)),
        (lambda: queue.extend_lease(item, 60), "leased", bridge.ItemCounts(0, 1, 0)),
        (lambda: queue.delay_item(item, 60), "delayed", bridge.ItemCounts(0, 0, 1)),
    ]
    for call, where, counts in steps:
        assert call()
        assert state(queue, int(item.item_id)) == [where]
        assert queue.counts() == counts, where
        assert tokens(queue) == {item.item_id: item.token.encode()}
    assert queue.delete_item(item), "a delayed item is deleted from the delayed zset"
    assert queue.number_of_items() == 0
    assert not backend_of(queue).client.exists(*script_keys(queue))


def test_a_new_claim_takes_the_token_and_release_all_clears_every_one(
    queue: bridge.Queue,
) -> None:
    queue.create_items(["released", "leased", "delayed", "new"])
    released, leased, delayed = queue.claim_items(3, lease_time=60)
    assert queue.release_item(released)
    assert queue.delay_item(delayed, 60)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert again.item_id == released.item_id
    assert tokens(queue)[int(again.item_id)] == again.token.encode() != released.token.encode()
    assert queue.release_item(again)
    assert queue.release_all() == 2, "the lease and the delay; the released item was free"
    assert tokens(queue) == {}
    for item in (again, leased, delayed):
        assert not queue.extend_lease(item, 60)
    assert queue.counts() == bridge.ItemCounts(4, 0, 0)


# -- held items, as stored ----------------------------------------------------------------


def fields_of(queue: bridge.Queue, item_id: ItemId) -> dict[str, bytes]:
    """The item's fields in the items hash, by suffix ("" for the payload)."""
    member = f"{item_id:016d}"
    fields = cast("dict[bytes, bytes]", backend_of(queue).client.hgetall(script_keys(queue)[3]))
    return {
        field.decode()[len(member) :]: value
        for field, value in fields.items()
        if field.decode().startswith(member)
    }


def test_a_held_item_is_in_the_held_zset_scored_by_when_it_was_held(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    queue.create_items(["poison"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    before = server_time(admin)
    assert queue.hold_item(item, reason="bounced", error="ValueError: no")
    after = server_time(admin)
    assert state(queue, int(item.item_id)) == ["held"]
    held_at = admin.zscore(script_keys(queue)[4], f"{item.item_id:016d}")
    assert held_at is not None
    assert before <= held_at / 1e6 <= after
    fields = fields_of(queue, item.item_id)
    assert (fields[":r"], fields[":e"], fields[":a"]) == (b"bounced", b"ValueError: no", b"1")
    assert ":t" not in fields, "the hold ended the claim"
    [listed] = queue.held_items()
    assert listed.held_at == held_at / 1e6
    assert queue.counts() == bridge.ItemCounts(0, 0, 0, 1)
    assert queue.backend.queue_names() == {queue.name: 1}


def test_kick_puts_items_back_at_their_place_and_keeps_the_error(queue: bridge.Queue) -> None:
    low, high = queue.create_item("low"), queue.create_item("high", priority=5)
    later = queue.create_item("later")
    claimed = {item.item_id: item for item in queue.claim_items(3, lease_time=60)}
    assert queue.hold_item(claimed[high], reason="r1", error="E1")
    assert queue.hold_item(claimed[low], reason="r2")
    assert queue.release_item(claimed[later])
    assert queue.kick() == 2
    again = queue.claim_items(3, lease_time=60)
    assert [item.item_id for item in again] == [high, low, later]
    assert [item.priority for item in again] == [5, 0, 0]
    assert [item.attempts for item in again] == [1, 1, 2], "kick reset the attempts"
    assert [item.last_error for item in again] == ["E1", None, None]
    assert ":r" not in fields_of(queue, high), "the reason went with the hold"


def test_delete_held_leaves_no_field_behind(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    for item in queue.claim_items(2, lease_time=60):
        assert queue.fail_item(item, "Error: kept")
        assert queue.hold_item(item, reason="why")
    assert queue.delete_held() == 2
    assert not backend_of(queue).client.exists(*script_keys(queue))


def test_errors_and_reasons_are_stored_as_utf8_whatever_they_hold(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    queue.create_items(["x"])
    item = queue.claim_item(lease_time=0.2)
    assert item is not None
    # A traceback naming a file whose name is not UTF-8 holds a lone surrogate.
    assert queue.fail_item(item, "OSError: /tmp/\udcff.txt")
    assert fields_of(queue, item.item_id)[":e"] == b"OSError: /tmp/\\udcff.txt"
    admin.hset(script_keys(queue)[3], f"{item.item_id:016d}:e", b"written by C: \xff\xfe")
    time.sleep(0.3)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert again.last_error == "written by C: \\xff\\xfe"
    assert queue.hold_item(again, reason="r\udcff")
    assert queue.held_items()[0].hold_reason == "r\\udcff"


# -- the oldest ready item -------------------------------------------------------------------


def test_the_oldest_ready_age_is_that_of_the_oldest_ready_item_at_any_priority(
    queue: bridge.Queue,
) -> None:
    backend = backend_of(queue)
    assert backend.oldest_ready_age(queue.name) is None
    queue.create_item("delayed", delay=60)
    assert backend.oldest_ready_age(queue.name) is None, "nothing ready"
    queue.create_item("old and low", priority=-3)
    time.sleep(0.3)
    queue.create_items(["new and high"], priority=7)
    queue.create_items(["new"])
    age = backend.oldest_ready_age(queue.name)
    assert age is not None
    assert 0.3 <= age < 5


def test_ended_leases_count_as_ready_and_leased_or_held_items_do_not(
    queue: bridge.Queue,
) -> None:
    backend = backend_of(queue)
    queue.create_items(["first", "second"])
    first = queue.claim_item(lease_time=0.3)
    assert first is not None
    second = queue.claim_item(lease_time=60)
    assert second is not None
    assert backend.oldest_ready_age(queue.name) is None
    time.sleep(0.4)
    age = backend.oldest_ready_age(queue.name)
    assert age is not None
    assert age >= 0.4, "the ended lease's item waits again"
    claimed = queue.claim_item(lease_time=60)
    assert claimed is not None
    assert queue.hold_item(claimed)
    assert backend.oldest_ready_age(queue.name) is None


# -- kills mid-move -----------------------------------------------------------------------------

KICK_SCRIPT = textwrap.dedent("""
    import json, sys
    import bridge

    queue = bridge.QueueFactory(default=json.loads(sys.argv[1])).get(sys.argv[2])
    queue.counts()  # connected, scripts loaded: what the kill interrupts is the kick
    print("kicking", flush=True)
    print(queue.kick(), flush=True)
""")

HOLD_SCRIPT = textwrap.dedent("""
    import json, sys
    import bridge

    queue = bridge.QueueFactory(default=json.loads(sys.argv[1])).get(sys.argv[2])
    items = queue.claim_items(int(sys.argv[3]), lease_time=600)
    print("holding", flush=True)
    for item in items:
        queue.hold_item(item, reason="poison", error="ValueError: bad")
    print("held", flush=True)
""")


def start_child(script: str, queue: bridge.Queue, *args: str) -> subprocess.Popen[str]:
    """A process running ``script`` on the queue's store; returns once it says it started."""
    spec = {"url": REDIS_URL, "options": {"key_prefix": backend_of(queue).key_prefix}}
    return start_mover(script, spec, queue.name, *args)


def where(queue: bridge.Queue) -> dict[int, list[str]]:
    """Every member of the queue's four zsets: the zsets each id is in."""
    ready, leased, delayed, _, held = script_keys(queue)
    client = backend_of(queue).client
    found: dict[int, list[str]] = {}
    for key in (ready, leased, delayed, held):
        for member in cast("list[bytes]", client.zrange(key, 0, -1)):
            found.setdefault(int(member), []).append(key.rsplit(":", 1)[1])
    return found


def test_a_kick_killed_midway_moved_all_or_nothing(queue: bridge.Queue, admin: redis.Redis) -> None:
    total = 20_000
    ids = queue.create_items(["poison"] * total)
    ready, _, _, items, held = script_keys(queue)
    # Held as HOLD leaves an item, for 20,000 at once (20,000 holds take long).
    members = [f"{item_id:016d}" for item_id in ids]
    pipe = admin.pipeline(transaction=True)
    pipe.zadd(held, dict.fromkeys(members, 1))
    pipe.delete(ready)
    for member in members:
        pipe.hset(items, mapping={f"{member}:r": "poison", f"{member}:a": "5"})
    pipe.execute()
    assert queue.counts() == bridge.ItemCounts(0, 0, 0, total)

    proc = start_child(KICK_SCRIPT, queue)
    time.sleep(0.005)
    out = kill_mover(proc)
    placed = where(queue)
    assert sorted(placed) == ids, "an item was lost"
    states = {tuple(zsets) for zsets in placed.values()}
    assert states in ({("held",)}, {("ready",)}), f"a kick was split: {states}"
    kicked = states == {("ready",)}
    assert out in ("", f"{total}\n") if kicked else out == ""
    fields = fields_of(queue, ids[-1])
    assert (":r" in fields, fields.get(":a")) == ((False, None) if kicked else (True, b"5"))


def test_holds_killed_midway_leave_each_item_held_or_leased(queue: bridge.Queue) -> None:
    total = 1000
    ids = queue.create_items([{"n": n} for n in range(total)])
    proc = start_child(HOLD_SCRIPT, queue, str(total))
    deadline = time.monotonic() + 30
    while queue.counts().held == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert kill_mover(proc) == "", "every hold ended before the kill: the test proves nothing"

    placed = where(queue)
    assert sorted(placed) == ids, "an item was lost"
    assert {tuple(zsets) for zsets in placed.values()} == {("held",), ("leased",)}
    for item_id, (zset,) in placed.items():
        fields = fields_of(queue, item_id)
        if zset == "held":
            assert (fields[":r"], fields[":e"], ":t" in fields) == (
                b"poison",
                b"ValueError: bad",
                False,
            )
        else:
            assert (":r" in fields, ":e" in fields, ":t" in fields) == (False, False, True)
    counts = queue.counts()
    held = sum(1 for zsets in placed.values() if zsets == ["held"])
    assert (counts.held, counts.leased, counts.total) == (held, total - held, total)


# -- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [MAX_SECONDS, MAX_SECONDS - 0.000001, 1_999_999_999.5])
def test_the_longest_leases_and_delays_are_stored_exactly(
    queue: bridge.Queue, admin: redis.Redis, seconds: float
) -> None:
    backend, name = backend_of(queue), queue.name
    _, leased, delayed, items, _ = script_keys(queue)
    micros = round(seconds * 1_000_000)
    assert micros < 2**53 - 2**51, "now + the longest deadline stays an exact double"

    def score(key: str, item_id: int) -> int:
        raw = admin.zscore(key, f"{item_id:016d}")
        assert raw is not None, key
        assert raw == int(raw), "whole microseconds"
        return int(raw)  # exact: a double holds every integer below 2**53

    # A delay at creation: the same script writes created and the deadline.
    waiting = backend.create_items(name, [b"1"], seconds, 0)[0]
    created = int(admin.hget(items, f"{waiting:016d}:c") or 0)
    assert score(delayed, int(waiting)) - created == micros

    backend.create_items(name, [b"2"], 0, 0)
    before = int(server_time(admin) * 1e6)
    (held,) = backend.claim_items(name, 5, seconds)
    after = int(server_time(admin) * 1e6)
    end = score(leased, int(held.item_id))
    assert before + micros <= end <= after + micros
    assert round(held.expire * 1e6) == end
    assert backend.claim_items(name, 5, 60) == [], "neither item is claimable"

    claim = bridge.QueueItem(held.item_id, "2", held.created, held.expire, 1, 0, name, held.token)
    for settle, key in ((backend.extend_lease, leased), (backend.delay_item, delayed)):
        before = int(server_time(admin) * 1e6)
        until = settle(name, claim, seconds)
        after = int(server_time(admin) * 1e6)
        assert until is not None
        assert before + micros <= score(key, int(held.item_id)) <= after + micros
        assert round(until * 1e6) == score(key, int(held.item_id))
    assert backend.counts(name) == bridge.ItemCounts(0, 0, 2)
    assert backend.claim_items(name, 5, 60) == []


@pytest.mark.parametrize("seconds", [MAX_SECONDS + 1, 9.3e12, 2**64])
def test_the_scripts_refuse_a_longer_lease_or_delay_before_writing(
    queue: bridge.Queue, admin: redis.Redis, seconds: float
) -> None:
    # Past the facade's check, as another client of the scripts could be.
    backend, name = backend_of(queue), queue.name
    backend.create_items(name, [b"x"], 0, 0)
    (held,) = backend.claim_items(name, 1, 60)
    claim = bridge.QueueItem(held.item_id, "x", held.created, held.expire, 1, 0, name, held.token)
    before = {key: admin.dump(key) for key in keys_under(admin, backend.key_prefix)}
    calls: list[Callable[[], Any]] = [
        lambda: backend.create_items(name, [b"y"], seconds, 0),
        lambda: backend.claim_items(name, 1, seconds),
        lambda: backend.extend_lease(name, claim, seconds),
        lambda: backend.delay_item(name, claim, seconds),
    ]
    for call in calls:
        with pytest.raises(bridge.BackendError, match="lease or delay"):
            call()
    after = {key: admin.dump(key) for key in keys_under(admin, backend.key_prefix)}
    assert after == before, "nothing written"
    assert backend.delete_items(name, [claim]) == 1


# -- damaged data -------------------------------------------------------------------------------


def damage(queue: bridge.Queue, item_id: ItemId, suffix: str, value: bytes | None) -> None:
    """Write (or, with None, delete) one of the item's fields, past the backend."""
    client, items = backend_of(queue).client, script_keys(queue)[3]
    field = f"{item_id:016d}{suffix}"
    if value is None:
        client.hdel(items, field)
    else:
        client.hset(items, field, value)


HELD_FOR = [
    pytest.param(":a", b"many", 'its attempts field is not a whole number: "many"', id="attempts"),
    pytest.param(":c", b"yesterday", 'its created field is not a whole number: "yesterday"',
                 id="created"),
    pytest.param(":c", b"1.5", 'its created field is not a whole number: "1.5"', id="fraction"),
    pytest.param(":c", b"nan", 'its created field is not a whole number: "nan"', id="nan"),
    pytest.param(":c", None, "its created field is missing", id="no-created"),
    pytest.param("", None, "its payload field is missing", id="no-payload"),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "value", "problem"), HELD_FOR)
def test_a_claim_holds_an_item_with_a_damaged_field_and_hands_out_the_next(
    queue: bridge.Queue,
    caplog: pytest.LogCaptureFixture,
    suffix: str,
    value: bytes | None,
    problem: str,
) -> None:
    bad, good = queue.create_items(["first in line", "next"])
    damage(queue, bad, suffix, value)
    assert len(queue.peek(10)) == 2, "peek shows it and does not fail"
    with caplog.at_level(logging.ERROR, logger="bridge.backends.redis"):
        item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.item_id == good
    [held] = queue.held_items()
    assert held.item_id == bad
    assert held.hold_reason == f"item {bad}: {problem}"
    assert held.attempts == 0, "it was never handed out"
    assert [r.getMessage() for r in caplog.records] == [
        f"Queue {queue.name} on {queue.backend.url}: held item {bad}: {problem}"
    ]
    assert queue.counts() == bridge.ItemCounts(0, 1, 0, 1)
    assert queue.delete_item(item)


def test_a_damaged_value_is_quoted_short_and_printable_in_the_reason(queue: bridge.Queue) -> None:
    bad, _ = queue.create_items(["x", "y"])
    damage(queue, bad, ":a", b'\x00"\n' + b"9" * 60)
    assert queue.claim_items(2, lease_time=60) != []
    [held] = queue.held_items()
    assert held.hold_reason == (
        f'item {bad}: its attempts field is not a whole number: "\\x00"\\x0a{"9" * 37}..."'
    )


@pytest.mark.parametrize(
    "member", [b"0000000000000999", b"junk", b"99999999999999999999", b"\xff\x00"]
)
def test_a_member_with_no_item_is_dropped_and_logged(
    queue: bridge.Queue, admin: redis.Redis, caplog: pytest.LogCaptureFixture, member: bytes
) -> None:
    admin.zadd(script_keys(queue)[0], {member: -1})  # ahead of every item
    good = queue.create_item("good")
    assert queue.counts().ready == 2
    assert [item.item_id for item in queue.peek(10)][-1] == good
    with caplog.at_level(logging.ERROR, logger="bridge.backends.redis"):
        item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.item_id == good
    [record] = caplog.records
    assert "dropped member" in record.getMessage()
    assert queue.counts() == bridge.ItemCounts(0, 1, 0, 0)


def test_a_queue_whose_items_hash_is_gone_is_emptied_by_a_claim(
    queue: bridge.Queue, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    queue.create_items(["a", "b", "c"])
    queue.create_item("d", delay=0.1)
    admin.unlink(script_keys(queue)[3])  # evicted, or deleted by hand
    time.sleep(0.2)
    with caplog.at_level(logging.ERROR, logger="bridge.backends.redis"):
        assert queue.claim_items(10, lease_time=60) == []
    assert len(caplog.records) == 4
    assert queue.counts() == bridge.ItemCounts(0, 0, 0, 0)


def test_a_claim_sets_aside_a_bounded_number_of_entries_then_answers(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    # A claim is one script, which blocks the server: it stops after
    # PROMOTE_LIMIT damaged entries, and the next claim goes on from there.
    junk = {f"{n:016d}": -1 for n in range(10**9, 10**9 + redis_scripts.PROMOTE_LIMIT + 5)}
    admin.zadd(script_keys(queue)[0], junk)
    good = queue.create_item("good")
    assert queue.claim_item(lease_time=60) is None
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.item_id == good


def test_a_damaged_priority_is_held_when_a_lease_or_a_release_would_place_it(
    queue: bridge.Queue,
) -> None:
    expiring, released, ready = queue.create_items(["expiring", "released", "ready"])
    _, second = queue.claim_items(2, lease_time=0.2)
    for item_id in (expiring, released, ready):
        damage(queue, item_id, ":p", b"inf" if item_id == released else b"x")
    assert queue.release_item(second) is False, "held instead: the holder is told"
    time.sleep(0.3)
    # Its score is its place in ready: the claim needs nothing more.
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert (item.item_id, item.priority) == (ready, 0)
    reasons = {held.item_id: held.hold_reason for held in queue.held_items()}
    assert reasons == {
        expiring: f'item {expiring}: its priority field is not a whole number: "x"',
        released: f'item {released}: its priority field is not a whole number: "inf"',
    }

    assert queue.kick() == 2
    kicked = {item.item_id: item for item in queue.claim_items(2, lease_time=60)}
    assert set(kicked) == {expiring, released}
    assert {item.priority for item in kicked.values()} == {0}, "at priority 0's place"
    damage(queue, expiring, ":p", b"-4")
    assert queue.release_item(kicked[expiring]), "mended: released to its own place"
    mended = queue.claim_item(lease_time=60)
    assert mended is not None
    assert (mended.item_id, mended.priority) == (expiring, 4)


def test_damaged_data_raises_nothing_but_bridge_errors_anywhere(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    backend, name = backend_of(queue), queue.name
    ready, leased, delayed, _, held = script_keys(queue)
    ids = queue.create_items([f"item {n}" for n in range(8)])
    claimed = queue.claim_items(4, lease_time=0.2)
    assert queue.delay_item(claimed[0], 0.1)
    assert queue.hold_item(claimed[1])
    for item_id, suffix, value in [
        (ids[0], ":c", b"x"),  # delayed
        (ids[1], ":a", b"-1"),  # held
        (ids[2], ":p", b"p"),  # leased, its lease ending
        (ids[3], "", None),  # leased
        (ids[4], ":c", b"1e400"),  # ready
        (ids[5], ":e", b"\xff"),
    ]:
        damage(queue, item_id, suffix, value)
    admin.zadd(ready, {"junk": 0, "0000000000000777": 0})
    admin.zadd(leased, {"0000000000000778": 0})
    admin.zadd(delayed, {"nope": 0})
    admin.zadd(held, {"gone": 0, "0000000000000779": 1})
    time.sleep(0.3)
    calls: list[Callable[[], object]] = [
        lambda: backend.counts(name),
        lambda: backend.queue_names(),
        lambda: backend.oldest_ready_age(name),
        lambda: backend.peek(name, 20),
        lambda: backend.held_items(name, 20),
        lambda: queue.peek(20),
        lambda: queue.held_items(20),
        lambda: backend.garbage_collection(name),
        lambda: backend.claim_items(name, 20, 60),
        lambda: backend.release_all(name),
        lambda: backend.kick_item(name, ids[1]),
        lambda: backend.kick(name, None),
        lambda: queue.claim_items(20, lease_time=60),
        lambda: backend.held_items(name, 20),
        lambda: backend.delete_held(name, None),
        lambda: backend.counts(name),
    ]
    for call in calls:
        call()  # raises nothing at all
    assert queue.held_items() == []
    # A key of the wrong type is no item's damage: the whole call fails, wrapped.
    admin.unlink(held)
    admin.set(held, "not a zset")
    with pytest.raises(bridge.BackendError, match="WRONGTYPE") as raised:
        backend.counts(name)
    assert isinstance(raised.value.__cause__, redis.ResponseError)


# -- round trips ------------------------------------------------------------------------


def count_round_trips(backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the requests the backend sends, on any connection: scripts go on the one
    this thread keeps (``redis_wire.DirectScripts``), other commands through the pool."""
    pool = backend.client.connection_pool
    sent = [0]
    original = redis.connection.Connection.send_packed_command

    def counting(conn: redis.connection.Connection, *args: Any, **kwargs: Any) -> None:
        if conn.pid == pool.pid and conn in pool._in_use_connections | set(
            pool._available_connections
        ):
            sent[0] += 1
        original(conn, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return sent


def script_connection(backend: RedisBackend) -> redis.connection.Connection:
    """The connection this thread's script calls go on (``redis_wire.DirectScripts``)."""
    scripts = backend._claim.registered_client
    assert isinstance(scripts, wire.DirectScripts)
    return cast(redis.connection.Connection, scripts.connection())


def test_every_call_is_one_round_trip(queue: bridge.Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backend_of(queue)

    def every_call() -> None:
        queue.create_queue()
        queue.create_items(list(range(50)), delay=0, priority=1)
        queue.create_item("delayed", delay=60)
        claimed = queue.claim_items(20, lease_time=30)
        queue.number_of_items()
        queue.counts()
        backend.oldest_ready_age(queue.name)
        queue.extend_lease(claimed[0], 60)
        queue.delay_item(claimed[1], 60)
        queue.release_item(claimed[2])
        queue.fail_item(claimed[3], "Error: once", delay=None)
        queue.fail_item(claimed[4], "Error: twice", delay=5)
        queue.hold_item(claimed[5], reason="r", error="e")
        queue.hold_item(claimed[6], reason="r")
        queue.held_items(10)
        queue.kick_item(claimed[5].item_id)
        queue.kick(1)
        queue.delete_held()
        queue.delete_items(claimed[9:])
        queue.settle_and_claim(Settlement.delete(claimed[7]), count=2)
        queue.settle_and_claim(Settlement.hold(claimed[8], "r", "e"), count=0)
        page = queue.browse(limit=3)
        queue.browse(after=page.next_after, limit=3)
        queue.find_item(claimed[0].item_id)
        queue.remove_item(claimed[0].item_id)
        queue.peek(10)
        queue.release_all()
        queue.garbage_collection()

    every_call()  # loads the scripts: a script's first call on a server costs two more
    # Scripts go on the connection this thread keeps; the listing opens the
    # pool's next one on first use (redis-py's handshake: four commands).
    queue.backend.queue_names()
    sent = count_round_trips(backend, monkeypatch)
    operations = 28
    every_call()
    assert sent[0] == operations - 1, "create_queue checks the server once"
    sent[0] = 0
    queue.backend.queue_names()
    assert sent[0] == 2, "the listing: the names, then their counts"
    sent[0] = 0
    queue.delete_queue()
    assert sent[0] == 1


# -- lost connections -------------------------------------------------------------------


def kill_on_next_calls(
    backend: RedisBackend,
    admin: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    *plan: str,
) -> list[str]:
    """Kill the backend's connection from the server side on its next requests.

    Each step of ``plan`` is ``"before"`` (killed before the request is
    sent: the server never sees it) or ``"after"`` (killed once the request
    is sent, before the reply is read: the server ran it, the reply is lost).
    Returns the steps not yet taken.
    """
    conn = script_connection(backend)
    steps = list(plan)
    send = conn.send_packed_command

    def kill() -> None:
        sock = conn._sock
        assert sock is not None
        host, port = sock.getsockname()[:2]
        admin.client_kill(f"{host}:{port}")

    def lose_the_reply() -> None:
        # Once the reply is here the server has run the request; the kill
        # follows, and the reply is dropped, as a network dying with it would.
        sock = conn._sock
        assert sock is not None
        assert select.select([sock], [], [], 10)[0], "no reply within 10 s"
        kill()
        sock.settimeout(5)
        while sock.recv(65536):
            pass

    def send_then_maybe_die(*args: Any, **kwargs: Any) -> None:
        if steps and steps[0] == "before":
            steps.pop(0)
            kill()
        send(*args, **kwargs)
        if steps and steps[0] == "after":
            steps.pop(0)
            lose_the_reply()

    monkeypatch.setattr(conn, "send_packed_command", send_then_maybe_die)
    return steps


def assert_unavailable(error: BaseException, backend: RedisBackend, operation: str) -> None:
    assert isinstance(error, bridge.BackendUnavailableError), repr(error)
    assert f"{operation} on {backend.url}" in str(error)
    assert isinstance(error.__cause__, redis.ConnectionError)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_claim_killed_mid_call_raises_and_loses_nothing(
    queue: bridge.Queue, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    backend = backend_of(queue)
    queue.create_items(["only"])
    steps = kill_on_next_calls(backend, admin, monkeypatch, when)
    with pytest.raises(bridge.BackendError) as raised:
        queue.claim_item(lease_time=0.5)
    assert steps == []
    assert_unavailable(raised.value, backend, "claim_items")
    assert queue.number_of_items() == 1
    if when == "after":
        assert queue.claim_item(lease_time=30) is None, "the lost claim holds it"
        time.sleep(0.6)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == "only"
    assert item.attempts == (2 if when == "after" else 1), "attempts counts the lost claim"
    assert queue.claim_item(lease_time=30) is None
    assert queue.delete_item(item)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_delete_killed_mid_call_raises_and_a_repeat_doubles_nothing(
    queue: bridge.Queue, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    backend = backend_of(queue)
    queue.create_items(["a", "b"])
    claimed = queue.claim_items(2, lease_time=30)
    kill_on_next_calls(backend, admin, monkeypatch, when)
    with pytest.raises(bridge.BackendError) as raised:
        queue.delete_items(claimed)
    assert_unavailable(raised.value, backend, "delete_items")
    assert queue.delete_items(claimed) == (0 if when == "after" else 2)
    assert queue.number_of_items() == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_create_killed_once_is_repeated_by_bridge_and_written_once(
    queue: bridge.Queue, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    backend = backend_of(queue)
    queue.create_item("first")
    steps = kill_on_next_calls(backend, admin, monkeypatch, when)
    ids = queue.create_items(["a", "b", "c"])
    assert steps == []
    assert queue.number_of_items() == 4
    claimed = queue.claim_items(10, lease_time=30)
    assert [item.data for item in claimed] == ["first", "a", "b", "c"]
    assert [item.item_id for item in claimed[1:]] == ids


@pytest.mark.parametrize(("plan", "written"), [(("after", "before"), 3), (("before", "before"), 0)])
def test_a_create_that_fails_twice_raises_and_the_callers_repeat_writes_once(
    queue: bridge.Queue,
    admin: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    plan: tuple[str, str],
    written: int,
) -> None:
    backend = backend_of(queue)
    queue.create_item("first")
    kill_on_next_calls(backend, admin, monkeypatch, *plan)
    with pytest.raises(bridge.BackendError) as raised:
        queue.create_items(["a", "b", "c"])
    assert_unavailable(raised.value, backend, "create_items")
    assert queue.number_of_items() == 1 + written, "written or not: the error cannot tell"

    ids = queue.create_items(["a", "b", "c"])
    assert queue.number_of_items() == 4, "the repeat wrote them at most once"
    queue.create_items(["a", "b", "c"])
    assert queue.number_of_items() == 7, "a later, successful call is new items"
    claimed = queue.claim_items(10, lease_time=30)
    assert [item.item_id for item in claimed[1:4]] == ids


def test_a_call_that_timed_out_leaves_no_late_reply_for_the_next(
    prefixes: Callable[[], str],
) -> None:
    """Scripts skip redis-py's command layer (``redis_wire.DirectScripts``): a
    call cut short by its timeout must still drop its connection, or the next
    call would read the late reply as its own."""
    backend = RedisBackend(f"{REDIS_URL}?socket_timeout=0.05", key_prefix=prefixes())
    slow = wire.DirectScripts(cast(redis.Redis, backend.client)).register_script(
        "local t = redis.call('TIME') local start = t[1] * 1e6 + t[2] "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - start > 150000 "
        "return 'late'"
    )
    try:
        backend.create_items("q", [b"1"], 0, 0)
        with pytest.raises(redis.TimeoutError):
            slow([], [])
        time.sleep(0.2)  # the late reply has come by now
        assert backend.counts("q") == ItemCounts(1, 0, 0, 0)
        backend.delete_queue("q")
    finally:
        backend.close()


def test_each_thread_keeps_one_connection_and_gives_it_back_when_it_ends(
    prefixes: Callable[[], str],
) -> None:
    backend = RedisBackend(REDIS_URL, key_prefix=prefixes())
    pool = backend.client.connection_pool
    try:
        backend.create_items("q", [b"1"] * 8, 0, 0)

        def claim_twice() -> None:
            backend.claim_items("q", 1, 60)
            backend.claim_items("q", 1, 60)

        threads = [threading.Thread(target=claim_twice) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gc.collect()
        kept = script_connection(backend)  # this thread's, from create_items
        assert pool._in_use_connections == {kept}, "every other thread's went back"
        assert backend.counts("q").leased == 8
        backend.delete_queue("q")
    finally:
        backend.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_unseen(
    queue: bridge.Queue, admin: redis.Redis
) -> None:
    backend = backend_of(queue)
    queue.create_items(["a", "b"])
    assert queue.claim_item(lease_time=60) is not None
    sock = script_connection(backend)._sock
    assert sock is not None
    host, port = sock.getsockname()[:2]
    admin.client_kill(f"{host}:{port}")  # as a server's `timeout` would
    time.sleep(wire.DirectScripts.IDLE_SECONDS + 0.2)
    assert queue.claim_item(lease_time=60) is not None, "checked by the pool, replaced"


def test_an_unreachable_server_is_named_without_its_password() -> None:
    factory = bridge.QueueFactory(default="redis://:s3cret@127.0.0.1:1/0")
    queue = factory.get("emails")
    try:
        with pytest.raises(bridge.BackendUnavailableError) as raised:
            queue.claim_item(lease_time=30)
        assert "claim_items on redis://:***@127.0.0.1:1/0" in str(raised.value)
        assert "s3cret" not in str(raised.value)
        with pytest.raises(bridge.BackendUnavailableError):
            queue.create_item("x")
    finally:
        factory.close()


def test_every_call_on_an_unreachable_server_raises_unavailable() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", key_prefix="p")
    item = bridge.QueueItem(1, "x", 0.0, 0.0, 1, 0, "q", "token")
    calls: dict[str, Callable[[], object]] = {
        "create_queue": lambda: backend.create_queue("q"),
        "delete_queue": lambda: backend.delete_queue("q"),
        "create_items": lambda: backend.create_items("q", [b"1"], 0, 0),
        "claim_items": lambda: backend.claim_items("q", 1, 30),
        "delete_items": lambda: backend.delete_items("q", [item]),
        "release_item": lambda: backend.release_item("q", item),
        "delay_item": lambda: backend.delay_item("q", item, 5),
        "extend_lease": lambda: backend.extend_lease("q", item, 5),
        "fail_item": lambda: backend.fail_item("q", item, "E", None),
        "garbage_collection": lambda: backend.garbage_collection("q"),
        "hold_item": lambda: backend.hold_item("q", item, "r", None),
        "held_items": lambda: backend.held_items("q", 5),
        "kick": lambda: backend.kick("q", None),
        "kick_item": lambda: backend.kick_item("q", 1),
        "delete_held": lambda: backend.delete_held("q", None),
        "counts": lambda: backend.counts("q"),
        "number_of_items": lambda: backend.number_of_items("q"),
        "oldest_ready_age": lambda: backend.oldest_ready_age("q"),
        "queue_names": lambda: backend.queue_names(),
        "peek": lambda: backend.peek("q", 5),
        "release_all": lambda: backend.release_all("q"),
        "settle_and_claim": lambda: backend.settle_and_claim("q", Settlement.delete(item), 1, 5),
        "browse": lambda: backend.browse("q", None, None, 10),
        "find_item": lambda: backend.find_item("q", 1),
        "remove_item": lambda: backend.remove_item("q", 1),
    }
    public = {
        attr
        for attr in dir(Backend)
        if not attr.startswith("_") and callable(getattr(Backend, attr))
    }
    # times_kicked reads what a claim saw, no round trip (0 where a kick resets attempts).
    no_round_trip = {"close", "forget_connections", "times_kicked"}
    assert public - set(calls) == no_round_trip, "every call is tried"
    try:
        for operation, call in calls.items():
            with pytest.raises(bridge.BackendUnavailableError) as raised:
                call()
            assert " on redis://127.0.0.1:1/0" in str(raised.value), operation
            assert isinstance(raised.value.__cause__, redis.ConnectionError), operation
    finally:
        backend.close()


# -- configuration ---------------------------------------------------------------------


def test_urls_and_options() -> None:
    secure = RedisBackend("rediss://user:pw@127.0.0.1:6380/2?socket_timeout=3")
    kwargs = secure.client.connection_pool.connection_kwargs
    assert secure.client.connection_pool.connection_class is redis.SSLConnection
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2, 3, 5)
    assert secure.url == "rediss://user:***@127.0.0.1:6380/2?socket_timeout=3"
    secure.close()
    for bad in ("", "a{b", "b}"):
        with pytest.raises(bridge.ConfigurationError, match="key_prefix"):
            RedisBackend(REDIS_URL, key_prefix=bad)
    with pytest.raises(bridge.ConfigurationError, match="options"):
        bridge.QueueFactory(default={"url": REDIS_URL, "options": {"table": "x"}}).get("x")


def test_a_refused_login_is_an_error_but_not_unavailability() -> None:
    scheme, _, rest = REDIS_URL.partition("://")
    backend = RedisBackend(f"{scheme}://nobody:wrong@{rest.rpartition('@')[2]}")
    try:
        with pytest.raises(bridge.BackendError) as raised:
            backend.number_of_items("x")
        assert not isinstance(raised.value, bridge.BackendUnavailableError)
        assert "nobody:***@" in str(raised.value)
    finally:
        backend.close()


def test_a_missing_driver_names_the_extra() -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["redis"] = None  # as if not installed
        import bridge
        try:
            bridge.QueueFactory(default="redis://:pw@localhost/0").get("x").number_of_items()
        except bridge.MissingDependencyError as exc:
            print(exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "bridge[redis]"' in done.stdout
    assert "redis://:***@localhost/0" in done.stdout
