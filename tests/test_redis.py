"""What the Redis backend promises beyond the contract suite.

The server's clock, one hash slot per queue, key-prefix isolation, the
stored state behind a holder's calls (one zset per item, tokens kept and
cleared), the longest lease and delay stored exactly and anything longer
refused by the scripts themselves, one round trip per call, counts, and
what a connection killed mid-call does: the
connection is killed for real (``CLIENT KILL`` from a second connection),
either before the request reaches the server or after the server ran it and
before its reply is read, and then the call is repeated.

Every test uses a key prefix of its own and deletes its keys afterwards; the
server is shared, so nothing here flushes it or pauses it.
"""

from __future__ import annotations

import select
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

import bridge
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
        queue.create_items(["ready", "leased"], priority=2)
        queue.create_item("delayed", delay=60)
        assert queue.claim_item(lease_time=60) is not None
    keys = keys_under(admin, prefix)
    for name in NAMES:
        tag = name.replace("%", "%25").replace("}", "%7D")
        mine = {key for key in keys if key.startswith(f"{prefix}:{{{tag}}}:".encode())}
        parts = {key.decode().rsplit("}:", 1)[1].split(":")[0] for key in mine}
        assert parts == {"ready", "leased", "delayed", "items", "ids", "producer"}, name
        assert len({key_slot(key) for key in mine}) == 1, name
        assert key_slot(f"{{{tag}}}".encode()) == key_slot(next(iter(mine))), "the tag is the name"
    assert len(keys) == 6 * len(NAMES), "every key belongs to one queue's slot"
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
    keys = script_keys(queue)
    client = backend_of(queue).client
    member = f"{item_id:016d}"
    return [key.rsplit(":", 1)[1] for key in keys[:3] if client.zscore(key, member) is not None]


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


# -- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [MAX_SECONDS, MAX_SECONDS - 0.000001, 1_999_999_999.5])
def test_the_longest_leases_and_delays_are_stored_exactly(
    queue: bridge.Queue, admin: redis.Redis, seconds: float
) -> None:
    backend, name = backend_of(queue), queue.name
    _, leased, delayed, items = script_keys(queue)
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


# -- round trips ------------------------------------------------------------------------


def count_round_trips(backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the requests sent on the backend's (only) pooled connection."""
    pool = backend.client.connection_pool
    conn = pool.get_connection()
    pool.release(conn)
    sent = [0]
    original = conn.send_packed_command

    def counting(*args: Any, **kwargs: Any) -> None:
        sent[0] += 1
        original(*args, **kwargs)

    monkeypatch.setattr(conn, "send_packed_command", counting)
    return sent


def test_every_call_is_one_round_trip(queue: bridge.Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    def every_call() -> None:
        queue.create_queue()
        queue.create_items(list(range(50)), delay=0, priority=1)
        queue.create_item("delayed", delay=60)
        claimed = queue.claim_items(20, lease_time=30)
        queue.number_of_items()
        queue.counts()
        queue.extend_lease(claimed[0], 60)
        queue.delay_item(claimed[1], 60)
        queue.release_item(claimed[2])
        queue.delete_items(claimed[3:])
        queue.peek(10)
        queue.release_all()
        queue.garbage_collection()

    every_call()  # loads the scripts: a script's first call on a server costs two more
    sent = count_round_trips(backend_of(queue), monkeypatch)
    operations = 13
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
    pool = backend.client.connection_pool
    conn = pool.get_connection()
    pool.release(conn)
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
