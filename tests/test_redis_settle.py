"""The Redis backend's settle_and_claim: one script, the settlement then the claim.

What the contract suite cannot see: the stored state after each kind of
settlement (the same as after the single script of that name), all or
nothing when the script refuses an argument, a settlement the facade would
not build (no token, an id never issued) still claiming in one round trip,
and a released item whose priority field is damaged held and logged, as
``release_item`` holds it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import redis

import bridge
from bridge import Settlement
from bridge.backends import redis_scripts
from bridge.backends.redis import RedisBackend
from bridge.contract import MAX_SECONDS

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


def stored(queue: bridge.Queue, admin: redis.Redis) -> dict[str, object]:
    """Every zset's members and scores and the items hash: the queue's whole state."""
    ready, leased, delayed, items, held = redis_scripts.queue_keys(
        backend_of(queue).key_prefix, queue.name
    )[0]
    zsets = {"ready": ready, "leased": leased, "delayed": delayed, "held": held}
    state: dict[str, object] = {
        name: admin.zrange(key, 0, -1, withscores=True) for name, key in zsets.items()
    }
    fields: dict[bytes, bytes] = admin.hgetall(items)  # type: ignore[assignment]
    # Tokens are random and times move: keep which fields hold one, not their values.
    state["items"] = {
        field: (b"<varies>" if field.endswith((b":t", b":c")) else value)
        for field, value in fields.items()
    }
    return state


def without_times(state: dict[str, object]) -> dict[str, object]:
    """The state with the scores of leased, delayed and held dropped (they carry the clock)."""
    kept = dict(state)
    for name in ("leased", "delayed", "held"):
        kept[name] = [member for member, _ in state[name]]  # type: ignore[attr-defined]
    return kept


@pytest.mark.parametrize(
    "make",
    [
        lambda item: Settlement.delete(item),
        lambda item: Settlement.release(item),
        lambda item: Settlement.delay_by(item, 600),
        lambda item: Settlement.fail(item, "E: one"),
        lambda item: Settlement.fail(item, "E: two", delay=60),
        lambda item: Settlement.hold(item, "poison", "E: three"),
        lambda item: Settlement.hold(item, "no error"),
    ],
    ids=["delete", "release", "delay", "fail", "fail-delay", "hold", "hold-no-error"],
)
def test_each_settlement_leaves_what_its_own_call_leaves(
    queue: bridge.Queue, admin: redis.Redis, make: object
) -> None:
    """Two queues alike: one settled by settle_and_claim(count=0), one by its own call."""
    twin = bridge.QueueFactory(
        default={"url": REDIS_URL, "options": {"key_prefix": backend_of(queue).key_prefix}}
    ).get(queue.name + "_twin")
    try:
        for each in (queue, twin):
            each.create_items(["a", "b"], priority=2)
        mine, theirs = queue.claim_item(lease_time=60), twin.claim_item(lease_time=60)
        assert mine is not None
        assert theirs is not None
        settlement = make(mine)  # type: ignore[operator]
        assert queue.settle_and_claim(settlement, count=0) == (True, [])
        own = {
            "delete": lambda: twin.delete_item(theirs),
            "release": lambda: twin.release_item(theirs),
            "delay": lambda: twin.delay_item(theirs, settlement.delay),
            "fail": lambda: twin.fail_item(theirs, settlement.error, settlement.delay),
            "hold": lambda: twin.hold_item(theirs, settlement.reason, settlement.error),
        }
        assert own[settlement.action]()
        assert without_times(stored(queue, admin)) == without_times(stored(twin, admin))
    finally:
        twin.delete_queue()
        twin.backend.close()


def test_the_next_items_are_claimed_under_a_new_token(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    first = queue.claim_item(lease_time=60)
    assert first is not None
    settled, claimed = queue.settle_and_claim(Settlement.release(first), count=2, lease_time=60)
    assert settled
    assert [(item.data, item.attempts) for item in claimed] == [("a", 2), ("b", 1)]
    assert claimed[0].token not in ("", first.token)
    assert {item.token for item in claimed} == {claimed[0].token}, "one claim, one token"
    assert queue.delete_item(first) is False, "the new claim fenced the old holder out"
    assert queue.delete_items(claimed) == 2


def test_a_refused_lease_or_delay_writes_nothing(queue: bridge.Queue, admin: redis.Redis) -> None:
    """Past the facade, the script checks every deadline before its first write."""
    backend, name = backend_of(queue), queue.name
    queue.create_items(["a", "b"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    before = stored(queue, admin)
    too_long = MAX_SECONDS + 1
    for settlement, lease in [
        (Settlement.delete(item), too_long),
        (Settlement.release(item), too_long),
        (Settlement.delay_by(item, too_long), 60),
        (Settlement.fail(item, "E", delay=too_long), 60),
    ]:
        with pytest.raises(bridge.BackendError, match="a lease or delay"):
            backend.settle_and_claim(name, settlement, 1, lease)
        assert stored(queue, admin) == before, settlement.action
    assert queue.delete_item(item), "still the holder's"


def test_an_item_no_claim_of_ours_took_is_not_settled_but_the_claim_runs(
    queue: bridge.Queue,
) -> None:
    backend, name = backend_of(queue), queue.name
    queue.create_items(["a", "b", "c", "d"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    for stranger in [
        bridge.QueueItem(item.item_id, "a", 0.0, 0.0, 1, 0, name, ""),
        bridge.QueueItem(10**17, "a", 0.0, 0.0, 1, 0, name, item.token),
        bridge.QueueItem(item.item_id, "a", 0.0, 0.0, 1, 0, name, "not the token"),
    ]:
        settled, claimed = backend.settle_and_claim(name, Settlement.delete(stranger), 1, 60)
        assert settled is False
        assert len(claimed) == 1
    assert queue.counts().leased == 4
    assert queue.delete_item(item)


def test_a_release_whose_priority_field_is_damaged_holds_and_logs(
    queue: bridge.Queue, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    queue.create_items(["damaged", "next"], priority=1)
    item = queue.claim_item(lease_time=60)
    assert item is not None
    items_key = redis_scripts.queue_keys(backend_of(queue).key_prefix, queue.name)[0][3]
    admin.hset(items_key, f"{item.item_id:016d}:p", "high")
    with caplog.at_level(logging.ERROR, logger="bridge.backends.redis"):
        settled, claimed = queue.settle_and_claim(Settlement.release(item), count=0)
    assert (settled, claimed) == (False, [])
    assert queue.counts().held == 1
    assert f"held item {item.item_id}: its priority field is not a whole number" in caplog.text
