"""Redis's TTL mechanism, beyond the contract suite: where expired items go, and when.

A claim meets an expired item in ready and moves it to the queue's
``expired`` zset (its claim ended), pops another, and answers with live
items only; ``counts`` finds those not yet met through the ``ttl`` zset;
``garbage_collection`` deletes both kinds and every field, so that the
queue's keys go once its items do. A claim with grace raises the stored
deadline. Every test has a key prefix of its own, deleted afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

import bridge
from bridge.backends.redis import RedisBackend

from conftest import REDIS_URL

pytestmark = pytest.mark.service("redis")


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(admin: redis.Redis) -> Iterator[str]:
    made = f"bridge_t_{uuid.uuid4().hex[:10]}"
    yield made
    for key in admin.scan_iter(match=f"{made}:*", count=1000):
        admin.unlink(key)


@pytest.fixture
def queue(prefix: str) -> Iterator[bridge.Queue]:
    factory = bridge.QueueFactory(default={"url": REDIS_URL, "options": {"key_prefix": prefix}})
    yield factory.get("ttl")
    factory.close()


def key(prefix: str, part: str) -> str:
    return f"{prefix}:{{ttl}}:{part}"


def test_a_claim_moves_what_it_meets_expired_aside_and_answers_with_live_items(
    queue: bridge.Queue, admin: redis.Redis, prefix: str
) -> None:
    queue.create_items([f"short {i}" for i in range(5)], ttl=0.2)
    queue.create_items(["live 1", "live 2"])
    time.sleep(0.4)

    # Expired items lead ready: the batched claim passes them and fills up.
    claimed = queue.claim_items(3, lease_time=30)
    assert [item.data for item in claimed] == ["live 1", "live 2"]
    assert admin.zcard(key(prefix, "expired")) == 5
    assert admin.zcard(key(prefix, "ttl")) == 0
    assert queue.counts().expired == 5
    assert queue.delete_items(claimed) == 2

    queue.garbage_collection()
    assert queue.counts().expired == 0
    assert not admin.exists(key(prefix, "items")), "every field of the expired items is gone"
    assert queue.backend.queue_names() == {}


def test_garbage_collection_deletes_items_no_claim_met(
    queue: bridge.Queue, admin: redis.Redis, prefix: str
) -> None:
    queue.create_item("ready", ttl=0.2)
    queue.create_item("delayed", ttl=0.2, delay=5)
    time.sleep(0.4)
    counts = queue.counts()
    assert (counts.ready, counts.delayed, counts.expired) == (0, 0, 2)

    queue.garbage_collection()
    assert queue.counts() == bridge.ItemCounts(0, 0, 0, 0, 0)
    assert not admin.exists(key(prefix, "items"), key(prefix, "ttl"), key(prefix, "delayed"))


def test_grace_raises_the_stored_deadline_and_a_deleted_item_leaves_no_entry(
    queue: bridge.Queue, admin: redis.Redis, prefix: str
) -> None:
    item_id = queue.create_item("graced", ttl=60)
    member = f"{item_id:016d}"
    created_deadline = admin.zscore(key(prefix, "ttl"), member)
    item = queue.claim_item(lease_time=100, grace=50)
    assert item is not None
    raised = admin.zscore(key(prefix, "ttl"), member)
    assert created_deadline is not None
    assert raised is not None
    assert raised > created_deadline
    assert raised == pytest.approx(item.expire * 1e6 + 50e6, abs=2e3)
    assert int(admin.hget(key(prefix, "items"), f"{member}:x") or 0) == raised
    # A claim with less grace than the deadline already has leaves it.
    assert queue.release_item(item)
    again = queue.claim_item(lease_time=1, grace=0)
    assert again is not None
    assert admin.zscore(key(prefix, "ttl"), member) == raised

    assert queue.delete_item(again)
    assert not admin.exists(key(prefix, "items"))


def test_the_former_holder_of_an_item_a_claim_expired_holds_nothing(queue: bridge.Queue) -> None:
    queue.create_item("released late", ttl=0.2)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    time.sleep(0.4)
    assert queue.release_item(item)
    assert queue.claim_item() is None  # the claim meets it: expired, claim ended
    assert queue.delete_item(item) is False
    assert queue.counts().expired == 1
    assert isinstance(queue.backend, RedisBackend)
