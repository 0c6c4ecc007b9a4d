"""Queues in Redis through redis-py: one Lua script per call, on the server's clock.

Features:
    Reliable (as far as the server's persistence goes, see below), shared by
    every process that reaches the server, with exact per-claim leases,
    extend_lease, delays, priority, claim tokens and attempts. Every public
    call is one round trip (but ``queue_names``, a listing: a SCAN): one script
    (``EVALSHA``; each script is loaded once per server) that does the whole
    operation atomically, so no crash between two commands can lose or
    double an item. Times are the Redis server's ``TIME`` in microseconds,
    read inside the scripts, so workers with skewed clocks agree; leases and
    delays may be fractional. An item whose lease or delay has ended is
    claimable at once: each claim first moves such items back into the
    ready set, so no sweeper process and no garbage collection is needed.
    Claim order is exact (higher priority first, then lower id; an expired,
    released or delayed item goes back to its original place), unless more
    than 1000 leases or delays end between two claims; the surplus then
    joins the order over the next claims.

    Claims: as in Drupal, the holder's own ``release_item``, ``delay_item``
    and ``extend_lease`` keep its claim, so it may go on to delete,
    release, delay or extend the item until another claim takes it (a new
    token) or ``release_all`` ends every claim of the queue. Leases and
    delays are at most 2**31-1 s, which the facade checks and the scripts
    check again before any write; every deadline is then an exact integer.

URL format:
    ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://...``
    (TLS), as redis-py reads them, query arguments included
    (``?socket_timeout=5&ssl_cert_reqs=required``...). bridge's defaults: a
    5 s connect timeout and a 30 s socket timeout, after which a call raises
    ``BackendUnavailableError``. Needs Redis 6.2 or later.

Options:
    ``key_prefix``: the first part of every key (default ``bridge``), so
    that several applications share one Redis database; no ``{`` or ``}``.

Storage layout:
    With ``P`` the prefix and ``N`` the queue name (``%`` and ``}`` written
    ``%25`` and ``%7D``, so the braces always enclose the whole name)::

        P:{N}:ready     zset  id -> -priority        claimable now, claim order
        P:{N}:leased    zset  id -> lease end (us)   claimed
        P:{N}:delayed   zset  id -> delay end (us)   created with or given a delay
        P:{N}:items     hash  id -> payload; id:c created (us); id:p -priority;
                              id:a attempts; id:t the latest claim's token
        P:{N}:ids       string  the queue's id counter
        P:{N}:producer:<id>  string  a producer's last batch (10 minutes)

    Every item is in exactly one of the three zsets, which is its state
    (``counts`` reads them); ``id:t`` says who holds it. Ids are 16-digit
    zero-padded decimals inside Redis (so that one priority's ids sort by
    number) and ints outside; they are unique within their queue. The
    ``{N}`` hash tag puts every key of a queue in one Redis Cluster slot, so
    each script touches one slot. There is no registry of queue names to
    keep in step: ``queue_names`` scans for ``P:{*}:items`` hashes, which
    exist exactly while a queue has items.

Persistence:
    ``reliable`` holds as far as the server keeps its data: a server
    without AOF or RDB (as in the test suite) loses every queue when it
    restarts; with ``appendfsync everysec`` a crash loses at most the last
    second; a replica promoted by failover may miss the last writes.

Retries after a lost connection:
    A call whose connection fails raises ``BackendUnavailableError``; the
    next call reconnects. What calling again does:

    * ``create_items`` is retried once at once by bridge, with the same
      batch id: the script recognises a batch this producer (backend object,
      process and thread) already wrote and returns its ids. If that retry
      fails too, the error means "written or not": calling again from the
      same thread with the same items, delay and priority within 10 minutes
      reuses the batch id, so they are written once.
    * ``claim_items`` is not retried. A claim whose reply was lost leaves
      its items leased to a token nobody has: they come back when the lease
      ends, with that claim in ``attempts``. Nothing is lost or doubled.
    * ``delete_items``: the claim token makes a repeat harmless; it answers
      a lower count for what the lost call already deleted.
    * ``release_item``, ``delay_item``, ``extend_lease``: the holder keeps
      its claim, so a repeat does the same again from the new now and
      answers True, unless another claim took the item in between.
    * Reads, ``release_all``, ``delete_queue`` and ``garbage_collection``
      may simply run again.

Processes:
    redis-py's pool notices a fork by its process id and opens new
    connections in the child without touching the parent's, so this
    backend needs no ``forget_connections`` of its own.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

from bridge.backends import missing_driver
from bridge.backends import redis_scripts as lua
from bridge.backends.redis_scripts import QueueKeys
from bridge.contract import Backend, Capabilities
from bridge.errors import BackendError, BackendUnavailableError, ConfigurationError
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # the backend then refuses to start, naming the extra
    _DRIVER_MISSING: ImportError | None = exc
else:
    _DRIVER_MISSING = None

if TYPE_CHECKING:
    from redis.commands.core import Script

_KEYS_KEPT = 1024
_MIN_VERSION = (6, 2)  # ZRANGE ... BYSCORE
# URL query arguments override these (redis-py's own rule).
_CONNECTION_DEFAULTS: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}


@final
class RedisBackend(Backend):
    """Queues in Redis, one Lua script a call; see the module docstring."""

    capabilities = Capabilities(
        reliable=True,
        shared=True,
        lease="exact",
        extend_lease=True,
        delay=True,
        priority=True,
        counts_leased=True,
    )

    def __init__(self, url: str, *, key_prefix: str = "bridge") -> None:
        super().__init__(url)
        if _DRIVER_MISSING is not None:
            raise missing_driver(_DRIVER_MISSING, url) from None
        if not isinstance(key_prefix, str) or not key_prefix or {"{", "}"} & set(key_prefix):
            raise ConfigurationError(
                f"key_prefix must be a non-empty string without braces, not {key_prefix!r}"
            )
        self.key_prefix = key_prefix
        try:
            # No retries inside redis-py: a silent repeat of a script whose
            # reply was lost would claim twice; see "Retries" above.
            self.client = redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), **_CONNECTION_DEFAULTS
            )
        except ValueError as exc:
            raise ConfigurationError(f"{self.url} is not a Redis URL: {exc}") from None
        self._items_pattern = _glob_escape(key_prefix) + ":{*}:items"
        register = self.client.register_script
        self._create, self._claim, self._delete = map(register, (lua.CREATE, lua.CLAIM, lua.DELETE))
        self._release, self._extend = register(lua.RELEASE), register(lua.EXTEND)
        self._counts, self._peek = register(lua.COUNTS), register(lua.PEEK)
        self._release_all, self._delete_queue, self._collect = map(
            register, (lua.RELEASE_ALL, lua.DELETE_QUEUE, lua.COLLECT)
        )
        self._keys: dict[str, tuple[QueueKeys, str]] = {}
        self._nonce = secrets.token_hex(4)
        self._local = threading.local()
        self._checked = False

    # -- queue set-up -------------------------------------------------------

    def create_queue(self, name: str) -> None:
        """Nothing to create; checks once that the server is recent enough."""
        if self._checked:
            return
        try:
            version = str(self.client.info("server")["redis_version"])
        except redis.RedisError as exc:
            raise self._error("create_queue", exc) from exc
        if tuple(int(part) for part in version.split(".")[:2]) < _MIN_VERSION:
            raise ConfigurationError(
                f"the redis backend needs Redis 6.2+; {self.url} runs {version}"
            )
        self._checked = True

    def delete_queue(self, name: str) -> None:
        keys, base = self._queue_keys(name)
        self._run("delete_queue", self._delete_queue, (*keys, f"{base}:ids"), ())

    # -- items ----------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        keys, base = self._queue_keys(name)
        pid = os.getpid()
        producer = f"{base}:producer:{self._nonce}.{pid}.{threading.get_ident()}"
        batch = self._unsure_batch(pid, name, payloads, delay, priority)
        self._local.unsure = None
        script_keys = (*keys, f"{base}:ids", producer)
        args: tuple[str | int | bytes, ...] = (_micros(delay), str(-priority), batch, *payloads)
        try:
            first = self._create(script_keys, args)
        except (redis.ConnectionError, redis.TimeoutError):
            # The script may have run and only its reply been lost: the same
            # batch id makes this repeat return the stored ids, not write twice.
            try:
                first = self._create(script_keys, args)
            except redis.RedisError as exc:
                if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
                    self._local.unsure = ((pid, name, delay, priority, list(payloads)), batch)
                raise self._error("create_items", exc) from exc
        except redis.RedisError as exc:
            raise self._error("create_items", exc) from exc
        return list(range(int(first), int(first) + len(payloads)))

    def counts(self, name: str) -> ItemCounts:
        ready, leased, delayed = self._run("counts", self._counts, self._queue_keys(name)[0], ())
        return ItemCounts(int(ready), int(leased), int(delayed))

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        token = secrets.token_hex(8)
        out = self._run(
            "claim_items",
            self._claim,
            self._queue_keys(name)[0],
            (count, _micros(lease_time), token),
        )
        if not out:
            return []
        expire = int(out[0]) / 1e6
        return [
            StoredItem(
                int(out[i]),
                out[i + 1],
                int(out[i + 2]) / 1e6,
                expire,
                out[i + 3],
                out[i + 4],
                token,
            )
            for i in range(1, len(out), 5)
        ]

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        args: list[str] = []
        for item in items:
            member = _member(item.item_id)
            if member is not None and item.token:
                args += (member, item.token)
        if not args:
            return 0
        return int(self._run("delete_items", self._delete, self._queue_keys(name)[0], args))

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._settle("release_item", self._release, name, item, 0.0) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._settle("delay_item", self._release, name, item, delay)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._settle("extend_lease", self._extend, name, item, lease_time)

    def garbage_collection(self, name: str) -> None:
        """Move ended leases and delays to ready.

        Claims never depend on it: they move what they need themselves.
        """
        self._run("garbage_collection", self._collect, self._queue_keys(name)[0], ())

    # -- inspection -------------------------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Every queue with items: a SCAN for their hashes, then one pipeline of counts."""
        start = len(self.key_prefix) + 2
        try:
            found = self.client.scan_iter(match=self._items_pattern, count=1000)
            names = sorted(
                lua.unescape_name(key.decode()[start : -len("}:items")]) for key in found
            )
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                for key in self._queue_keys(name)[0][:3]:
                    pipe.zcard(key)
            cards = pipe.execute()
        except redis.RedisError as exc:
            raise self._error("queue_names", exc) from exc
        totals = {name: sum(cards[3 * i : 3 * i + 3]) for i, name in enumerate(names)}
        return {name: total for name, total in totals.items() if total}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        if limit == 0:
            return []
        out = self._run("peek", self._peek, self._queue_keys(name)[0], (limit,))
        return [
            StoredItem(
                int(out[i]),
                out[i + 1],
                int(out[i + 2]) / 1e6,
                int(out[i + 5]) / 1e6,
                int(out[i + 3]),
                -int(out[i + 4]),
                "",
            )
            for i in range(0, len(out), 6)
        ]

    def release_all(self, name: str) -> int:
        """Every lease and delay dropped, every claim of the queue ended.

        One script over the whole queue (it clears every item's token, a
        holder's released items' too), so it takes time in proportion to
        the queue's size; it is an operator's call, never on a hot path.
        """
        return int(self._run("release_all", self._release_all, self._queue_keys(name)[0], ()))

    def close(self) -> None:
        self.client.close()

    # -- helpers ------------------------------------------------------------------

    def _queue_keys(self, name: str) -> tuple[QueueKeys, str]:
        """The queue's four keys and their common base, built once per name."""
        known = self._keys.get(name)
        if known is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            known = self._keys[name] = lua.queue_keys(self.key_prefix, name)
        return known

    def _unsure_batch(
        self, pid: int, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> str:
        """The batch id of this thread's failed create if this call repeats it, else a new one."""
        unsure = getattr(self._local, "unsure", None)
        if unsure is not None and unsure[0] == (pid, name, delay, priority, list(payloads)):
            return str(unsure[1])
        return secrets.token_hex(8)

    def _settle(
        self, operation: str, script: Script, name: str, item: QueueItem, seconds: float
    ) -> float | None:
        """A holder's release, delay or extend: the new deadline, or None if not held.

        The claim stays the holder's whichever it is (see the module docstring).
        """
        member = _member(item.item_id)
        if member is None or not item.token:
            return None
        args = (member, item.token, _micros(seconds))
        until = self._run(operation, script, self._queue_keys(name)[0], args)
        return None if until is None else int(until) / 1e6

    def _run(self, operation: str, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys, args)
        except redis.RedisError as exc:
            raise self._error(operation, exc) from exc

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


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _micros(seconds: float) -> int:
    """Seconds as the scripts count time: whole microseconds."""
    return round(seconds * 1_000_000)


def _member(item_id: ItemId) -> str | None:
    """The id as the scripts store it, or None for an id this backend never issued."""
    if type(item_id) is not int or item_id < 1:
        return None
    return f"{item_id:016d}"
