"""Queues in Redis through redis-py: one Lua script per call, on the server's clock.

Features:
    Reliable (as far as the server's persistence goes, see below), shared by
    every process that reaches the server, with exact per-claim leases,
    extend_lease, delays, priority, claim tokens, attempts, stored errors
    and held items. Every call is one round trip (``queue_names``, a SCAN,
    aside): one script that does the whole operation atomically, so no
    crash between two commands can lose or double an item, and a hold or
    a kick is never half done. Times are the server's ``TIME`` in
    microseconds, read inside the scripts, so workers with skewed clocks
    agree. An item whose lease or delay has ended is claimable at once:
    each claim first moves up to 1000 such items back to ready, at their
    original place (higher priority first, then lower id), so no sweeper
    and no garbage collection is needed.

    Claims: as in Drupal, the holder's own release, delay, extend and fail
    keep its claim, so it may go on settling the item until another claim
    takes it (a new token), ``release_all`` ends every claim of the queue,
    or a hold ends its own. Leases and delays are at most 2**31-1 s, checked
    by the facade and again by the scripts before any write.
    ``settle_and_claim`` is one script too: the finished item's delete,
    release, delay, fail or hold, fenced by its token, then the next claim,
    all or nothing.

    Operators' views: ``browse`` pages through every item by key (the
    zsets in turn, each by score and id), O(log N + page) at any depth;
    ``find_item`` and ``remove_item`` act on one id of the named queue (ids
    are unique within a queue, not across queues).

    Damaged data never blocks a queue: a claim that pops an item whose
    stored fields it cannot use (a payload missing; created, attempts or
    priority not a whole number) holds it, with a reason naming the field
    and the item, and pops another in its place; a member with nothing of
    its item left, or that is no id, is dropped. Each is logged at ERROR.

URL format:
    ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://...``
    (TLS), as redis-py reads them, query arguments included
    (``?socket_timeout=5&ssl_cert_reqs=required``...). bridge's defaults: a
    5 s connect timeout and a 30 s socket timeout, after which a call raises
    ``BackendUnavailableError``. Needs Redis 6.2 or later.
    ``redis+cluster://host[:port][,host[:port]...]`` (``rediss+cluster://``
    for TLS): a Redis Cluster, through the client ``redis_cluster.py`` makes.

Options:
    ``key_prefix``: the first part of every key (default ``bridge``), so
    that several applications share one Redis database; no ``{`` or ``}``.

Storage layout:
    With ``P`` the prefix and ``N`` the queue name (``%`` and ``}`` written
    ``%25`` and ``%7D``, so the braces always enclose the whole name)::

        P:{N}:ready     zset  id -> -priority        claimable now, claim order
        P:{N}:leased    zset  id -> lease end (us)   claimed
        P:{N}:delayed   zset  id -> delay end (us)   created with or given a delay
        P:{N}:held      zset  id -> held at (us)     set aside, oldest first
        P:{N}:ttl       zset  id -> TTL deadline (us)  items created with a TTL
        P:{N}:expired   zset  id -> TTL deadline (us)  found past it by a claim
        P:{N}:items     hash  id -> payload; id:c created (us); id:p -priority;
                              id:a attempts; id:t the latest claim's token;
                              id:e the last error; id:r why it is held;
                              id:x the TTL deadline (us), if any
        P:{N}:ids       string  the queue's id counter
        P:{N}:producer:<id>  string  a producer's last batch (10 minutes)
        P:{N}:wake      pub/sub channel  ready items created (``bridge queue watch``)

    TTLs (``create_item(..., ttl=)``, claims with ``grace``): a claim
    reads ``id:x`` with the fields it reads anyway, moves an item past it
    to ``expired`` (ending its claim) and pops another; ``counts`` looks at
    the ``ttl`` entries past their deadline; ``garbage_collection`` deletes
    expired items. An expired item is in ``expired`` or, not yet met by a
    claim, still in ready or delayed, counted as expired there.

    Every item is in exactly one of the four zsets (or ``expired``), which is its state
    (``counts`` reads them); ``id:t`` says who holds it. Ids are 16-digit
    zero-padded decimals inside Redis (so that one priority's ids sort by
    number) and ints outside; they are unique within their queue. The
    ``{N}`` hash tag puts every key of a queue in one Redis Cluster slot, so
    each script touches one slot. There is no registry of queue names to
    keep in step: ``queue_names`` scans for ``P:{*}:items`` hashes, which
    exist exactly while a queue has items. The scripts are in
    ``redis_scripts.py`` (workers' calls) and ``redis_admin.py`` (the rest).

Persistence:
    ``reliable`` holds as far as the server keeps its data: a server
    without AOF or RDB (as in the test suite) loses every queue when it
    restarts; with ``appendfsync everysec`` a crash loses at most the last
    second; a replica promoted by failover may miss the last writes.

Retries after a lost connection:
    A call whose connection fails raises ``BackendUnavailableError``; the
    next call reconnects. bridge repeats ``create_items`` once itself, with
    a batch id that keeps the repeat from writing twice; ``claim_items`` is
    never repeated (a lost claim's items come back when its lease ends).
    Every other call is safe to repeat, fenced by its claim token; what each
    repeat answers is in ``docs/redis.md``.

Processes:
    redis-py's pool notices a fork by its process id and opens new
    connections in the child without touching the parent's, so this
    backend needs no ``forget_connections`` of its own.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, final

from bridge.backends import missing_driver
from bridge.backends import redis_admin as admin
from bridge.backends import redis_scripts as lua
from bridge.backends import redis_wire as wire
from bridge.backends.redis_scripts import QueueKeys
from bridge.contract import Backend, Capabilities, Expiring, Waiting
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
)
from bridge.items import (
    ItemCounts,
    ItemId,
    ItemPage,
    ItemState,
    ListedItem,
    QueueItem,
    Settlement,
    StoredItem,
)
from bridge.waiting import RedisListener, sleep_for_items

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from bridge.backends.redis_cluster import ClusterClient, is_cluster_url
except ImportError as exc:  # the backend then refuses to start, naming the extra
    _DRIVER_MISSING: ImportError | None = exc
else:
    _DRIVER_MISSING = None

if TYPE_CHECKING:
    from redis.commands.core import Script

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_KEYS_KEPT = 1024
_MIN_VERSION = (6, 2)  # ZRANGE ... BYSCORE
# URL query arguments override these (redis-py's own rule).
_CONNECTION_DEFAULTS: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}


@final
class RedisBackend(Backend, Waiting, Expiring):
    """Queues in Redis, one Lua script a call; see the module docstring."""

    capabilities = Capabilities(
        reliable=True,
        shared=True,
        lease="exact",
        extend_lease=True,
        delay=True,
        priority=True,
        counts_leased=True,
        hold=True,
        browse=True,
        remove_item=True,
        settle_and_claim=True,
        ttl=True,
        grace=True,
        topics=True,
    )

    def __init__(self, url: str, *, key_prefix: str = "bridge") -> None:
        super().__init__(url)
        if _DRIVER_MISSING is not None:
            raise missing_driver(_DRIVER_MISSING, url) from None
        if not _usable_prefix(key_prefix):
            raise ConfigurationError(
                f"key_prefix must be a non-empty UTF-8 string without braces, not {key_prefix!r}"
            )
        self.key_prefix = key_prefix
        try:
            # No retries inside redis-py: a silent repeat of a script whose
            # reply was lost would claim twice; see "Retries" above.
            self.client: redis.Redis | ClusterClient = (
                ClusterClient(url, **_CONNECTION_DEFAULTS)
                if is_cluster_url(url)
                else redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **_CONNECTION_DEFAULTS)
            )
        except ValueError as exc:
            raise ConfigurationError(f"{self.url} is not a Redis URL: {exc}") from None
        self._items_pattern = _glob_escape(key_prefix) + ":{*}:items"
        # On one server, scripts skip redis-py's command layer (see DirectScripts).
        client = self.client
        scripts = wire.DirectScripts(client) if isinstance(client, redis.Redis) else client
        register = scripts.register_script
        one_server = isinstance(client, redis.Redis)
        create = lua.CREATE_WAKING if one_server else lua.CREATE
        self._create, self._claim, self._delete = map(register, (create, lua.CLAIM, lua.DELETE))
        self._create_expiring = register(
            lua.CREATE_EXPIRING_WAKING if one_server else lua.CREATE_EXPIRING
        )
        self._release, self._extend = register(lua.RELEASE), register(lua.EXTEND)
        self._fail, self._hold = register(lua.FAIL), register(lua.HOLD)
        self._settle = {action: register(text) for action, text in lua.SETTLE_AND_CLAIM.items()}
        self._counts, self._age, self._peek = map(register, (admin.COUNTS, admin.AGE, admin.PEEK))
        self._held, self._kick, self._kick_item, self._delete_held = map(
            register, (admin.HELD, admin.KICK, admin.KICK_ITEM, admin.DELETE_HELD)
        )
        self._release_all, self._delete_queue, self._collect = map(
            register, (admin.RELEASE_ALL, admin.DELETE_QUEUE, admin.COLLECT)
        )
        self._browse, self._find, self._remove = map(
            register, (admin.BROWSE, admin.FIND, admin.REMOVE)
        )
        self._keys: dict[str, tuple[QueueKeys, str]] = {}
        self._all_keys: dict[str, tuple[str, ...]] = {}
        self._nonce = secrets.token_hex(4)
        self._token = wire.tokens()
        self._local = threading.local()
        self._checked = False
        self._listener: RedisListener | None = None

    # -- queue set-up -------------------------------------------------------

    def create_queue(self, name: str) -> None:
        """Nothing to create; checks once that the server is recent enough."""
        if self._checked:
            return
        try:
            version = str(self.client.info("server").get("redis_version", ""))
        except redis.RedisError as exc:
            raise self._error("create_queue", exc) from exc
        # A server that names no version it can be judged by is let be: the
        # first script it cannot run will say so, wrapped like any other error.
        found = re.match(r"(\d+)\.(\d+)", version)
        if found and (int(found[1]), int(found[2])) < _MIN_VERSION:
            raise ConfigurationError(
                f"the redis backend needs Redis 6.2+; {self.url} runs {version}"
            )
        self._checked = True

    def delete_queue(self, name: str) -> None:
        base = self._queue_keys(name)[1]
        self._run("delete_queue", self._delete_queue, (*self._all_of(name), f"{base}:ids"), ())

    # -- items ----------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        return self.create_expiring_items(name, payloads, delay, priority, None)

    def create_expiring_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int, ttl: float | None
    ) -> list[ItemId]:
        keys, base = self._queue_keys(name)
        pid = os.getpid()
        producer = f"{base}:producer:{self._nonce}.{pid}.{threading.get_ident()}"
        # A TTL is part of what a repeat must match, as the delay is.
        shape = (delay, priority, ttl)
        batch = self._unsure_batch(pid, name, payloads, shape)
        self._local.unsure = None
        script_keys: tuple[str, ...] = (*keys, f"{base}:ids", producer)
        args: tuple[str | int | bytes, ...] = (wire.micros(delay), str(-priority), batch)
        script = self._create
        if ttl is not None:
            script = self._create_expiring
            script_keys += (f"{base}:ttl",)
            args += (wire.micros(ttl),)
        args += tuple(payloads)
        try:
            first = script(script_keys, args)
        except (redis.ConnectionError, redis.TimeoutError):
            # The script may have run and only its reply been lost: the same
            # batch id makes this repeat return the stored ids, not write twice.
            try:
                first = script(script_keys, args)
            except redis.RedisError as exc:
                if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
                    self._local.unsure = ((pid, name, shape, list(payloads)), batch)
                raise self._error("create_items", exc) from exc
        except redis.RedisError as exc:
            raise self._error("create_items", exc) from exc
        return list(range(int(first), int(first) + len(payloads)))

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        return self.claim_items_with_grace(name, count, lease_time, None)

    def claim_items_with_grace(
        self, name: str, count: int, lease_time: float, grace: float | None
    ) -> list[StoredItem]:
        token = self._token()
        args: tuple[Any, ...] = (count, wire.micros(lease_time), token)
        if grace is not None:
            args += (wire.micros(grace),)

        def parse(out: list[Any]) -> list[StoredItem]:
            if not out:
                return []
            return wire.claimed(self._report(name, out[1], out), token)

        return self._call("claim_items", self._claim, name, args, parse, every_key=True)

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        args: list[str] = []
        for item in items:
            # wire.member inlined: once per item of a batched delete.
            item_id, token = item.item_id, item.token
            if type(item_id) is int and item_id > 0 and token:
                args += (f"{item_id:016d}", token)
        if not args:
            return 0
        return self._call("delete_items", self._delete, name, args, int, every_key=True)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self.delay_item(name, item, 0.0) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        # RELEASE answers with notes: a released item whose stored priority is
        # damaged is held instead, and the holder told None.
        def parse(out: list[Any]) -> float | None:
            return wire.seconds(self._report(name, out[1], out[0]))

        operation = "delay_item" if delay else "release_item"
        return self._by_holder(operation, self._release, name, item, (wire.micros(delay),), parse)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        args = (wire.micros(lease_time),)
        return self._by_holder("extend_lease", self._extend, name, item, args, wire.seconds)

    def extend_lease_with_grace(
        self, name: str, item: QueueItem, lease_time: float, grace: float
    ) -> float | None:
        args = (wire.micros(lease_time), wire.micros(grace))
        return self._by_holder(
            "extend_lease", self._extend, name, item, args, wire.seconds, every_key=True
        )

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        args = (wire.encoded(error), "" if delay is None else wire.micros(delay))
        return self._by_holder("fail_item", self._fail, name, item, args, wire.seconds)

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        """One script: the settlement, fenced by the item's token, then the claim.

        An item no claim of ours took (no token, or an id this backend never
        issued) is not settled and the claim still runs, as with the two calls.
        """
        done = wire.settlement(settlement)
        if done is None:
            return False, self.claim_items(name, count, lease_time) if count else []
        token = self._token()

        def parse(out: list[Any]) -> tuple[bool, list[StoredItem]]:
            settled, claimed = out
            if not claimed:
                return settled == 1, []
            return settled == 1, wire.claimed(self._report(name, claimed[1], claimed), token)

        args = (count, wire.micros(lease_time), token, *done)
        script = self._settle[settlement.action]
        return self._call("settle_and_claim", script, name, args, parse, every_key=True)

    def garbage_collection(self, name: str) -> None:
        """Move ended leases and delays to ready; delete expired items.

        Claims never depend on it: they move what they need themselves.
        """
        report = partial(self._report, name, result=None)
        self._call("garbage_collection", self._collect, name, (), report, every_key=True)

    # -- held items -------------------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        texts = (reason,) if error is None else (reason, error)
        args = tuple(map(wire.encoded, texts))
        done = self._by_holder("hold_item", self._hold, name, item, args, lambda held: held == 1)
        return bool(done)

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        return self._call("held_items", self._held, name, (limit,), wire.held) if limit else []

    def kick(self, name: str, limit: int | None) -> int:
        if limit == 0:
            return 0
        return self._call("kick", self._kick, name, (wire.last_rank(limit),), int)

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        member = wire.member(item_id)
        if member is None:
            return False
        return self._call("kick_item", self._kick_item, name, (member,), int) == 1

    def delete_held(self, name: str, limit: int | None) -> int:
        if limit == 0:
            return 0
        return self._call("delete_held", self._delete_held, name, (wire.last_rank(limit),), int)

    # -- inspection -------------------------------------------------------------

    def counts(self, name: str) -> ItemCounts:
        parse = lambda out: ItemCounts(*map(int, out))  # noqa: E731
        return self._call("counts", self._counts, name, (), parse, every_key=True)

    def oldest_ready_age(self, name: str) -> float | None:
        """How long the oldest ready item has waited; see ``AGE`` in ``redis_admin.py``."""
        return self._call("oldest_ready_age", self._age, name, (), wire.seconds)

    def queue_names(self) -> dict[str, int]:
        """Every queue with items: a SCAN for their hashes, then one pipeline of counts."""
        start = len(self.key_prefix) + 2
        try:
            found = self.client.scan_iter(match=self._items_pattern, count=1000)
            names = sorted(
                lua.unescape_name(wire.listed_name(key)[start : -len("}:items")]) for key in found
            )
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                keys = self._keys_of(name)
                for key in (keys[0], keys[1], keys[2], keys[4]):
                    pipe.zcard(key)
            cards = pipe.execute()
        except redis.RedisError as exc:
            raise self._error("queue_names", exc) from exc
        totals = {name: sum(cards[4 * i : 4 * i + 4]) for i, name in enumerate(names)}
        return {name: total for name, total in totals.items() if total}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        if limit == 0:
            return []
        parse = lambda out: wire.peeked(self._report(name, out[0], out))  # noqa: E731
        return self._call("peek", self._peek, name, (limit,), parse)

    def browse(self, name: str, state: ItemState | None, after: str | None, limit: int) -> ItemPage:
        """A page in the order of the zsets: ready (claim order), leased, delayed, held.

        Within each zset by score then id (lease end, delay end, when held);
        ended leases and delays are listed as ready where they stand. The
        cursor is the last entry's zset, score and member, so each page costs
        O(log N + limit); see ``BROWSE`` in ``redis_admin.py``. Writes nothing.
        """
        try:
            start = wire.cursor(after)
        except ValueError:
            raise InvalidArgumentError(
                f"after must be a cursor from a page of this queue, not {after!r}"
            ) from None
        if limit == 0:
            return ItemPage([], after)
        args = ("" if state is None else state.value, *start, limit)
        return self._call("browse", self._browse, name, args, wire.page)

    def find_item(self, name: str, item_id: ItemId) -> ListedItem | None:
        member = wire.member(item_id)
        if member is None:
            return None
        parse = lambda out: wire.listed(out, 0)[0] if out else None  # noqa: E731
        return self._call("find_item", self._find, name, (member,), parse)

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        """Delete one item in any state, with its fields: its holder's claim ends."""
        member = wire.member(item_id)
        if member is None:
            return False
        return self._call("remove_item", self._remove, name, (member,), int, every_key=True) > 0

    def release_all(self, name: str) -> int:
        """Every lease and delay dropped, every claim ended; held items stay held.

        One script over the whole queue (it clears every item's token, a
        holder's released items' too), so it takes time in proportion to
        the queue's size; it is an operator's call, never on a hot path.
        """
        parse = lambda out: int(self._report(name, out[1], out[0]))  # noqa: E731
        return self._call("release_all", self._release_all, name, (), parse)

    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """One server: the create script's PUBLISH, or the earliest delay or lease end.

        A cluster sleeps briefly instead (see ``CREATE_WAKING``).
        """
        client = self.client
        if not isinstance(client, redis.Redis):
            return sleep_for_items(timeout)
        if self._listener is None:
            channel = lambda name: self._queue_keys(name)[1] + ":wake"  # noqa: E731
            self._listener = RedisListener(self.url, client.pubsub, channel, self._due)
        return self._listener.wait(names, timeout)

    def _due(self, names: Sequence[str]) -> float | None:
        """Seconds until the first delayed or leased item of ``names`` is claimable, if any."""
        client = self.client
        assert isinstance(client, redis.Redis)  # wait_for_items calls this on one server only
        pipe = client.pipeline(transaction=False)
        pipe.time()
        for name in names:
            _, leased, delayed, _, _ = self._keys_of(name)
            pipe.zrange(leased, 0, 0, withscores=True)
            pipe.zrange(delayed, 0, 0, withscores=True)
        (seconds, micros), *firsts = pipe.execute()
        ends = [float(score) for first in firsts for _, score in first]
        if not ends:
            return None
        return (min(ends) - (int(seconds) * 1_000_000 + int(micros))) / 1_000_000

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.client.close()

    def forget_connections(self) -> None:
        """In a forked child: claim tokens of its own (redis-py's pool sees the fork itself)."""
        self._token = wire.tokens()
        if self._listener is not None:
            self._listener.forget()

    # -- helpers ------------------------------------------------------------------

    def _queue_keys(self, name: str) -> tuple[QueueKeys, str]:
        """The queue's five script keys and their common base, built once per name."""
        known = self._keys.get(name)
        if known is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            known = self._keys[name] = lua.queue_keys(self.key_prefix, name)
        return known

    def _keys_of(self, name: str) -> QueueKeys:
        return self._queue_keys(name)[0]

    def _all_of(self, name: str) -> tuple[str, ...]:
        """The five keys, then the ttl and expired zsets: for scripts that reach expired items."""
        known = self._all_keys.get(name)
        if known is None:
            if len(self._all_keys) >= _KEYS_KEPT:
                self._all_keys.clear()
            keys, base = self._queue_keys(name)
            known = self._all_keys[name] = (*keys, f"{base}:ttl", f"{base}:expired")
        return known

    def _unsure_batch(
        self, pid: int, name: str, payloads: Sequence[bytes], shape: tuple[Any, ...]
    ) -> str:
        """The batch id of this thread's failed create if this call repeats it, else a new one."""
        unsure = getattr(self._local, "unsure", None)
        if unsure is not None and unsure[0] == (pid, name, shape, list(payloads)):
            return str(unsure[1])
        return secrets.token_hex(8)

    def _by_holder(
        self,
        operation: str,
        script: Script,
        name: str,
        item: QueueItem,
        args: tuple[Any, ...],
        parse: Callable[[Any], _T],
        *,
        every_key: bool = False,
    ) -> _T | None:
        """A call fenced by the item's claim token; None for an item no claim of ours took."""
        member = wire.member(item.item_id)
        if member is None or not item.token:
            return None
        given = (member, item.token, *args)
        return self._call(operation, script, name, given, parse, every_key=every_key)

    def _call(
        self,
        operation: str,
        script: Script,
        name: str,
        args: Sequence[Any],
        parse: Callable[[Any], _T],
        *,
        every_key: bool = False,
    ) -> _T:
        """Run a script on the queue's keys and read its reply, wrapping every error.

        ``every_key``: the ttl and expired zsets too (:meth:`_all_of`).
        """
        keys = self._all_of(name) if every_key else self._keys_of(name)
        reply = self._run(operation, script, keys, args)
        try:
            return parse(reply)
        except wire.MALFORMED as exc:
            raise BackendError(
                f"{operation} on {self.url}: a reply of an unexpected shape: {exc!r}"
            ) from exc

    def _run(self, operation: str, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys, args)
        except (redis.RedisError, UnicodeError) as exc:
            # UnicodeError: redis-py encodes str arguments strictly; a queue
            # name handed past the facade could still hold a lone surrogate.
            raise self._error(operation, exc) from exc

    def _report(self, name: str, notes: Sequence[bytes], result: _T) -> _T:
        """Log what a script set aside (an item held, a member dropped); pass ``result`` on."""
        for note in notes:
            logger.error("Queue %s on %s: %s", name, self.url, wire.text(note))
        return result

    def _error(self, operation: str, exc: Exception) -> BackendError:
        reason = str(exc).strip() or type(exc).__name__
        message = f"{operation} on {self.url} failed: {reason}"
        lost = isinstance(exc, redis.ConnectionError | redis.TimeoutError)
        # A refused login or command will not heal by waiting; a replica that
        # became read-only during a failover will.
        refused = redis.AuthenticationError | redis.exceptions.AuthorizationError
        if lost and not isinstance(exc, refused):
            return BackendUnavailableError(message)
        if isinstance(exc, redis.exceptions.ReadOnlyError):
            return BackendUnavailableError(message)
        return BackendError(message)


def _usable_prefix(prefix: object) -> bool:
    """A prefix every key can start with: no hash-tag braces, and encodable as UTF-8."""
    if not isinstance(prefix, str) or not prefix or {"{", "}"} & set(prefix):
        return False
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
