"""The ceiling rows for the SQL backends: bridge's own statements, without bridge.

Each loop sends the statements bridge's SQL backend sends (read from its
compiled SQL) straight through the DB-API driver: the same table layout and
claim index, the same claim (under a lease, with a token), the same delete
fenced by the token, the same durability, and the payload decoded as a
handler would need it. What bridge adds on top, its facade,
SQLAlchemy and the pool, is what "bridge / raw" measures.

* PostgreSQL: psycopg 3, autocommit, server-side prepared statements.
* SQLite: the stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``, the claim in
  ``BEGIN IMMEDIATE``.
* MariaDB: PyMySQL, READ COMMITTED; ``SELECT ... FOR UPDATE SKIP LOCKED``
  then the UPDATE, in one transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

LEASE = 60.0
TABLE = "raw_bench"
_DATA = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def _handle(row: Any) -> Any:
    """What a worker gets: the decoded payload; the id is what the delete needs."""
    json.loads(row[1])
    return row[0]


class RawPostgres(System):
    label = "raw SQL loop"
    family = "postgresql"
    batches = (1, 100)
    settings = ("psycopg 3, autocommit, prepared statements, enable_sort=off, "
                "bridge's statements")

    _NOW = "extract(epoch from statement_timestamp())::float8"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
        self.conn.execute("SET enable_sort = off")  # as bridge's sessions (see sql.py)

    def reset(self) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (item_id bigserial PRIMARY KEY,"
            " name varchar(255) NOT NULL, data bytea NOT NULL, created float8 NOT NULL,"
            " expire float8 NOT NULL DEFAULT 0, priority integer NOT NULL DEFAULT 0,"
            " attempts integer NOT NULL DEFAULT 0, token varchar(32))"
        )
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_claim"
                          f" ON {TABLE} (name, priority DESC, item_id)")
        self.conn.execute(f"TRUNCATE {TABLE}")

    def enqueue(self, count: int, batch: int) -> None:
        insert = (f"INSERT INTO {TABLE} (name, data, created, expire, priority)"
                  f" VALUES (%s, %s, {self._NOW}, 0, 0) RETURNING item_id")
        with self.conn.cursor() as cursor:
            for start in range(0, count, batch):
                rows = [(QUEUE, _DATA)] * min(batch, count - start)
                if batch == 1:
                    cursor.execute(insert, rows[0])
                else:
                    with self.conn.transaction():
                        cursor.executemany(insert, rows, returning=True)

    def drain(self, batch: int) -> Drained:
        claim = (
            f"WITH picked AS (SELECT item_id FROM {TABLE}"
            f" WHERE name = %(name)s AND expire <= {self._NOW}"
            f" ORDER BY priority DESC, item_id LIMIT {batch} FOR UPDATE SKIP LOCKED)"
            f" UPDATE {TABLE} SET expire = {self._NOW} + %(lease)s, token = %(token)s,"
            f" attempts = {TABLE}.attempts + 1 FROM picked"
            f" WHERE {TABLE}.item_id = picked.item_id AND {TABLE}.expire <= {self._NOW}"
            f" RETURNING {TABLE}.item_id, {TABLE}.data, {TABLE}.created, {TABLE}.expire,"
            f" {TABLE}.attempts, {TABLE}.priority"
        )
        delete = f"DELETE FROM {TABLE} WHERE item_id = ANY(%s) AND token = %s"
        done = Counter()
        with self.conn.cursor() as cursor:
            while True:
                token = secrets.token_hex(16)
                cursor.execute(claim, {"name": QUEUE, "lease": LEASE, "token": token})
                ids = [_handle(row) for row in cursor.fetchall()]
                if not ids:
                    return done.drained()
                cursor.execute(delete, (ids, token))
                done(len(ids))

    def remaining(self) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {TABLE} WHERE name = %s",
                                (QUEUE,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


class RawSqlite(System):
    label = "raw SQL loop"
    family = "sqlite"
    batches = (1, 100)
    settings = "stdlib sqlite3, WAL, synchronous=NORMAL, BEGIN IMMEDIATE, bridge's statements"

    _NOW = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.removeprefix("sqlite:///")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def reset(self) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (item_id INTEGER PRIMARY KEY,"
            " name VARCHAR(255) NOT NULL, data BLOB NOT NULL, created FLOAT NOT NULL,"
            " expire FLOAT NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0,"
            " attempts INTEGER NOT NULL DEFAULT 0, token VARCHAR(32))"
        )
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_claim"
                          f" ON {TABLE} (name, priority DESC, item_id)")
        self.conn.execute(f"DELETE FROM {TABLE}")

    def enqueue(self, count: int, batch: int) -> None:
        insert = (f"INSERT INTO {TABLE} (name, data, created, expire, priority)"
                  f" VALUES (?, ?, {self._NOW}, 0, 0)")
        for start in range(0, count, batch):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(insert, [(QUEUE, _DATA)] * min(batch, count - start))
            self.conn.execute("COMMIT")

    def drain(self, batch: int) -> Drained:
        claim = (
            f"UPDATE {TABLE} SET expire = {self._NOW} + ?, token = ?, attempts = attempts + 1"
            f" WHERE item_id IN (SELECT item_id FROM {TABLE}"
            f" WHERE name = ? AND expire <= {self._NOW}"
            f" ORDER BY priority DESC, item_id LIMIT {batch}) AND expire <= {self._NOW}"
            " RETURNING item_id, data, created, expire, attempts, priority"
        )
        conn, done = self.conn, Counter()
        while True:
            token = secrets.token_hex(16)
            conn.execute("BEGIN IMMEDIATE")
            ids = [_handle(row) for row in conn.execute(claim, (LEASE, token, QUEUE)).fetchall()]
            conn.execute("COMMIT")
            if not ids:
                return done.drained()
            marks = ",".join("?" * len(ids))
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {TABLE} WHERE item_id IN ({marks}) AND token = ?",
                         (*ids, token))
            conn.execute("COMMIT")
            done(len(ids))

    def remaining(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class RawMariadb(System):
    label = "raw SQL loop"
    family = "mariadb"
    batches = (1, 100)
    settings = "PyMySQL, READ COMMITTED, SKIP LOCKED then UPDATE, bridge's statements"

    _NOW = "unix_timestamp(now(6))"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import pymysql

        parts = urlsplit(url)
        self.conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=parts.username or "root", password=parts.password or "",
            database=parts.path.lstrip("/"), charset="utf8mb4", autocommit=True,
        )
        with self.conn.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def _run(self, sql: str, args: Any = None) -> Any:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def reset(self) -> None:
        self._run(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (item_id BIGINT AUTO_INCREMENT PRIMARY KEY,"
            " name VARCHAR(255) NOT NULL, data LONGBLOB NOT NULL, created DOUBLE NOT NULL,"
            " expire DOUBLE NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0,"
            " attempts INTEGER NOT NULL DEFAULT 0, token VARCHAR(32),"
            f" INDEX {TABLE}_claim (name, priority DESC, item_id))"
        )
        self._run(f"TRUNCATE {TABLE}")

    def enqueue(self, count: int, batch: int) -> None:
        insert = (f"INSERT INTO {TABLE} (name, data, created, expire, priority)"
                  f" VALUES (%s, %s, {self._NOW}, 0, 0)")
        with self.conn.cursor() as cursor:
            for start in range(0, count, batch):
                rows = [(QUEUE, _DATA)] * min(batch, count - start)
                if batch == 1:
                    cursor.execute(insert, rows[0])
                else:
                    self.conn.begin()
                    cursor.executemany(insert, rows)
                    self.conn.commit()

    def drain(self, batch: int) -> Drained:
        lock = (f"SELECT item_id, data, created, attempts, priority, {self._NOW} FROM {TABLE}"
                f" WHERE name = %s AND expire <= {self._NOW}"
                f" ORDER BY priority DESC, item_id LIMIT {batch} FOR UPDATE SKIP LOCKED")
        done = Counter()
        with self.conn.cursor() as cursor:
            while True:
                token = secrets.token_hex(16)
                self.conn.begin()
                cursor.execute(lock, (QUEUE,))
                rows = cursor.fetchall()
                if not rows:
                    self.conn.commit()
                    return done.drained()
                now, ids = float(rows[0][-1]), [_handle(row) for row in rows]
                marks = ",".join(["%s"] * len(ids))
                cursor.execute(f"UPDATE {TABLE} SET expire = %s, token = %s,"
                               f" attempts = attempts + 1 WHERE item_id IN ({marks})"
                               " AND expire <= %s", (now + LEASE, token, *ids, now))
                self.conn.commit()
                cursor.execute(f"DELETE FROM {TABLE} WHERE item_id IN ({marks})"
                               " AND token = %s", (*ids, token))
                done(len(ids))

    def remaining(self) -> int:
        return int(self._run(f"SELECT count(*) FROM {TABLE}")[0][0])

    def close(self) -> None:
        self.conn.close()
