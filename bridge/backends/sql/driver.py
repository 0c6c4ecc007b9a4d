"""The SQL backend's hot path: statements compiled once, run on a pinned DB-API connection.

Claims, deletes and inserts are what a worker does thousands of times a
second, and there SQLAlchemy's execution layer cost more than the database.
Measured on SQLite (WAL, NORMAL) on the 2-core CI machine: the statement
itself takes 8-50 us; SQLAlchemy's ``Connection.execute`` added about 80 us
per statement (execution context, events, result wrapping), a pool checkout
and its reset-on-return about 16 us, and ``pool_pre_ping`` one more round
trip. A claim + delete cycle ran at 1.1k/s through SQLAlchemy against 8.8k/s
on the bare driver (``python -m benchmarks``; docs/benchmarks.md).

So SQLAlchemy still *builds* every statement (one source for every
dialect, in ``statements.py``), and this module only *runs* the compiled SQL:

* :class:`Compiled` renders a statement once to the driver's SQL and keeps
  its parameter names, so a call is one ``cursor.execute``.
* :class:`PinnedConnections` keeps one DB-API connection per thread (and per
  process: a forked child opens its own), taken from the engine's pool, so
  there is no checkout per call. A connection idle for longer than
  ``PING_AFTER`` seconds is pinged first, which is what ``pool_pre_ping``
  did for every checkout; a busy worker never pays for it.
* Driver errors become SQLAlchemy's own exception classes (with the
  dialect's disconnect detection), so ``errors.py`` handles both paths
  alike, and a lost connection is dropped rather than reused. That
  includes a connection that cannot be opened: the pool raises the
  driver's own error there, where SQLAlchemy's ``engine.connect()`` would
  have wrapped it.

The few statements this module sends itself (transaction control and the
ping) are the constants below, so ``catalogue.py`` lists them too.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PING_AFTER = 1.0
T = TypeVar("T")

PING = "SELECT 1"
BEGIN = "BEGIN"
BEGIN_WRITE = "BEGIN IMMEDIATE"
"""SQLite: take the write lock up front rather than upgrade a read lock
halfway, which fails at once under contention ("database is locked")."""
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# MariaDB/MySQL errors after which the server closes the connection, though
# the dialect does not count them as disconnects: 1153, a statement over
# max_allowed_packet. Dropped at once, the next call opens a new one instead
# of failing on the closed one.
_CLOSING_MYSQL_CODES = {1153}

# Connections a forked child inherited: kept referenced and never closed
# here, since closing one would end the parent's session on the same socket.
_INHERITED: list[_Pinned] = []


class Compiled:
    """One statement rendered once for a dialect, with its parameter names."""

    __slots__ = ("names", "sql", "values")

    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        # Values fixed when the statement was built (the queue name, literals);
        # placeholders built with bindparam(name) are filled per call.
        self.values = {name: bind.effective_value for name, bind in compiled.binds.items()}
        self.names: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )

    def parameters(self, given: dict[str, Any]) -> Any:
        values = self.values | given
        if self.names is None:
            return values
        return [values[name] for name in self.names]


class _Pinned:
    """A thread's connection, checked out of the pool for as long as the thread lives."""

    pid = -1
    """The process that opened it; -1 until it is set up, so that ``__del__``
    leaves alone one whose set-up failed (the server down, say)."""

    def __init__(self, engine: Engine, dialect: str) -> None:
        # Raises the driver's own error when no connection can be opened:
        # the pool does not wrap it, PinnedConnections does.
        fairy = engine.raw_connection()
        try:
            driver: Any = cast(Any, fairy.dbapi_connection)
            cursor: Any = driver.cursor()
            if dialect == "mysql":
                # Single statements commit on their own, like PostgreSQL's
                # autocommit; several run in an explicit BEGIN ... COMMIT.
                driver.autocommit(True)
        except BaseException:
            fairy.invalidate()
            raise
        self.fairy, self.driver, self.cursor, self.dialect = fairy, driver, cursor, dialect
        self.used = time.monotonic()
        self.pid = os.getpid()

    def give_back(self) -> None:
        try:
            self.cursor.close()
            if self.dialect == "mysql":
                self.driver.autocommit(False)
            self.fairy.close()
        except Exception:  # a dead connection: the pool discards it
            if self.fairy.is_valid:
                self.fairy.invalidate()

    def __del__(self) -> None:
        # The thread has ended: its connection goes back to the pool.
        if self.pid == os.getpid() and self.fairy.is_valid:
            self.give_back()


class PinnedConnections:
    """One connection per thread for the hot path, and transactions on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        name = engine.dialect.name
        self.dialect = "mysql" if name in ("mysql", "mariadb") else name
        self._local = threading.local()
        self._all: weakref.WeakSet[_Pinned] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def run(self, work: Callable[[Any], T], *, several: bool) -> T:
        """``work(cursor)`` in one transaction; ``several`` if it runs more than one statement.

        Driver errors leave as SQLAlchemy exceptions; after a lost connection
        the thread's next call opens a new one. (A plain method rather than a
        context manager: this runs twice per item, and the generator cost.)
        """
        pinned = self._connection()
        cursor = pinned.cursor
        began = False
        try:
            # One statement is a transaction of its own. On SQLite too: a
            # statement that writes takes the write lock when it starts, as
            # BEGIN IMMEDIATE does, waiting under the busy timeout.
            if several:
                if self.dialect == "mysql":
                    pinned.driver.begin()
                else:
                    cursor.execute(BEGIN_WRITE if self.dialect == "sqlite" else BEGIN)
                began = True
            result = work(cursor)
            if began:
                if self.dialect == "mysql":
                    pinned.driver.commit()
                else:
                    cursor.execute(COMMIT)
            return result
        except self._driver_error as exc:
            lost = self.engine.dialect.is_disconnect(cast(Any, exc), pinned.driver, cursor)
            lost = lost or _closes_connection(exc)
            if began and not lost:
                self._roll_back(pinned)
            if lost:
                self._drop(pinned)
            raise self._wrapped(exc, lost) from exc
        except BaseException:
            if began:
                self._roll_back(pinned)
            raise
        finally:
            pinned.used = time.monotonic()

    def close(self) -> None:
        with self._lock:
            pinned, self._all = list(self._all), weakref.WeakSet()
        pid = os.getpid()
        for each in pinned:
            if each.pid == pid:
                each.give_back()
        self._local = threading.local()

    def forget(self) -> None:
        """In a forked child: drop the parent's connections, neither used nor closed."""
        with self._lock:
            _INHERITED.extend(self._all)
            self._all = weakref.WeakSet()
        self._local = threading.local()

    def _connection(self) -> _Pinned:
        pinned: _Pinned | None = getattr(self._local, "pinned", None)
        idle = pinned is not None and time.monotonic() - pinned.used > PING_AFTER
        if pinned is not None and idle and not self._alive(pinned):
            self._drop(pinned)
            pinned = None
        if pinned is None:
            try:
                pinned = _Pinned(self.engine, self.dialect)
            except self._driver_error as exc:
                # No connection could be opened (the server is down, say):
                # the pool raises the driver's own error, which would escape
                # errors.py; SQLAlchemy's engine.connect() wraps it so.
                lost = self.engine.dialect.is_disconnect(cast(Any, exc), None, None)
                raise self._wrapped(exc, lost) from exc
            self._local.pinned = pinned
            with self._lock:
                self._all.add(pinned)
        return pinned

    def _wrapped(self, exc: Exception, lost: bool) -> sa.exc.StatementError:
        """The driver's error as SQLAlchemy's class for it, as its execution layer raises it."""
        return sa.exc.DBAPIError.instance(
            None,
            None,
            exc,
            self._driver_error,
            connection_invalidated=lost,
            dialect=self.engine.dialect,
        )

    def _alive(self, pinned: _Pinned) -> bool:
        try:
            pinned.cursor.execute(PING)
            pinned.cursor.fetchall()
        except self._driver_error:
            return False
        return True

    def _roll_back(self, pinned: _Pinned) -> None:
        try:
            if self.dialect == "mysql":
                pinned.driver.rollback()
            else:
                pinned.cursor.execute(ROLLBACK)
        except self._driver_error:
            self._drop(pinned)

    def _drop(self, pinned: _Pinned) -> None:
        if pinned.fairy.is_valid:
            pinned.fairy.invalidate()
        if getattr(self._local, "pinned", None) is pinned:
            self._local.pinned = None


def _closes_connection(exc: Exception) -> bool:
    """Whether the server closed the connection after this error (MariaDB/MySQL)."""
    return bool(exc.args) and exc.args[0] in _CLOSING_MYSQL_CODES
