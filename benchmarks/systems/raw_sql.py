"""The ceiling rows for the SQL backends: bridge's own statements, without bridge.

Each loop sends the statements bridge's SQL backend sends, taken from
``bridge.backends.sql.statements`` and compiled as the backend compiles
them (the text in ``bridge/backends/sql/queries/<dialect>.sql``), straight
through the DB-API driver: the same table and claim index, the same session
settings, the same claim (under a lease, with a token), the same delete
fenced by the token, the same multi-row insert, the same transactions, and
the payload decoded as a handler would need it. What bridge adds on top,
its facade, its statement cache and connection pinning, is what
"bridge / raw" measures.

* PostgreSQL: psycopg 3, autocommit, server-side prepared statements.
* SQLite: the stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``, every write
  in ``BEGIN IMMEDIATE``.
* MariaDB: PyMySQL, READ COMMITTED; the locking SELECT then the UPDATE, in
  one transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System
from bridge.backends.sql.catalogue import statements_for
from bridge.backends.sql.driver import BEGIN_WRITE, COMMIT, Compiled
from bridge.backends.sql.engine import session_statements
from bridge.backends.sql.statements import Statements

LEASE = 60.0
TABLE = "raw_bench"
_DATA = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def _handle(row: Any) -> Any:
    """What a worker gets: the decoded payload; the id is what the delete needs."""
    json.loads(row[1])
    return row[0]


class _Bridges:
    """bridge's statements on the benchmark's table, compiled once per shape."""

    def __init__(self, kind: str) -> None:
        self.statements: Statements = statements_for(kind, TABLE)
        self._compiled: dict[tuple[Any, ...], Compiled] = {}

    def schema(self) -> list[str]:
        s, dialect = self.statements, self.statements.dialect
        return [
            str(ddl.compile(dialect=dialect)) for ddl in (s.create_table(), s.create_claim_index())
        ]

    def insert(self, rows: int) -> tuple[Compiled, Any]:
        """The insert of ``rows`` payloads, and its parameters."""
        query = self._get(("insert", rows), lambda: self.statements.insert(rows, False))
        given = {f"data{i}": _DATA for i in range(rows)}
        return query, query.parameters({"queue": QUEUE, "priority": 0, **given})

    def claim(self, batch: int) -> Compiled:
        return self._get(("claim", batch), lambda: self.statements.claim(batch))

    def lock(self, batch: int) -> Compiled:
        return self._get(("lock", batch), lambda: self.statements.lock_claimable(batch))

    def mark(self, ids: int) -> Compiled:
        return self._get(("mark", ids), lambda: self.statements.mark_claimed(ids))

    def delete(self, ids: int) -> Compiled:
        return self._get(("delete", ids), lambda: self.statements.delete(ids))

    def count(self) -> tuple[Compiled, Any]:
        query = self._get(("counts",), lambda: self.statements.counts)
        return query, query.parameters({"queue": QUEUE})

    def _get(self, key: tuple[Any, ...], build: Any) -> Compiled:
        if key not in self._compiled:
            self._compiled[key] = Compiled(build(), self.statements.dialect)
        return self._compiled[key]


def _numbered(ids: list[Any]) -> dict[str, Any]:
    return {f"id{i}": item_id for i, item_id in enumerate(ids)}


class RawPostgres(System):
    label = "raw SQL loop"
    family = "postgresql"
    batches = (1, 100)
    settings = "psycopg 3, autocommit, prepared statements, enable_sort=off, bridge's statements"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import psycopg

        self.sql = _Bridges("postgresql")
        self.conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
        for statement in session_statements("postgresql"):
            self.conn.execute(statement)

    def reset(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        for ddl in self.sql.schema():
            self.conn.execute(ddl)

    def enqueue(self, count: int, batch: int) -> None:
        with self.conn.cursor() as cursor:
            for start in range(0, count, batch):
                insert, params = self.sql.insert(min(batch, count - start))
                cursor.execute(insert.sql, params)
                cursor.fetchall()

    def drain(self, batch: int) -> Drained:
        claim, delete = self.sql.claim(batch), self.sql.delete(0)
        done = Counter()
        with self.conn.cursor() as cursor:
            while True:
                token = secrets.token_hex(16)
                cursor.execute(
                    claim.sql,
                    claim.parameters({"queue": QUEUE, "lease_time": LEASE, "token": token}),
                )
                ids = [_handle(row) for row in cursor.fetchall()]
                if not ids:
                    return done.drained()
                cursor.execute(delete.sql, delete.parameters({"ids": ids, "token": token}))
                done(len(ids))

    def remaining(self) -> int:
        query, params = self.sql.count()
        row = self.conn.execute(query.sql, params).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


class RawSqlite(System):
    label = "raw SQL loop"
    family = "sqlite"
    batches = (1, 100)
    settings = "stdlib sqlite3, WAL, synchronous=NORMAL, BEGIN IMMEDIATE, bridge's statements"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.removeprefix("sqlite:///")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.sql = _Bridges("sqlite")
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        for statement in session_statements("sqlite"):
            self.conn.execute(statement)

    def reset(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        for ddl in self.sql.schema():
            self.conn.execute(ddl)

    def enqueue(self, count: int, batch: int) -> None:
        conn = self.conn
        for start in range(0, count, batch):
            insert, params = self.sql.insert(min(batch, count - start))
            conn.execute(BEGIN_WRITE)
            conn.execute(insert.sql, params).fetchall()
            conn.execute(COMMIT)

    def drain(self, batch: int) -> Drained:
        claim, conn, done = self.sql.claim(batch), self.conn, Counter()
        while True:
            token = secrets.token_hex(16)
            conn.execute(BEGIN_WRITE)
            rows = conn.execute(
                claim.sql, claim.parameters({"queue": QUEUE, "lease_time": LEASE, "token": token})
            ).fetchall()
            conn.execute(COMMIT)
            ids = [_handle(row) for row in rows]
            if not ids:
                return done.drained()
            delete = self.sql.delete(len(ids))
            conn.execute(BEGIN_WRITE)
            conn.execute(delete.sql, delete.parameters({**_numbered(ids), "token": token}))
            conn.execute(COMMIT)
            done(len(ids))

    def remaining(self) -> int:
        query, params = self.sql.count()
        return int(self.conn.execute(query.sql, params).fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class RawMariadb(System):
    label = "raw SQL loop"
    family = "mariadb"
    batches = (1, 100)
    settings = "PyMySQL, READ COMMITTED, SKIP LOCKED then UPDATE, bridge's statements"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import pymysql

        parts = urlsplit(url)
        self.sql = _Bridges("mariadb")
        self.conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=parts.path.lstrip("/"),
            charset="utf8mb4",
            autocommit=True,
        )
        with self.conn.cursor() as cursor:
            for statement in session_statements("mysql"):
                cursor.execute(statement)
            # What bridge asks of SQLAlchemy (isolation_level) for its engine.
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def _run(self, sql: str, args: Any = None) -> Any:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def reset(self) -> None:
        self._run(f"DROP TABLE IF EXISTS {TABLE}")
        for ddl in self.sql.schema():
            self._run(ddl)

    def enqueue(self, count: int, batch: int) -> None:
        with self.conn.cursor() as cursor:
            for start in range(0, count, batch):
                insert, params = self.sql.insert(min(batch, count - start))
                cursor.execute(insert.sql, params)
                cursor.fetchall()

    def drain(self, batch: int) -> Drained:
        import pymysql

        lock, done = self.sql.lock(batch), Counter()
        with self.conn.cursor() as cursor:
            while True:
                token = secrets.token_hex(16)
                try:
                    ids = self._claim(cursor, lock, token)
                except pymysql.err.OperationalError as exc:
                    # InnoDB picks a victim when 4 batched claimers' gap locks
                    # cross; bridge retries these (sql/errors.py), so the
                    # ceiling does too.
                    if exc.args[0] not in (1205, 1213):
                        raise
                    self.conn.rollback()
                    continue
                if not ids:
                    return done.drained()
                delete = self.sql.delete(len(ids))
                cursor.execute(delete.sql, delete.parameters({**_numbered(ids), "token": token}))
                done(len(ids))

    def _claim(self, cursor: Any, lock: Compiled, token: str) -> list[Any]:
        self.conn.begin()
        cursor.execute(lock.sql, lock.parameters({"queue": QUEUE}))
        rows = cursor.fetchall()
        if not rows:
            self.conn.commit()
            return []
        now, ids = float(rows[0][-1]), [_handle(row) for row in rows]
        mark = self.sql.mark(len(ids))
        cursor.execute(
            mark.sql,
            mark.parameters({**_numbered(ids), "now": now, "expire": now + LEASE, "token": token}),
        )
        self.conn.commit()
        return ids

    def remaining(self) -> int:
        query, params = self.sql.count()
        return int(self._run(query.sql, params)[0][0])

    def close(self) -> None:
        self.conn.close()
