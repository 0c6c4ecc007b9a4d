"""Queues in one SQL table through SQLAlchemy Core: SQLite, PostgreSQL, MariaDB/MySQL.

Features:
    Reliable, shared by every process that reaches the database, with exact
    per-claim leases, extend_lease, delays, priority, claim tokens and
    attempts. Every time is the database's own clock, so workers on hosts
    with skewed clocks agree. An item is claimable when ``expire <= now``:
    expired leases and elapsed delays need no garbage-collection pass.

    Claims are atomic and use the claim index, so their cost does not grow
    with the queue:

    * PostgreSQL: one autocommitted ``WITH picked AS (SELECT ... FOR UPDATE
      SKIP LOCKED) UPDATE ... FROM picked RETURNING`` statement.
    * SQLite: one ``UPDATE ... WHERE item_id IN (SELECT ... LIMIT n)
      RETURNING`` inside ``BEGIN IMMEDIATE``; SQLite has one writer, so the
      write lock taken up front is the whole story (no "database is locked":
      WAL plus a busy timeout make writers queue instead of fail).
    * MariaDB 10.6+ / MySQL 8.0.1+: in one READ COMMITTED transaction,
      ``SELECT ... FOR UPDATE SKIP LOCKED`` in index order, then the UPDATE.

    The last word is always an UPDATE conditioned on the item still being
    claimable, whose row count (or returned rows) decides the claim.

URL format:
    ``sqlite:///relative/path.sqlite``, ``sqlite:////absolute/path.sqlite``,
    ``postgresql://user@host:5432/db`` (psycopg 3; ``postgresql+psycopg://``
    is the same), ``mysql://`` or ``mariadb://user@host:3306/db`` (PyMySQL).
    Any SQLAlchemy URL with an explicit driver also works.

Options:
    ``table``: the table's name (default ``bridge_queue``); one table holds
    many queues, as Drupal's ``queue`` table does.
    ``busy_timeout``: SQLite only, seconds a writer waits for the lock
    (default 30).
    ``synchronous``: SQLite only, ``NORMAL`` (default; with WAL, commits
    survive a process crash, the last ones may be lost on power loss) or
    ``FULL`` (survive power loss too, slower).
    ``pool_size``: connections kept per process (default 5).

Storage layout:
    Table ``bridge_queue``: ``item_id`` (autoincrement primary key),
    ``name`` (queue name), ``data`` (encoded payload), ``created`` (epoch s),
    ``expire`` (epoch s before which the item is not claimable: the lease
    deadline when leased, the delay's end when delayed, 0 when ready),
    ``priority`` (higher first), ``attempts`` (claims so far) and ``token``
    (the current claim's token; NULL once released or delayed, which is how
    a leased item is told from a delayed one). Index ``<table>_claim`` on ``(name, priority
    DESC, item_id)``: claim order, walked from its head. ``expire`` is kept
    out of the index so that a claim's UPDATE changes no indexed column.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from bridge.backends import missing_driver
from bridge.backends.sql_driver import Compiled, PinnedConnections
from bridge.backends.sql_errors import is_transient, wrap_errors
from bridge.contract import Capabilities
from bridge.errors import BackendError, ConfigurationError
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem
from bridge.urls import mask_password

_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_ATTEMPTS = 5
_STATEMENTS_KEPT = 512
# Rows per INSERT and ids per DELETE: far below every driver's parameter
# limit (SQLite's was 999 before 3.32), and few enough sizes to cache.
_CHUNK = 100
_NAMES = {prefix: [f"{prefix}{i}" for i in range(_CHUNK)] for prefix in ("id", "data")}
T = TypeVar("T")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    # A forked child must not use sockets its parent holds; close=False drops
    # the child's references without closing them under the parent's feet.
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def _queue_table(name: str) -> sa.Table:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql",
                                                        "mariadb"), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False, server_default="0"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("token", sa.String(32), nullable=True),
    )
    sa.Index(f"{name}_claim", table.c.name, table.c.priority.desc(), table.c.item_id)
    return table


def _database_now(dialect: str) -> sa.ColumnElement[float]:
    """The database's clock in epoch seconds, fixed for the whole statement."""
    if dialect == "postgresql":
        now: sa.ColumnElement[Any] = sa.extract("epoch", sa.func.statement_timestamp())
    elif dialect in ("mysql", "mariadb"):
        # The session time zone is UTC (set on connect), so this is exact.
        now = sa.func.unix_timestamp(sa.func.now(6))
    elif dialect == "sqlite":
        now = (sa.func.julianday("now") - 2440587.5) * 86400.0
    else:
        raise ConfigurationError(f"the sql backend does not support the {dialect} dialect")
    return sa.type_coerce(now, sa.Double())


class SqlBackend:
    """Queues in one SQL table; see the module docstring."""

    capabilities = Capabilities(
        reliable=True,
        shared=True,
        lease="exact",
        extend_lease=True,
        delay=True,
        priority=True,
        counts_leased=True,
    )

    def __init__(
        self,
        url: str,
        *,
        table: str = "bridge_queue",
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        pool_size: int = 5,
    ) -> None:
        self.url = mask_password(url)
        if not _IDENTIFIER.match(table):
            raise ConfigurationError(f"table must be a plain SQL identifier, not {table!r}")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.engine = _create_engine(url, busy_timeout, synchronous.upper(), pool_size)
        _engines.add(self.engine)
        self.dialect = self.engine.dialect.name
        self.table = _queue_table(table)
        self._now = _database_now(self.dialect)
        self._ready = False
        self._statements: dict[tuple[Any, ...], Compiled] = {}
        self._pinned = PinnedConnections(self.engine)

    # -- queue set-up -------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with wrap_errors(self.url, "create_queue"):
            self._prepare()

    def delete_queue(self, name: str) -> None:
        t = self.table
        self._run("delete_queue", lambda conn: conn.execute(sa.delete(t).where(t.c.name == name)))

    # -- items ----------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        values = {"name": name, "delay": float(delay), "priority": priority}
        chunks = [payloads[start:start + _CHUNK] for start in range(0, len(payloads), _CHUNK)]

        def insert(cursor: Any) -> list[ItemId]:
            ids: list[ItemId] = []
            for chunk in chunks:
                ids.extend(self._insert(cursor, chunk, values, bool(delay)))
            return ids

        several = len(chunks) > 1 or not self.engine.dialect.insert_returning
        return sorted(self._run_hot("create_items", insert, several=several))

    def number_of_items(self, name: str) -> int:
        t = self.table
        query = sa.select(sa.func.count()).select_from(t).where(t.c.name == name)
        return int(self._run("number_of_items", lambda c: c.execute(query).scalar_one(), read=True))

    def counts(self, name: str) -> ItemCounts:
        t = self.table
        waiting = t.c.expire > self._now
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((waiting & t.c.token.is_not(None), 1),
                                                 else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((waiting & t.c.token.is_(None), 1),
                                                 else_=0)), 0),
        ).where(t.c.name == name)
        total, leased, delayed = self._run("counts", lambda c: c.execute(query).one(), read=True)
        return ItemCounts(int(total) - int(leased) - int(delayed), int(leased), int(delayed))

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        token = secrets.token_hex(16)
        locking = self.dialect in ("mysql", "mariadb")
        claim = self._claim_locked_then_update if locking else self._claim_in_one_update
        claimed = self._run_hot("claim_items", lambda c: claim(c, name, count, lease_time, token),
                                several=locking)
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
        chunks = [(token, ids[start:start + size]) for token, ids in held.items()
                  for start in range(0, len(ids), size)]
        if not chunks:
            return 0

        def delete(cursor: Any) -> int:
            deleted = 0
            for token, ids in chunks:
                if self.dialect == "postgresql":
                    # One array parameter: one statement for any count, and
                    # no hundred named parameters for the driver to map.
                    query = self._compiled(("delete", 0), self._delete, 0)
                    given: dict[str, Any] = {"ids": ids}
                else:
                    query = self._compiled(("delete", len(ids)), self._delete, len(ids))
                    given = _numbered("id", ids)
                given["token"] = token
                cursor.execute(query.sql, query.parameters(given))
                deleted += cursor.rowcount
            return deleted

        return self._run_hot("delete_items", delete, several=len(chunks) > 1)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_expire(name, item, None, "release_item", end_claim=True) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._set_expire(name, item, delay, "delay_item", end_claim=True)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._set_expire(name, item, lease_time, "extend_lease", end_claim=False)

    def garbage_collection(self, name: str) -> None:
        """Nothing to collect: claims treat expired leases as claimable."""

    # -- inspection -------------------------------------------------------------

    def queue_names(self) -> dict[str, int]:
        t = self.table
        query = sa.select(t.c.name, sa.func.count()).group_by(t.c.name)
        rows = self._run("queue_names", lambda conn: conn.execute(query).all(), read=True)
        return {row[0]: int(row[1]) for row in rows}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        t = self.table
        waiting = sa.case((t.c.expire <= self._now, 0), else_=1)
        query = (
            sa.select(t.c.item_id, t.c.data, t.c.created, t.c.expire, t.c.attempts, t.c.priority)
            .where(t.c.name == name)
            .order_by(waiting, t.c.priority.desc(), t.c.item_id)
            .limit(limit)
        )
        rows = self._run("peek", lambda conn: conn.execute(query).all(), read=True)
        return [_stored(row, "") for row in rows]

    def release_all(self, name: str) -> int:
        t = self.table
        query = sa.update(t).where(t.c.name == name, t.c.expire > self._now).values(expire=0.0)
        return int(self._run("release_all", lambda conn: conn.execute(query).rowcount))

    def close(self) -> None:
        self._pinned.close()
        self.engine.dispose()

    # -- statements ---------------------------------------------------------------

    def _claimable(self, name: str) -> sa.Select[tuple[int]]:
        t = self.table
        return (
            sa.select(t.c.item_id)
            .where(t.c.name == name, t.c.expire <= self._now)
            .order_by(t.c.priority.desc(), t.c.item_id)
        )

    def _claim_in_one_update(
        self, cursor: Any, name: str, count: int, lease_time: float, token: str
    ) -> list[StoredItem]:
        claim = self._compiled(("claim", name, count), self._claim_update, name, count)
        cursor.execute(claim.sql, claim.parameters({"lease_time": lease_time, "token": token}))
        return [_stored(row, token) for row in cursor.fetchall()]

    def _claim_update(self, name: str, count: int) -> sa.Update:
        """The one-statement claim of PostgreSQL and SQLite."""
        t = self.table
        picked = self._claimable(name).limit(_inline(count))
        if self.dialect == "postgresql":
            chosen = picked.with_for_update(skip_locked=True).cte("picked")
            which = t.c.item_id == chosen.c.item_id
        else:
            which = t.c.item_id.in_(picked.scalar_subquery())
        return (
            sa.update(t)
            .where(which, t.c.expire <= self._now)
            .values(
                # Placeholders: every claim passes its own lease and token.
                expire=self._now + sa.bindparam("lease_time", 0.0, type_=sa.Double()),
                token=sa.bindparam("token", "", type_=sa.String()),
                attempts=t.c.attempts + 1,
            )
            .returning(t.c.item_id, t.c.data, t.c.created, t.c.expire, t.c.attempts,
                       t.c.priority)
        )

    def _claim_locked_then_update(
        self, cursor: Any, name: str, count: int, lease_time: float, token: str
    ) -> list[StoredItem]:
        lock = self._compiled(("lock", name, count), self._lock_claimable, name, count)
        cursor.execute(lock.sql, lock.parameters({}))
        rows = cursor.fetchall()
        if not rows:
            return []
        now = float(rows[0][-1])
        ids = [row[0] for row in rows]
        claim = self._compiled(("mark", len(ids)), self._mark_claimed, len(ids))
        given = _numbered("id", ids)
        given.update(now=now, expire=now + lease_time, token=token)
        cursor.execute(claim.sql, claim.parameters(given))
        if cursor.rowcount != len(ids):
            raise _LostRace
        return [
            StoredItem(item_id, data, created, now + lease_time, attempts + 1, priority, token)
            for item_id, data, created, attempts, priority, _ in rows
        ]

    def _lock_claimable(self, name: str, count: int) -> sa.Select[Any]:
        """MariaDB/MySQL's first step: lock the next claimable rows, and read the clock."""
        t = self.table
        return (
            self._claimable(name)
            .add_columns(t.c.data, t.c.created, t.c.attempts, t.c.priority, self._now)
            .limit(_inline(count))
            .with_for_update(skip_locked=True)
        )

    def _mark_claimed(self, count: int) -> sa.Update:
        """MariaDB/MySQL's second step: claim the locked rows if still claimable."""
        t = self.table
        return (
            sa.update(t)
            .where(t.c.item_id.in_(_placeholders("id", count, sa.BigInteger())),
                   t.c.expire <= sa.bindparam("now", type_=sa.Double()))
            .values(expire=sa.bindparam("expire", type_=sa.Double()),
                    token=sa.bindparam("token", type_=sa.String()),
                    attempts=t.c.attempts + 1)
        )

    def _delete(self, count: int) -> sa.Delete:
        """Delete up to ``count`` items (0: any number) of one claim, if it still holds them.

        By id and token only: the token already names the claim, and a
        ``name =`` term let PostgreSQL, on stale statistics, walk the claim
        index for the ids instead of the primary key (95 ms per delete at 20k
        items, against 0.3 ms).
        """
        t = self.table
        if count:
            ids: sa.ColumnElement[bool] = t.c.item_id.in_(
                _placeholders("id", count, sa.BigInteger()))
        else:  # PostgreSQL: the ids as one array
            ids = t.c.item_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.BigInteger())))
        return sa.delete(t).where(ids, t.c.token == sa.bindparam("token", type_=sa.String()))

    def _insert_rows(self, count: int, delayed: bool) -> sa.Insert:
        """One multi-row INSERT of ``count`` payloads, all with one name, delay and priority."""
        t = self.table
        delay: sa.BindParameter[float] = sa.bindparam("delay", type_=sa.Double())
        row = {
            "name": sa.bindparam("name", type_=sa.String()),
            "created": self._now,
            "expire": self._now + delay if delayed else sa.literal(0.0, sa.Double()),
            "priority": sa.bindparam("priority", type_=sa.Integer()),
        }
        insert = sa.insert(t).values(
            [{**row, "data": data} for data in _placeholders("data", count, sa.LargeBinary())])
        if self.engine.dialect.insert_returning:
            insert = insert.returning(t.c.item_id)
        return insert

    def _insert(
        self, cursor: Any, payloads: Sequence[bytes], values: dict[str, Any], delayed: bool
    ) -> list[ItemId]:
        if self.engine.dialect.insert_returning:
            insert = self._compiled(("insert", len(payloads), delayed), self._insert_rows,
                                    len(payloads), delayed)
            given = _numbered("data", payloads)
            given.update(values)
            cursor.execute(insert.sql, insert.parameters(given))
            return [row[0] for row in cursor.fetchall()]
        # MySQL has no RETURNING and may interleave auto-increment values of
        # concurrent bulk inserts, so ids are only certain row by row.
        single = self._compiled(("insert", 1, delayed), self._insert_rows, 1, delayed)
        ids: list[ItemId] = []
        for payload in payloads:
            cursor.execute(single.sql, single.parameters({**values, "data0": payload}))
            ids.append(cursor.lastrowid)
        return ids

    def _compiled(self, key: tuple[Any, ...], build: Callable[..., sa.ClauseElement],
                  *arguments: Any) -> Compiled:
        """The hot statements, each compiled once per queue, batch size or row count."""
        compiled = self._statements.get(key)
        if compiled is None:
            if len(self._statements) >= _STATEMENTS_KEPT:
                self._statements.clear()
            compiled = self._statements[key] = Compiled(build(*arguments), self.engine.dialect)
        return compiled

    def _set_expire(
        self, name: str, item: QueueItem, seconds: float | None, operation: str, *,
        end_claim: bool,
    ) -> float | None:
        """Set expire to now + seconds (0 when None) if ``item`` is still held."""
        t = self.table
        expire: Any = self._now + seconds if seconds is not None else 0.0
        held = sa.and_(t.c.name == name, t.c.item_id == item.item_id, t.c.token == item.token)
        values: dict[str, Any] = {"expire": expire}
        if end_claim:
            values["token"] = None

        def update(conn: Connection) -> float | None:
            query = sa.update(t).where(held).values(values)
            if self.engine.dialect.update_returning:
                return conn.execute(query.returning(t.c.expire)).scalar_one_or_none()
            # Without RETURNING: read the new expire under the row lock the
            # UPDATE took, found by id since the token may have been cleared.
            if conn.execute(query).rowcount != 1:
                return None
            again = sa.select(t.c.expire).where(t.c.item_id == item.item_id)
            return conn.execute(again).scalar_one_or_none()

        return self._run(operation, update)

    # -- connections --------------------------------------------------------------

    def _prepare(self) -> None:
        if self._ready:
            return
        with self.engine.connect() as conn:
            _check_server(conn)
        try:
            self.table.metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Another process created it between our check and our CREATE.
            if not sa.inspect(self.engine).has_table(self.table.name):
                raise
        self._ready = True

    def _run(self, operation: str, work: Callable[[Connection], T], *, read: bool = False) -> T:
        """Run ``work`` in one SQLAlchemy transaction, again after a deadlock; errors wrapped."""

        def once() -> T:
            with self.engine.connect() as conn:
                if read:
                    conn.execution_options(bridge_read=True)
                with conn.begin():
                    return work(conn)

        return self._retrying(operation, once)

    def _run_hot(self, operation: str, work: Callable[[Any], T], *, several: bool) -> T:
        """Run ``work`` on a DB-API cursor in one transaction (see sql_driver.py)."""

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


class _LostRace(Exception):
    """A conditional UPDATE matched fewer rows than it had locked: roll back, retry."""


def _placeholders(prefix: str, count: int, type_: Any) -> list[sa.BindParameter[Any]]:
    """``count`` parameters named ``<prefix>0``, ``<prefix>1``...; ``_numbered`` fills them."""
    return [sa.bindparam(f"{prefix}{i}", type_=type_) for i in range(count)]


def _numbered(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    names = _NAMES[prefix]
    if len(values) > len(names):  # a claim of more than _CHUNK items on MariaDB
        names = [f"{prefix}{i}" for i in range(len(values))]
    return dict(zip(names, values, strict=False))


def _inline(count: int) -> sa.ColumnElement[int]:
    """A LIMIT written into the SQL text rather than sent as a parameter.

    psycopg prepares a statement after five runs, and PostgreSQL may then
    plan it once for any parameters. Not knowing the LIMIT, that generic plan
    assumes a tenth of the queue and hash-joins it: measured at 2 s per claim
    on a 1M-item queue instead of 0.3 ms. Knowing it, every plan walks the
    claim index and stops after ``count`` rows.
    """
    return sa.literal_column(str(int(count)), sa.Integer())


def _stored(row: Sequence[Any], token: str) -> StoredItem:
    item_id, payload, created, expire, attempts, priority = row
    return StoredItem(item_id, payload, created, expire, attempts, priority, token)


def _create_engine(url: str, busy_timeout: float, synchronous: str, pool_size: int) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"{mask_password(url)} is not a database URL: {exc}") from None
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database is private to one connection; use memory:// "
                "for an in-process queue or sqlite:///path for a file"
            )
        directory = os.path.dirname(os.path.abspath(parsed.database))
        os.makedirs(directory, exist_ok=True)
        options["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
    else:
        options.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)
    if backend == "postgresql":
        # Every PostgreSQL operation is one statement: autocommit makes it one round trip.
        options["isolation_level"] = "AUTOCOMMIT"
    elif backend in ("mysql", "mariadb"):
        options["isolation_level"] = "READ COMMITTED"
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    try:
        engine = sa.create_engine(parsed, **options)
    except ImportError as exc:
        raise missing_driver(exc, url) from None
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"{mask_password(url)}: {exc}") from None
    _install_session_settings(engine, backend, synchronous)
    return engine


def _install_session_settings(engine: Engine, backend: str, synchronous: str) -> None:
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, record: Any) -> None:
            # The driver's own transaction handling would BEGIN DEFERRED and
            # then fail to upgrade the lock under contention; we begin ourselves.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            read = conn.get_execution_options().get("bridge_read", False)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    elif backend == "postgresql":

        @event.listens_for(engine, "connect")
        def _postgresql_connect(dbapi_conn: Any, record: Any) -> None:
            # Every ordered bridge query has an index in its order; a sort is
            # chosen only on stale statistics (a queue grown from empty since
            # the last ANALYZE, autovacuum off or not yet round), and then it
            # sorted the whole queue on every claim: 200 ms per claim at 30k
            # items, where the index walk takes 0.3 ms. Queries that must sort
            # (peek) still do; this only takes the sort off the table as a choice.
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET enable_sort = off")
            dbapi_conn.commit()

    elif backend in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _mysql_connect(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("SET time_zone = '+00:00'")
            cursor.close()


def _check_server(conn: Connection) -> None:
    dialect = conn.dialect
    version = dialect.server_version_info or ()
    if dialect.name in ("mysql", "mariadb"):
        mariadb = getattr(dialect, "is_mariadb", False)
        needed = (10, 6) if mariadb else (8, 0, 1)
        if tuple(version[: len(needed)]) < needed:
            product = "MariaDB" if mariadb else "MySQL"
            raise ConfigurationError(
                f"the sql backend needs {product} {'.'.join(map(str, needed))}+ "
                f"(SKIP LOCKED); this server is {'.'.join(map(str, version))}"
            )
