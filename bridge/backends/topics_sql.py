"""Topics in two SQL tables of their own, beside the SQL backend's queue table.

Features:
    Reliable and shared, on SQLite, PostgreSQL and MariaDB/MySQL through
    SQLAlchemy Core, on the queue backend's own engine (so its pool, session
    settings and fork safety). Times are the database's clock.

    Order without skips: every publish to a topic runs in one transaction
    that first locks the topic's head row (``SELECT ... FOR UPDATE``; on
    SQLite the write lock ``BEGIN IMMEDIATE`` takes), reads the last
    position issued, inserts its messages at the next positions and writes
    the new last position. Publishes to one topic are therefore serialized:
    positions are allocated and committed in the same order, and a reader's
    statement (one snapshot: its subscriber's position and the messages come
    from one SELECT) that sees a message sees every message before it. A
    subscriber can never ack past a message that commits later with a
    smaller position, which an autoincrement id alone would allow (ids are
    allocated in one order and committed in another). The cost: publishers
    of one topic wait for each other (publishes to different topics do not).

    Expiry: a message is read and counted only while ``expire > now``.
    Expired rows are deleted by each publish (inside its transaction, by
    the ``(name, expire)`` index) and by a read at most once a second per
    topic and process, so a topic nobody publishes to still shrinks.

Storage layout:
    ``<table>_topic`` (``table`` is the SQL backend's option, default
    ``bridge_queue``): ``name``, ``position`` (the topic's sequence number,
    from 1), ``data`` (the encoded payload), ``published`` and ``expire``
    (epoch s); primary key ``(name, position)``, index
    ``<table>_topic_expire`` on ``(name, expire)``.
    ``<table>_topic_sub``: ``name``, ``subscriber``, ``position`` (the last
    position the subscriber acked); primary key ``(name, subscriber)``. The
    row with the empty subscriber ``''`` (no real subscriber can have that
    name) is the topic's head: its ``position`` is the last one issued,
    which is what publishes lock and what ``ack`` checks a marker against.
    Both tables are created on first use.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection

from bridge.backends.sql.backend import SqlBackend
from bridge.backends.sql.errors import is_transient, wrap_errors
from bridge.backends.sql.statements import database_now
from bridge.contract import Backend
from bridge.errors import ConfigurationError
from bridge.topics import Start, StoredMessage, TopicStats, TopicStore

_T = TypeVar("_T")
_HEAD = ""
_ATTEMPTS = 5
_POSITION = re.compile(r"^[1-9][0-9]{0,17}$")
_SWEEP_EVERY = 1.0
_LONGEST_IDENTIFIER = 63  # PostgreSQL cuts longer names silently


def topic_tables(table: str) -> tuple[sa.Table, sa.Table]:
    """The messages table and the subscribers' table for the queue table ``table``."""
    if len(table) + len("_topic_expire") > _LONGEST_IDENTIFIER:
        raise ConfigurationError(
            f"table name {table!r} is too long for topics: its tables add '_topic_expire' "
            f"and must stay within {_LONGEST_IDENTIFIER} characters"
        )
    metadata = sa.MetaData()
    messages = sa.Table(
        f"{table}_topic",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "data",
            sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("published", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False),
    )
    sa.Index(f"{table}_topic_expire", messages.c.name, messages.c.expire)
    subscribers = sa.Table(
        f"{table}_topic_sub",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("subscriber", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    return messages, subscribers


@final
class SqlTopics(TopicStore):
    """Topics on a :class:`~bridge.backends.sql.SqlBackend`'s database."""

    def __init__(self, backend: Backend) -> None:
        assert isinstance(backend, SqlBackend)
        self.url = backend.url
        self.engine = backend.engine
        self.dialect = backend.dialect
        self.messages, self.subscribers = topic_tables(backend.table.name)
        self.now = database_now(self.dialect)
        self._ready = False
        self._swept: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- the operations ---------------------------------------------------------------

    def publish(self, topic: str, payloads: Sequence[bytes], ttl: float) -> list[str]:
        def work(conn: Connection) -> list[str] | None:
            head = self._head(topic)
            locked = sa.select(self.subscribers.c.position, self.now).where(head).with_for_update()
            row = conn.execute(locked).first()
            if row is None:
                return None  # a new or deleted topic: its head row is made below
            last, now = int(row[0]), float(row[1])
            m = self.messages
            conn.execute(sa.delete(m).where(m.c.name == topic, m.c.expire <= now))
            rows = [
                {
                    "name": topic,
                    "position": last + i,
                    "data": payload,
                    "published": now,
                    "expire": now + ttl,
                }
                for i, payload in enumerate(payloads, 1)
            ]
            conn.execute(sa.insert(m), rows)
            s = self.subscribers
            conn.execute(sa.update(s).where(head).values(position=last + len(rows)))
            return [str(last + i) for i in range(1, len(rows) + 1)]

        for _ in range(_ATTEMPTS):
            positions = self._transaction("publish", work)
            if positions is not None:
                return positions
            self._transaction("publish", lambda conn: self._add_head(conn, topic))
        raise AssertionError("unreachable: the head row was added before the last attempt")

    def read(self, topic: str, subscriber: str, limit: int, start: Start) -> list[StoredMessage]:
        self._sweep(topic)
        if start == "latest" and not self._reading(
            "read", lambda c: self._known(c, topic, subscriber)
        ):
            self._transaction("read", lambda conn: self._start_latest(conn, topic, subscriber))
        s, m = self.subscribers, self.messages
        after = (
            sa.select(s.c.position)
            .where(s.c.name == topic, s.c.subscriber == subscriber)
            .scalar_subquery()
        )
        statement = (
            sa.select(m.c.position, m.c.data, m.c.published, m.c.expire)
            .where(
                m.c.name == topic, m.c.position > sa.func.coalesce(after, 0), m.c.expire > self.now
            )
            .order_by(m.c.position)
            .limit(limit)
        )
        rows = self._reading("read", lambda conn: conn.execute(statement).all())
        return [
            StoredMessage(str(p), bytes(data), float(published), float(expire))
            for p, data, published, expire in rows
        ]

    def ack(self, topic: str, subscriber: str, position: str) -> bool | None:
        if not _POSITION.match(position):
            return None
        wanted = int(position)
        s = self.subscribers

        def work(conn: Connection) -> bool | None:
            last = conn.execute(sa.select(s.c.position).where(self._head(topic))).scalar()
            if last is None or wanted > last:
                return None
            mine = (s.c.name == topic) & (s.c.subscriber == subscriber)
            forward = sa.update(s).where(mine, s.c.position < wanted).values(position=wanted)
            if conn.execute(forward).rowcount:
                return True
            new = {"name": topic, "subscriber": subscriber, "position": wanted}
            if self._inserted(conn, new):
                return True
            # Either it was at or past ``wanted``, or a racing ack inserted it just now.
            return bool(conn.execute(forward).rowcount)

        return self._transaction("ack", work)

    def stats(self, topic: str) -> TopicStats:
        m, s = self.messages, self.subscribers
        live = sa.select(
            sa.func.count(), sa.func.min(m.c.published), sa.func.max(m.c.published)
        ).where(m.c.name == topic, m.c.expire > self.now)
        subs = sa.select(sa.func.count()).where(s.c.name == topic, s.c.subscriber != _HEAD)

        def work(conn: Connection) -> TopicStats:
            count, oldest, newest = conn.execute(live).one()
            subscribers = conn.execute(subs).scalar_one()
            return TopicStats(
                int(count),
                None if oldest is None else float(oldest),
                None if newest is None else float(newest),
                int(subscribers),
            )

        return self._reading("stats", work)

    def delete_topic(self, topic: str) -> None:
        s = self.subscribers

        def work(conn: Connection) -> None:
            # The head row stays, locked here as a publish locks it, so that
            # positions are never issued twice: a marker from before the
            # delete can never name a message published after it.
            conn.execute(sa.select(s.c.position).where(self._head(topic)).with_for_update())
            conn.execute(sa.delete(self.messages).where(self.messages.c.name == topic))
            conn.execute(sa.delete(s).where(s.c.name == topic, s.c.subscriber != _HEAD))

        self._transaction("delete_topic", work)

    # -- helpers ------------------------------------------------------------------------------

    def _head(self, topic: str) -> sa.ColumnElement[bool]:
        s = self.subscribers
        return (s.c.name == topic) & (s.c.subscriber == _HEAD)

    def _insert_ignore(self) -> Any:
        s = self.subscribers
        if self.dialect == "postgresql":
            return postgresql.insert(s).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(s).on_conflict_do_nothing()
        return sa.insert(s).prefix_with("IGNORE")

    def _inserted(self, conn: Connection, row: dict[str, Any]) -> bool:
        """Insert a subscriber's row unless it exists; whether it was inserted."""
        if self.dialect == "mysql":
            return bool(conn.execute(self._insert_ignore(), row).rowcount)
        # psycopg reports -1 rows for an INSERT ... ON CONFLICT DO NOTHING.
        returning = self._insert_ignore().returning(self.subscribers.c.position)
        return conn.execute(returning, row).first() is not None

    def _add_head(self, conn: Connection, topic: str) -> None:
        conn.execute(self._insert_ignore(), {"name": topic, "subscriber": _HEAD, "position": 0})

    def _known(self, conn: Connection, topic: str, subscriber: str) -> bool:
        """Whether the subscriber has a position (a read, without the write lock)."""
        s = self.subscribers
        mine = (s.c.name == topic) & (s.c.subscriber == subscriber)
        return conn.execute(sa.select(s.c.position).where(mine)).first() is not None

    def _start_latest(self, conn: Connection, topic: str, subscriber: str) -> None:
        """Give a new subscriber the last position issued, so it reads only what follows."""
        if self._known(conn, topic, subscriber):
            return  # a racing first read set it
        last = (
            conn.execute(sa.select(self.subscribers.c.position).where(self._head(topic))).scalar()
            or 0
        )
        conn.execute(
            self._insert_ignore(), {"name": topic, "subscriber": subscriber, "position": last}
        )

    def _sweep(self, topic: str) -> None:
        """Delete expired messages, at most once a second per topic in this process."""
        now = time.monotonic()
        with self._lock:
            if now - self._swept.get(topic, -_SWEEP_EVERY) < _SWEEP_EVERY:
                return
            if len(self._swept) > 10_000:
                self._swept.clear()
            self._swept[topic] = now
        m = self.messages
        gone = sa.delete(m).where(m.c.name == topic, m.c.expire <= self.now)
        self._transaction("read", lambda conn: conn.execute(gone))

    def _prepare(self) -> None:
        if self._ready:
            return
        metadata = self.messages.metadata
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Another process created them between our check and our CREATE.
            inspector = sa.inspect(self.engine)
            if not all(inspector.has_table(t.name) for t in metadata.sorted_tables):
                raise
        self._ready = True

    @contextmanager
    def _connection(self, operation: str, read: bool) -> Iterator[Connection]:
        with wrap_errors(self.url, f"topic {operation}"):
            self._prepare()
            with self.engine.connect() as conn:
                if self.dialect == "postgresql" and not read:
                    # The engine autocommits; these need one transaction.
                    conn = conn.execution_options(isolation_level="READ COMMITTED")
                elif self.dialect == "sqlite" and read:
                    conn = conn.execution_options(bridge_read=True)  # no write lock
                yield conn

    def _transaction(self, operation: str, work: Callable[[Connection], _T]) -> _T:
        """``work`` in one transaction, run again after a deadlock or serialization failure."""
        for attempt in range(_ATTEMPTS):
            try:
                with self._connection(operation, read=False) as conn, conn.begin():
                    return work(conn)
            except Exception as exc:
                cause = exc.__cause__
                retry = isinstance(cause, sa.exc.DBAPIError) and is_transient(cause)
                if retry and attempt + 1 < _ATTEMPTS:
                    continue
                raise
        raise AssertionError("unreachable")

    def _reading(self, operation: str, work: Callable[[Connection], _T]) -> _T:
        with self._connection(operation, read=True) as conn:
            try:
                return work(conn)
            finally:
                if conn.in_transaction():
                    conn.rollback()
