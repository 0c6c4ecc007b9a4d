"""Drupal's own ``queue`` table, shared with a Drupal site: SQLite, PostgreSQL, MariaDB/MySQL.

Features:
    Reads and writes the table Drupal's ``DatabaseQueue`` (and Drupal 7's
    ``SystemQueue``) keeps, as Drupal does, so a Drupal site and bridge
    workers can create and claim items of the same queues at once. Claims
    are Drupal-compatible compare-and-sets on ``expire`` (see
    ``drupal_statements.py``): a PHP ``claimItem`` and a bridge claim never
    both get an item. Reliable, shared, ordered as Drupal orders
    (``created``, then ``item_id``), with leases, delays, ``extend_lease``
    and the Queue UI's "remove leases" (``release_all``). Times are whole
    seconds, as in the table, on the database's clock: a lease or delay is
    rounded up to the second, and an ended one is claimable once its
    second has passed, as Drupal's garbage collection would reset it.

    What the table cannot hold, this layout does not pretend to keep
    (``docs/drupal.md`` explains each): no priority (refused), no
    ``attempts`` (every claim reports 1, so ``max_attempts`` is refused by
    the runner), no held items and no ``last_error`` (``fail_item`` keeps
    the lease or delays, the error is only logged), no ``browse``. Claim
    tokens are replaced by the ``expire`` the holder's claim wrote: the
    holder's delete, release, delay and extend match the row only while
    ``expire`` still has that value, which any later claim, release,
    garbage collection or "remove leases" changes. A release ends the claim
    (``settle_after_release`` is False): the row's ``expire`` is 0 then.

URL format:
    ``drupal+sqlite:///path/to/drupal.sqlite``,
    ``drupal+postgresql://user@host/drupal``,
    ``drupal+mysql://user@host/drupal`` (or ``drupal+mariadb://``): the SQL
    backend's URLs with ``drupal+`` in front. Payloads must be PHP-serialized:
    give the queue the ``php`` codec (option ``codec="php"``); anything else
    is refused at ``create_item`` before it reaches the table.

Options:
    ``table``: the queue table (default ``queue``; with a Drupal table
    prefix, ``<prefix>queue``). ``busy_timeout``, ``synchronous`` and
    ``pool_size`` as for the SQL backend.

Storage layout:
    Drupal's table, created as Drupal's schema defines it if missing:
    ``item_id`` serial primary key, ``name`` varchar(255), ``data`` blob
    (``serialize($data)``), ``expire`` big int (the lease's or delay's end,
    whole epoch seconds; 0 when claimable), ``created`` big int (epoch
    seconds); indexes ``name_created (name, created)`` and
    ``expire (expire)``. Nothing is added to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from bridge.backends.sql import drupal_statements as sql
from bridge.backends.sql.engine import check_server, create_engine
from bridge.backends.sql.errors import is_transient, wrap_errors
from bridge.contract import Backend, Capabilities
from bridge.errors import (
    ConfigurationError,
    PayloadError,
    UnsupportedOperationError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem
from bridge.php_serialize import loads

PREFIX = "drupal+"
TOKEN = "drupal"
"""Every claim's token: the claim itself is the ``expire`` it wrote (QueueItem.expire)."""
_ATTEMPTS = 5
T = TypeVar("T")


def drupal_table(name: str) -> sa.Table:
    """Drupal's ``queue`` table, as its schema declares it (D8+ ``DatabaseQueue``)."""
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column(
            "item_id",
            sa.Integer().with_variant(mysql.INTEGER(unsigned=True), "mysql", "mariadb"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("name", sa.String(255), nullable=False, server_default=""),
        sa.Column("data", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")),
        sa.Column("expire", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created", sa.BigInteger(), nullable=False, server_default="0"),
        # Ids never reused: a stale holder's id must never name a new item.
        sqlite_autoincrement=True,
    )
    sa.Index(f"{name}__name_created", table.c.name, table.c.created)
    sa.Index(f"{name}__expire", table.c.expire)
    return table


@final
class DrupalQueueBackend(Backend):
    """Drupal's ``queue`` table; see the module docstring."""

    capabilities = Capabilities(
        reliable=True,
        shared=True,
        # Whole seconds: a lease lasts from lease_time to lease_time + 1 s.
        lease="emulated",
        extend_lease=True,
        delay=True,
        priority=False,
        counts_leased=True,
        settle_after_release=False,
        remove_item=True,
        keeps_errors=False,  # no column for it
    )

    def __init__(
        self,
        url: str,
        *,
        table: str = "queue",
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        pool_size: int = 5,
    ) -> None:
        if not url.lower().startswith(PREFIX):
            raise ConfigurationError(f"a Drupal queue URL starts with {PREFIX}, not {url!r}")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.table = drupal_table(table)
        self.engine = create_engine(
            url[len(PREFIX) :], busy_timeout, synchronous.upper(), pool_size
        )
        name = self.engine.dialect.name
        self.dialect = "mysql" if name in ("mysql", "mariadb") else name
        if self.dialect not in sql.NOW:
            raise ConfigurationError(f"the drupal layout does not support {name}")
        self._quoted = self.engine.dialect.identifier_preparer.format_table(self.table)
        self._ready = False
        super().__init__(url)

    # -- the queue's items ------------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with wrap_errors(self.url, "create_queue"):
            self._prepare()

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        for payload in payloads:
            _check_serialized(payload, self.url)

        def insert(conn: Connection, now: float) -> list[ItemId]:
            expire = _deadline(now, delay) if delay > 0 else 0
            rows = [
                {"queue": name, "data": payload, "expire": expire, "created": math.floor(now)}
                for payload in payloads
            ]
            ids: list[ItemId] = []
            statement = self._text(sql.INSERT)
            for row in rows:  # row by row, so that every id is certain (MySQL)
                ids.append(self._insert_one(conn, statement, row))
            return ids

        return self._run("create_items", insert, transaction=True)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        def claim(conn: Connection, now: float) -> list[StoredItem]:
            expire = _deadline(now, lease_time)
            given = {"queue": name, "now": math.floor(now), "expire": expire}
            rows: Sequence[Any]
            if self.dialect == "mysql":
                rows = self._take(conn, count, given)
            else:
                rows = conn.execute(self._text(sql.CLAIM[self.dialect], n=count), given).all()
            claimed = [
                StoredItem(int(i), _bytes(data), float(created), _ends(expire), 1, 0, TOKEN)
                for i, data, created in rows
            ]
            claimed.sort(key=lambda item: (item.created, item.item_id))
            return claimed

        # MariaDB/MySQL: each statement commits alone, as PHP's do (see _take).
        return self._run("claim_items", claim, autocommit=self.dialect == "mysql")

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        held = [(item.item_id, _held(item)) for item in items if _held(item)]
        if not held:
            return 0

        def delete(conn: Connection, now: float) -> int:
            statement = self._text(sql.DELETE)
            return sum(conn.execute(statement, {"id": i, "held": e}).rowcount for i, e in held)

        return self._run("delete_items", delete, transaction=len(held) > 1, clock=False)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_expire("release_item", item, None) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        # A delay of 0 is claimable at once in bridge (Drupal's delayItem(0)
        # would wait for the next garbage collection): expire 0, a release.
        return self._set_expire("delay_item", item, delay if delay > 0 else None)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._set_expire("extend_lease", item, lease_time)

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        # The table has no column for the error: the runner has logged it.
        if delay is None:
            return item.expire if self._still_held(item) else None
        return self.delay_item(name, item, delay)

    # -- views --------------------------------------------------------------------------

    def counts(self, name: str) -> ItemCounts:
        def count(conn: Connection, now: float) -> ItemCounts:
            given = {"queue": name, "now": math.floor(now)}
            total, waiting = conn.execute(self._text(sql.COUNTS), given).one()
            # A lease and a delay are the same thing in the table: a future expire.
            return ItemCounts(ready=int(total) - int(waiting), leased=int(waiting), delayed=0)

        return self._run("counts", count, read=True)

    def queue_names(self) -> dict[str, int]:
        rows = self._run(
            "queue_names",
            lambda conn, now: conn.execute(self._text(sql.QUEUE_NAMES)).all(),
            clock=False,
            read=True,
        )
        return {str(name): int(count) for name, count in rows}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        def peek(conn: Connection, now: float) -> list[StoredItem]:
            given = {"queue": name, "now": math.floor(now)}
            rows = conn.execute(self._text(sql.PEEK, n=limit), given).all()
            return [
                StoredItem(int(i), _bytes(data), float(created), _ends(expire), 0, 0, "")
                for i, data, created, expire in rows
            ]

        return self._run("peek", peek, read=True)

    def oldest_ready_age(self, name: str) -> float | None:
        def oldest(conn: Connection, now: float) -> float | None:
            given = {"queue": name, "now": math.floor(now)}
            created = conn.execute(self._text(sql.OLDEST_READY), given).scalar_one_or_none()
            return None if created is None else max(0.0, now - float(created))

        return self._run("oldest_ready_age", oldest, read=True)

    # -- operators ------------------------------------------------------------------------

    def release_all(self, name: str) -> int:
        return self._run(
            "release_all",
            lambda conn, now: int(
                conn.execute(self._text(sql.RELEASE_ALL), {"queue": name}).rowcount
            ),
            clock=False,
        )

    def garbage_collection(self, name: str) -> None:
        # Claims here never need it; a Drupal site's claimItem does, for
        # leases bridge workers left behind when they died.
        self._run(
            "garbage_collection",
            lambda conn, now: conn.execute(
                self._text(sql.GARBAGE_COLLECTION), {"queue": name, "now": math.floor(now)}
            ),
        )

    def delete_queue(self, name: str) -> None:
        self._run(
            "delete_queue",
            lambda conn, now: conn.execute(self._text(sql.DELETE_QUEUE), {"queue": name}),
            clock=False,
        )

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        try:
            row_id = int(item_id)
        except ValueError:
            return False
        changed = self._run(
            "remove_item",
            lambda conn, now: (
                conn.execute(self._text(sql.REMOVE_ITEM), {"id": row_id, "queue": name}).rowcount
            ),
            clock=False,
        )
        return int(changed) == 1

    # -- what Drupal's table cannot hold ----------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        raise self._no_holding()

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        raise self._no_holding()

    def kick(self, name: str, limit: int | None) -> int:
        raise self._no_holding()

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        raise self._no_holding()

    def delete_held(self, name: str, limit: int | None) -> int:
        raise self._no_holding()

    def close(self) -> None:
        self.engine.dispose()

    def forget_connections(self) -> None:
        self.engine.dispose(close=False)

    # -- running statements -----------------------------------------------------------------

    def _no_holding(self) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"{self.url} is Drupal's queue table, which has no column to mark an item held "
            "(see docs/drupal.md)"
        )

    def _set_expire(self, operation: str, item: QueueItem, seconds: float | None) -> float | None:
        """Move the holder's ``expire`` (0 with ``seconds`` None); the new one, or None."""
        held = _held(item)
        if not held:
            return None

        def update(conn: Connection, now: float) -> float | None:
            expire = 0 if seconds is None else _deadline(now, seconds)
            given = {"id": item.item_id, "held": held, "expire": expire}
            changed = conn.execute(self._text(sql.SET_EXPIRE), given).rowcount
            return _ends(expire) if changed == 1 else None

        return self._run(operation, update, clock=seconds is not None)

    def _still_held(self, item: QueueItem) -> bool:
        held = _held(item)
        if not held:
            return False

        def still(conn: Connection, now: float) -> bool:
            given = {"id": item.item_id, "held": held}
            return int(conn.execute(self._text(sql.HELD), given).scalar_one()) == 1

        return self._run("fail_item", still, clock=False, read=True)

    def _take(self, conn: Connection, count: int, given: dict[str, Any]) -> list[Any]:
        """MariaDB/MySQL: claim as Drupal does, each row by its own compare-and-set.

        Candidates lost to another claimer are replaced by reading again,
        until ``count`` are taken or none is left (Drupal's loop).
        """
        taken: list[Any] = []
        while len(taken) < count:
            wanted = count - len(taken)
            rows = conn.execute(self._text(sql.CANDIDATES, n=wanted), given).all()
            for item_id, data, created, seen in rows:
                step = {"id": item_id, "seen": seen, "expire": given["expire"]}
                if conn.execute(self._text(sql.TAKE), step).rowcount == 1:
                    taken.append((item_id, data, created))
            if len(rows) < wanted:
                break
        return taken

    def _insert_one(self, conn: Connection, statement: sa.TextClause, row: dict[str, Any]) -> int:
        if self.dialect == "mysql":
            return int(conn.execute(statement, row).lastrowid)
        returning = self._text(sql.INSERT + " RETURNING item_id")
        return int(conn.execute(returning, row).scalar_one())

    def _now(self, conn: Connection) -> float:
        """The database's clock, epoch seconds: one clock for every bridge worker."""
        return float(conn.exec_driver_sql(sql.NOW[self.dialect]).scalar_one())

    def _text(self, statement: str, **shape: Any) -> sa.TextClause:
        return sa.text(statement.format(t=self._quoted, **shape))

    def _run(
        self,
        operation: str,
        work: Callable[[Connection, float], T],
        *,
        transaction: bool = False,
        clock: bool = True,
        read: bool = False,
        autocommit: bool = False,
    ) -> T:
        """``work(conn, now)`` with the database's clock, again after a deadlock."""
        with wrap_errors(self.url, operation):
            self._prepare()
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    with self.engine.connect() as conn:
                        if autocommit:
                            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                        elif transaction and self.dialect == "postgresql":
                            conn = conn.execution_options(isolation_level="READ COMMITTED")
                        elif read:  # SQLite: no write lock for a look
                            conn = conn.execution_options(bridge_read=True)
                        with conn.begin():
                            return work(conn, self._now(conn) if clock else 0.0)
                except sa.exc.DBAPIError as exc:
                    if attempt == _ATTEMPTS or not is_transient(exc):
                        raise
                time.sleep(0.005 * 2**attempt)
            raise AssertionError("unreachable")

    def _prepare(self) -> None:
        if self._ready:
            return
        with self.engine.connect() as conn:
            check_server(conn)
        try:
            self.table.metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Another process (or the Drupal site) created it meanwhile.
            if not sa.inspect(self.engine).has_table(self.table.name):
                raise
        self._ready = True


def _deadline(now: float, seconds: float) -> int:
    """The ``expire`` to write for a lease or delay of ``seconds`` from ``now``.

    As Drupal reads it: the last whole second the item waits, free once
    ``expire < now`` (garbage collection's test). So the item is free from
    ``ceil(now + seconds)`` on: never before ``now + seconds``, at most a
    second after, as Drupal's own ``time() + $lease_time`` is.
    """
    return max(1, math.ceil(now + seconds) - 1)


def _ends(expire: int) -> float:
    """When a row's ``expire`` lets the item go: the bridge ``expire`` (0 stays 0)."""
    return float(expire + 1) if expire else 0.0


def _held(item: QueueItem) -> int:
    """The row's ``expire`` the holder's claim wrote; 0 if it holds nothing (peeked, released)."""
    if item.token != TOKEN or not float(item.expire).is_integer() or item.expire < 2:
        return 0
    return int(item.expire) - 1


def _bytes(data: Any) -> bytes:
    return b"" if data is None else bytes(data)


def _check_serialized(payload: bytes, url: str) -> None:
    """Refuse what Drupal's ``unserialize`` could not read as the data it was given."""
    try:
        loads(payload)
    except PayloadError as exc:
        raise PayloadError(
            f"{url} is Drupal's queue table, whose data PHP reads with unserialize(): give "
            f"the queue the php codec (option codec='php'); this payload is not one ({exc})"
        ) from None
