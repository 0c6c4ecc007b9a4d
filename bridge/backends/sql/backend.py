"""The SQL backend's operations: which statement runs, on which path, and retries.

Statements come from ``statements.py``. Claims, deletes and inserts, what a
worker does thousands of times a second, are compiled once per shape and
run on the thread's pinned connection (``driver.py``); everything else runs
through SQLAlchemy. The package docstring describes the backend.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.backends.sql.driver import Compiled, PinnedConnections
from bridge.backends.sql.engine import check_server, create_engine, max_statement
from bridge.backends.sql.errors import is_transient, wrap_errors
from bridge.backends.sql.listing import cursor_after, listed, page_of, search_limit
from bridge.backends.sql.schema import ensure_schema
from bridge.backends.sql.statements import Statements, queue_table
from bridge.contract import Backend, Capabilities, Expiring, Waiting, settle
from bridge.errors import BackendError, ConfigurationError, PayloadError
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
from bridge.waiting import PostgresListener, sleep_for_items

_ATTEMPTS = 5
_STATEMENTS_KEPT = 512
# Rows per INSERT and ids per DELETE: far below every driver's parameter
# limit (SQLite's was 999 before 3.32), and few enough sizes to cache.
_CHUNK = 100
# MariaDB/MySQL: generous bounds on an INSERT's text around its payloads (the
# statement's head and each row's own text), to keep it under max_allowed_packet.
_STATEMENT_TEXT = 1024
_ROW_TEXT = 512
_NAMES = {prefix: [f"{prefix}{i}" for i in range(_CHUNK)] for prefix in ("id", "data")}
T = TypeVar("T")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
Work = Callable[[Connection, Statements], T]


@final
class SqlBackend(Backend, Waiting, Expiring):
    """Queues in one SQL table; see the package docstring."""

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
    statements: Statements
    """Built on first use, once the dialect knows its server (MariaDB or MySQL)."""

    def __init__(
        self,
        url: str,
        *,
        table: str = "bridge_queue",
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        pool_size: int = 5,
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ConfigurationError(f"table must be a plain SQL identifier, not {table!r}")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.engine = create_engine(url, busy_timeout, synchronous.upper(), pool_size)
        name = self.engine.dialect.name
        self.dialect = "mysql" if name in ("mysql", "mariadb") else name
        self.table = queue_table(table)
        self._locking = self.dialect == "mysql"
        self._returning_ids = False  # known once connected; until then, the safe choice
        self._max_statement: int | None = None  # MariaDB/MySQL: max_allowed_packet, once known
        self._ready = False
        self._compiled: dict[tuple[Any, ...], Compiled] = {}
        self._pinned = PinnedConnections(self.engine)
        self._listener: PostgresListener | None = None
        # Last: the fork hook may call forget_connections from here on.
        super().__init__(url)

    # -- queue set-up -----------------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with wrap_errors(self.url, "create_queue"):
            self._prepare()

    def delete_queue(self, name: str) -> None:
        self._run("delete_queue", lambda conn, s: conn.execute(s.delete_queue, {"queue": name}))

    # -- the hot path ---------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        return self.create_expiring_items(name, payloads, delay, priority, None)

    def create_expiring_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int, ttl: float | None
    ) -> list[ItemId]:
        values = {"queue": name, "delay": float(delay), "priority": priority}
        if ttl is not None:
            values["ttl"] = float(ttl)
        chunks = self._chunks(name, payloads)
        # Before the first connection MariaDB's limit is unknown: cut again then.
        ready = self._ready

        def insert(cursor: Any) -> list[ItemId]:
            ids: list[ItemId] = []
            for chunk in chunks if ready else self._chunks(name, payloads):
                ids.extend(self._insert(cursor, chunk, values, bool(delay), ttl is not None))
            return ids

        several = len(chunks) > 1 or not self._returning_ids
        return sorted(self._run_hot("create_items", insert, several=several))

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        return self.claim_items_with_grace(name, count, lease_time, None)

    def claim_items_with_grace(
        self, name: str, count: int, lease_time: float, grace: float | None
    ) -> list[StoredItem]:
        token = secrets.token_hex(16)
        claim = self._claim_locked_then_update if self._locking else self._claim_in_one_update
        claimed = self._run_hot(
            "claim_items",
            lambda c: claim(c, name, count, lease_time, token, grace),
            several=self._locking,
        )
        claimed.sort(key=lambda item: (-item.priority, item.item_id))
        return claimed

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        held: dict[str, list[ItemId]] = {}
        for item in items:
            if item.token:
                held.setdefault(item.token, []).append(item.item_id)
        # PostgreSQL takes any number of ids as one array parameter; elsewhere
        # each id is a placeholder, so large deletes go in chunks.
        size = len(items) if self.dialect == "postgresql" else _CHUNK
        chunks = [
            (token, ids[start : start + size])
            for token, ids in held.items()
            for start in range(0, len(ids), size)
        ]
        if not chunks:
            return 0
        return self._run_hot(
            "delete_items", lambda c: self._delete(c, chunks), several=len(chunks) > 1
        )

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        item = settlement.item
        if count == 0:
            return settle(self, name, settlement), []
        if not item.token:  # a peeked item holds nothing: only the claim is left
            return False, self.claim_items(name, count, lease_time)
        action, given = _settlement(settlement)
        given.update(queue=name, lease_time=lease_time, token=secrets.token_hex(16))
        # PostgreSQL does both in one statement, unless the claim must see the
        # settlement (a release): then, as elsewhere, two in one transaction.
        in_one = self.dialect == "postgresql" and not _claimable_at_once(action, given)
        run = self._in_one if in_one else self._one_then_other
        settled, claimed = self._run_hot(
            "settle_and_claim", lambda c: run(c, action, count, given), several=not in_one
        )
        claimed.sort(key=lambda stored: (-stored.priority, stored.item_id))
        return settled, claimed

    # -- a holder's calls -----------------------------------------------------------------

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._settle("release_item", item, lambda s: s.release, {}) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._settle("delay_item", item, lambda s: s.delay, {"seconds": delay})

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._settle("extend_lease", item, lambda s: s.extend, {"seconds": lease_time})

    def extend_lease_with_grace(
        self, name: str, item: QueueItem, lease_time: float, grace: float
    ) -> float | None:
        given = {"seconds": lease_time, "grace": grace}
        return self._settle("extend_lease", item, lambda s: s.extend_grace, given)

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        if delay is None:
            return self._settle("fail_item", item, lambda s: s.fail, {"error": error})
        given = {"error": error, "seconds": delay}
        return self._settle("fail_item", item, lambda s: s.fail_delayed, given)

    # -- held items ---------------------------------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        if not item.token:
            return False
        given = {"id": item.item_id, "claim": item.token, "reason": reason, "error": error}
        return self._changed("hold_item", lambda s: s.hold, given) == 1

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        rows = self._run(
            "held_items",
            lambda conn, s: conn.execute(s.held_items, {"queue": name, "limit": limit}).all(),
            read=True,
        )
        return [
            StoredItem(item_id, data, created, expire, attempts, priority, "", error, at, why)
            for item_id, data, created, expire, attempts, priority, error, at, why in rows
        ]

    def kick(self, name: str, limit: int | None) -> int:
        return self._changed("kick", lambda s: s.kick(limit is not None), _limited(name, limit))

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        row_id = _row_id(item_id)
        if row_id is None:
            return False
        return self._changed("kick_item", lambda s: s.kick_item, {"id": row_id, "queue": name}) == 1

    def delete_held(self, name: str, limit: int | None) -> int:
        statement = lambda s: s.delete_held(limit is not None)  # noqa: E731
        return self._changed("delete_held", statement, _limited(name, limit))

    # -- introspection and administration ---------------------------------------------------

    def counts(self, name: str) -> ItemCounts:
        row = self._run(
            "counts", lambda conn, s: conn.execute(s.counts, {"queue": name}).one(), read=True
        )
        total, leased, delayed, held, expired = (int(number) for number in row)
        return ItemCounts(total - leased - delayed - held - expired, leased, delayed, held, expired)

    def garbage_collection(self, name: str) -> None:
        self._run(
            "garbage_collection",
            lambda conn, s: conn.execute(s.delete_expired, {"queue": name}),
        )

    def oldest_ready_age(self, name: str) -> float | None:
        age = self._run(
            "oldest_ready_age",
            lambda conn, s: conn.execute(s.oldest_ready_age, {"queue": name}).scalar(),
            read=True,
        )
        # Never below 0: SQLite's clock has milliseconds, and so its created.
        return None if age is None else max(0.0, float(age))

    def queue_names(self) -> dict[str, int]:
        rows = self._run(
            "queue_names", lambda conn, s: conn.execute(s.queue_names).all(), read=True
        )
        return {row[0]: int(row[1]) for row in rows}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        rows = self._run(
            "peek",
            lambda conn, s: conn.execute(s.peek, {"queue": name, "limit": limit}).all(),
            read=True,
        )
        return [
            StoredItem(item_id, data, created, expire, attempts, priority, "", error)
            for item_id, data, created, expire, attempts, priority, error in rows
        ]

    def browse(self, name: str, state: ItemState | None, after: str | None, limit: int) -> ItemPage:
        given: dict[str, Any] = {"queue": name, "limit": search_limit(limit)}
        if after is not None:
            given["after_priority"], given["after_id"] = cursor_after(after)
        wanted = None if state is None else state.value
        rows = self._run(
            "browse",
            lambda conn, s: conn.execute(s.browse(wanted, after is not None), given).all(),
            read=True,
        )
        return page_of(rows, limit)

    def find_item(self, name: str, item_id: ItemId) -> ListedItem | None:
        row_id = _row_id(item_id)
        if row_id is None:
            return None
        row = self._run(
            "find_item",
            lambda conn, s: conn.execute(s.find_item, {"id": row_id, "queue": name}).first(),
            read=True,
        )
        return None if row is None else listed(row)

    def release_all(self, name: str) -> int:
        def release(conn: Connection, s: Statements) -> int:
            freed = conn.execute(s.free_leases, {"queue": name}).rowcount
            conn.execute(s.end_claims, {"queue": name})
            return int(freed)

        return self._run("release_all", release)

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        row_id = _row_id(item_id)
        if row_id is None:
            return False
        given = {"id": row_id, "queue": name}
        return self._changed("remove_item", lambda s: s.remove_item, given) == 1

    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """PostgreSQL: ``LISTEN`` for the INSERT's ``pg_notify``; elsewhere a short sleep."""
        if self.dialect != "postgresql":
            return sleep_for_items(timeout)
        if self._listener is None:
            engine = self.engine
            args, options = engine.dialect.create_connect_args(engine.url)
            connect = lambda: engine.dialect.connect(*args, **options)  # noqa: E731
            self._listener = PostgresListener(self.url, self.table.name, connect)
        return self._listener.wait(names, timeout)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._pinned.close()
        self.engine.dispose()

    def forget_connections(self) -> None:
        # close=False: the parent still uses these sockets; the child only
        # drops its references and opens its own.
        if self._listener is not None:
            self._listener.forget()
        self._pinned.forget()
        self.engine.dispose(close=False)

    # -- statements on the pinned connection -------------------------------------------------

    def _statement(
        self, key: tuple[Any, ...], build: Callable[..., sa.ClauseElement], *arguments: Any
    ) -> Compiled:
        """A hot statement, compiled once per shape (batch size, row or id count)."""
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= _STATEMENTS_KEPT:
                self._compiled.clear()
            compiled = self._compiled[key] = Compiled(build(*arguments), self.engine.dialect)
        return compiled

    def _claim_in_one_update(
        self,
        cursor: Any,
        name: str,
        count: int,
        lease_time: float,
        token: str,
        grace: float | None = None,
    ) -> list[StoredItem]:
        given = {"queue": name, "lease_time": lease_time, "token": token}
        if grace is None:
            claim = self._statement(("claim", count), self.statements.claim, count)
        else:
            claim = self._statement(("claim", count, "grace"), self.statements.claim, count, True)
            given["grace"] = grace
        cursor.execute(claim.sql, claim.parameters(given))
        return [
            StoredItem(item_id, data, created, expire, attempts, priority, token, error)
            for item_id, data, created, expire, attempts, priority, error in cursor.fetchall()
        ]

    def _claim_locked_then_update(
        self,
        cursor: Any,
        name: str,
        count: int,
        lease_time: float,
        token: str,
        grace: float | None = None,
    ) -> list[StoredItem]:
        lock = self._statement(("lock", count), self.statements.lock_claimable, count)
        cursor.execute(lock.sql, lock.parameters({"queue": name}))
        rows = cursor.fetchall()
        if not rows:
            return []
        now = float(rows[0][-1])
        ids = [row[0] for row in rows]
        graced = grace is not None
        claim = self._statement(
            ("mark", len(ids), graced), self.statements.mark_claimed, len(ids), graced
        )
        given = _numbered("id", ids)
        given.update(now=now, expire=now + lease_time, token=token)
        if grace is not None:
            given["ttl_floor"] = now + lease_time + grace
        cursor.execute(claim.sql, claim.parameters(given))
        if cursor.rowcount != len(ids):
            raise _LostRace
        return [
            StoredItem(
                item_id, data, created, now + lease_time, attempts + 1, priority, token, error
            )
            for item_id, data, created, attempts, priority, error, _ in rows
        ]

    def _in_one(
        self, cursor: Any, action: str, count: int, given: dict[str, Any]
    ) -> tuple[bool, list[StoredItem]]:
        """PostgreSQL: the settlement and the claim in one statement (data-modifying CTEs)."""
        statement = self._statement(
            ("settle_and_claim", action, count), self.statements.settle_and_claim, action, count
        )
        cursor.execute(statement.sql, statement.parameters(given))
        rows = cursor.fetchall()
        token = given["token"]
        return rows[0][0] == 1, [
            StoredItem(item_id, data, created, expire, attempts, priority, token, error)
            for _, item_id, data, created, expire, attempts, priority, error in rows
            if item_id is not None
        ]

    def _one_then_other(
        self, cursor: Any, action: str, count: int, given: dict[str, Any]
    ) -> tuple[bool, list[StoredItem]]:
        """The settlement's own statement, then the claim, in the caller's one transaction.

        The claim sees the settlement: a released item may be claimed again at once.
        """
        s = self.statements
        if action == "delete":
            statement = self._statement(("delete", 1), s.delete, 1)
            cursor.execute(
                statement.sql, statement.parameters({"id0": given["id"], "token": given["claim"]})
            )
            settled = cursor.rowcount == 1
        else:
            statement = self._statement(("settle", action), getattr, s, action)
            cursor.execute(statement.sql, statement.parameters(given))
            if action != "hold" and s.update_returning:  # returns the new expire, as alone
                settled = len(cursor.fetchall()) == 1
            else:
                settled = cursor.rowcount == 1
        claim = self._claim_locked_then_update if self._locking else self._claim_in_one_update
        return settled, claim(cursor, given["queue"], count, given["lease_time"], given["token"])

    def _delete(self, cursor: Any, chunks: list[tuple[str, list[ItemId]]]) -> int:
        deleted = 0
        for token, ids in chunks:
            if self.dialect == "postgresql":
                query = self._statement(("delete", 0), self.statements.delete, 0)
                given: dict[str, Any] = {"ids": ids}
            else:
                query = self._statement(("delete", len(ids)), self.statements.delete, len(ids))
                given = _numbered("id", ids)
            given["token"] = token
            cursor.execute(query.sql, query.parameters(given))
            deleted += cursor.rowcount
        return deleted

    def _insert(
        self,
        cursor: Any,
        payloads: Sequence[bytes],
        values: dict[str, Any],
        delayed: bool,
        ttl: bool = False,
    ) -> list[ItemId]:
        s = self.statements
        if self._returning_ids:
            rows = len(payloads)
            insert = self._statement(("insert", rows, delayed, ttl), s.insert, rows, delayed, ttl)
            given = _numbered("data", payloads)
            given.update(values)
            cursor.execute(insert.sql, insert.parameters(given))
            return [row[0] for row in cursor.fetchall()]
        # MySQL has no RETURNING and may interleave auto-increment values of
        # concurrent bulk inserts, so ids are only certain row by row.
        single = self._statement(("insert", 1, delayed, ttl), s.insert, 1, delayed, ttl)
        ids: list[ItemId] = []
        for payload in payloads:
            cursor.execute(single.sql, single.parameters({**values, "data0": payload}))
            ids.append(cursor.lastrowid)
        return ids

    def _chunks(self, name: str, payloads: Sequence[bytes]) -> list[Sequence[bytes]]:
        """The payloads of each INSERT: up to _CHUNK, and on MariaDB/MySQL what fits.

        A statement longer than the server's ``max_allowed_packet`` makes it
        drop the connection, which the client reports as a lost server: a
        permanent refusal dressed as an outage, retried for nothing. So
        payloads go in statements that fit, and one that fits in none is
        refused before anything is sent. The driver writes bytes in hex, two
        characters a byte: the largest payload is about half the limit.
        """
        most = self._max_statement
        if most is None:
            return [payloads[start : start + _CHUNK] for start in range(0, len(payloads), _CHUNK)]
        room = most - _STATEMENT_TEXT
        row = _ROW_TEXT + 2 * len(name.encode())  # each row repeats the queue's name
        chunks: list[Sequence[bytes]] = []
        chunk: list[bytes] = []
        size = 0
        for payload in payloads:
            cost = 2 * len(payload) + row
            if cost > room:
                raise PayloadError(
                    f"create_items on {self.url}: a payload of {len(payload):,} bytes is too "
                    f"large for the server, whose max_allowed_packet is {most:,} bytes (the "
                    f"driver sends bytes as hex, so payloads up to about {(room - row) // 2:,} "
                    "bytes fit); nothing was stored"
                )
            if chunk and (len(chunk) == _CHUNK or size + cost > room):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(payload)
            size += cost
        if chunk:
            chunks.append(chunk)
        return chunks

    # -- statements through SQLAlchemy ------------------------------------------------------

    def _changed(
        self, operation: str, statement: Callable[[Statements], sa.Executable], given: Any
    ) -> int:
        """How many rows one statement changed, in its own transaction."""
        return self._run(operation, lambda conn, s: int(conn.execute(statement(s), given).rowcount))

    def _settle(
        self,
        operation: str,
        item: QueueItem,
        statement: Callable[[Statements], sa.Update],
        given: dict[str, Any],
    ) -> float | None:
        """Run a holder's UPDATE if ``item``'s claim still holds; the new expire, or None."""
        if not item.token:  # a peeked item holds nothing
            return None
        params = {"id": item.item_id, "claim": item.token, **given}

        def update(conn: Connection, s: Statements) -> float | None:
            if s.update_returning:
                expire: float | None = conn.execute(statement(s), params).scalar_one_or_none()
                return expire
            if conn.execute(statement(s), params).rowcount != 1:
                return None
            again: float | None = conn.execute(
                s.read_expire, {"id": item.item_id}
            ).scalar_one_or_none()
            return again

        return self._run(operation, update)

    def _run(self, operation: str, work: Work[T], *, read: bool = False) -> T:
        """Run ``work`` in one SQLAlchemy transaction, again after a deadlock; errors wrapped."""

        def once() -> T:
            with self.engine.connect() as conn:
                if read:
                    conn.execution_options(bridge_read=True)
                with conn.begin():
                    return work(conn, self.statements)

        return self._retrying(operation, once)

    def _run_hot(self, operation: str, work: Callable[[Any], T], *, several: bool) -> T:
        """Run ``work`` on a DB-API cursor in one transaction (see driver.py)."""
        return self._retrying(operation, lambda: self._pinned.run(work, several=several))

    def _retrying(self, operation: str, once: Callable[[], T]) -> T:
        """``once()``, again after a deadlock or a lost race; errors wrapped."""
        with wrap_errors(self.url, operation):
            self._prepare()
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    return once()
                except sa.exc.DBAPIError as exc:
                    if attempt == _ATTEMPTS or not is_transient(exc):
                        raise
                except _LostRace:
                    if attempt == _ATTEMPTS:
                        raise BackendError(f"{operation} on {self.url} kept losing races") from None
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
            raise AssertionError("unreachable")

    def _prepare(self) -> None:
        if self._ready:
            return
        with self.engine.connect() as conn:
            check_server(conn)
            if self.dialect == "mysql":
                self._max_statement = max_statement(conn)
        # The dialect has now met its server: MariaDB or MySQL, what it returns.
        self.statements = Statements(self.table, self.engine.dialect)
        self._returning_ids = self.statements.insert_returning
        ensure_schema(self.engine, self.statements)
        self._ready = True


class _LostRace(Exception):
    """A conditional UPDATE matched fewer rows than it had locked: roll back, retry."""


def _settlement(settlement: Settlement) -> tuple[str, dict[str, Any]]:
    """The statement a settlement runs (by its name in ``Statements``) and its parameters."""
    item, action = settlement.item, str(settlement.action)
    given: dict[str, Any] = {"id": item.item_id, "claim": item.token}
    if action == "delay":
        given["seconds"] = settlement.delay or 0.0
    elif action == "fail":
        given["error"] = settlement.error or ""
        if settlement.delay is not None:
            action = "fail_delayed"
            given["seconds"] = settlement.delay
    elif action == "hold":
        given.update(reason=settlement.reason, error=settlement.error)
    elif action not in ("delete", "release"):
        raise ValueError(f"unknown settlement action {action!r}")
    return action, given


def _claimable_at_once(action: str, given: dict[str, Any]) -> bool:
    """Whether the settled item is claimable right after: then the claim must see it."""
    return action == "release" or (
        action in ("delay", "fail_delayed") and float(given["seconds"]) <= 0
    )


def _limited(name: str, limit: int | None) -> dict[str, Any]:
    return {"queue": name} if limit is None else {"queue": name, "limit": limit}


def _row_id(item_id: ItemId) -> int | None:
    """The row an id names, or None: ids here are integers (given as text by a CLI)."""
    if isinstance(item_id, str):
        item_id = item_id.strip()
        if not item_id.isascii() or not item_id.lstrip("-").isdigit():
            return None
        item_id = int(item_id)
    return item_id if -(2**63) <= item_id < 2**63 else None


def _numbered(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    """Values for the ``<prefix>0``, ``<prefix>1``... placeholders of a statement."""
    names = _NAMES[prefix]
    if len(values) > len(names):  # a claim of more than _CHUNK items on MariaDB
        names = [f"{prefix}{i}" for i in range(len(values))]
    return dict(zip(names, values, strict=False))
