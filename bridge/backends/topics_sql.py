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
    Both tables are created on first use. Their statements are built in
    ``sql/topic_statements.py`` and listed in ``sql/queries/<dialect>.sql``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar, final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.backends.sql.backend import SqlBackend
from bridge.backends.sql.errors import is_transient, wrap_errors
from bridge.backends.sql.schema import ensure_binary_names
from bridge.backends.sql.topic_statements import HEAD, TopicStatements
from bridge.contract import Backend
from bridge.topics import Start, StoredMessage, TopicStats, TopicStore

_T = TypeVar("_T")
_ATTEMPTS = 5
_POSITION = re.compile(r"^[1-9][0-9]{0,17}$")
_SWEEP_EVERY = 1.0


@final
class SqlTopics(TopicStore):
    """Topics on a :class:`~bridge.backends.sql.SqlBackend`'s database."""

    def __init__(self, backend: Backend) -> None:
        assert isinstance(backend, SqlBackend)
        self.url = backend.url
        self.engine = backend.engine
        self.dialect = backend.dialect
        self.statements = TopicStatements(backend.table.name, backend.dialect)
        self._ready = False
        self._swept: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- the operations ---------------------------------------------------------------

    def publish(self, topic: str, payloads: Sequence[bytes], ttl: float) -> list[str]:
        st = self.statements
        named = {"topic": topic}

        def work(conn: Connection) -> list[str] | None:
            row = conn.execute(st.lock_head, named).first()
            if row is None:
                return None  # a new or deleted topic: its head row is made below
            last, now = int(row[0]), float(row[1])
            conn.execute(st.delete_expired, named)
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
            conn.execute(st.insert_messages, rows)
            conn.execute(st.set_head, {"topic": topic, "last": last + len(rows)})
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
        named = {"topic": topic, "subscriber_name": subscriber, "limit": limit}
        rows = self._reading("read", lambda conn: conn.execute(self.statements.read, named).all())
        return [
            StoredMessage(str(p), bytes(data), float(published), float(expire))
            for p, data, published, expire in rows
        ]

    def ack(self, topic: str, subscriber: str, position: str) -> bool | None:
        if not _POSITION.match(position):
            return None
        wanted = int(position)
        st = self.statements
        named = {"topic": topic, "subscriber_name": subscriber, "wanted": wanted}

        def work(conn: Connection) -> bool | None:
            last = conn.execute(st.last_position, named).scalar()
            if last is None or wanted > last:
                return None
            if conn.execute(st.ack_forward, named).rowcount:
                return True
            new = {"name": topic, "subscriber": subscriber, "position": wanted}
            if self._inserted(conn, new):
                return True
            # Either it was at or past ``wanted``, or a racing ack inserted it just now.
            return bool(conn.execute(st.ack_forward, named).rowcount)

        return self._transaction("ack", work)

    def stats(self, topic: str) -> TopicStats:
        st = self.statements
        named = {"topic": topic}

        def work(conn: Connection) -> TopicStats:
            count, oldest, newest = conn.execute(st.live_stats, named).one()
            subscribers = conn.execute(st.subscriber_count, named).scalar_one()
            return TopicStats(
                int(count),
                None if oldest is None else float(oldest),
                None if newest is None else float(newest),
                int(subscribers),
            )

        return self._reading("stats", work)

    def delete_topic(self, topic: str) -> None:
        st = self.statements
        named = {"topic": topic}

        def work(conn: Connection) -> None:
            # The head row stays, locked here as a publish locks it, so that
            # positions are never issued twice: a marker from before the
            # delete can never name a message published after it.
            conn.execute(st.lock_head, named)
            conn.execute(st.delete_messages, named)
            conn.execute(st.delete_subscribers, named)

        self._transaction("delete_topic", work)

    # -- helpers ------------------------------------------------------------------------------

    def _inserted(self, conn: Connection, row: dict[str, object]) -> bool:
        """Insert a subscriber's row unless it exists; whether it was inserted."""
        st = self.statements
        if st.add_subscriber_returning is None:
            return bool(conn.execute(st.add_subscriber, row).rowcount)
        return conn.execute(st.add_subscriber_returning, row).first() is not None

    def _add_head(self, conn: Connection, topic: str) -> None:
        conn.execute(
            self.statements.add_subscriber, {"name": topic, "subscriber": HEAD, "position": 0}
        )

    def _known(self, conn: Connection, topic: str, subscriber: str) -> bool:
        """Whether the subscriber has a position (a read, without the write lock)."""
        named = {"topic": topic, "subscriber_name": subscriber}
        return conn.execute(self.statements.subscriber_position, named).first() is not None

    def _start_latest(self, conn: Connection, topic: str, subscriber: str) -> None:
        """Give a new subscriber the last position issued, so it reads only what follows."""
        if self._known(conn, topic, subscriber):
            return  # a racing first read set it
        last = conn.execute(self.statements.last_position, {"topic": topic}).scalar() or 0
        conn.execute(
            self.statements.add_subscriber,
            {"name": topic, "subscriber": subscriber, "position": last},
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
        gone = self.statements.delete_expired
        self._transaction("read", lambda conn: conn.execute(gone, {"topic": topic}))

    def _prepare(self) -> None:
        if self._ready:
            return
        metadata = self.statements.messages.metadata
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Another process created them between our check and our CREATE.
            inspector = sa.inspect(self.engine)
            if not all(inspector.has_table(t.name) for t in metadata.sorted_tables):
                raise
        # Tables made before names were bytes on MariaDB and MySQL (sql/schema.py).
        ensure_binary_names(self.engine, self.statements.messages, ["name"])
        ensure_binary_names(self.engine, self.statements.subscribers, ["name", "subscriber"])
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
