"""The queue table on first use: created if missing, brought up to date if older.

Tables made by an earlier bridge have no ``state`` column. That version
cleared an item's token on release and delay and told a delayed item from a
leased one by the missing token; this one keeps the token (the holder may
go on settling, as in Drupal) and says which in ``state``. The column is
added on first use, with ``ALTER TABLE ... ADD COLUMN`` (no table rewrite on
PostgreSQL 11+, MariaDB 10.3+ or SQLite), and the items that version had
leased are marked so; both run in one transaction where DDL is
transactional (PostgreSQL, SQLite). Several processes may start at once:
the one that loses the race finds the column there and goes on.

While processes of the earlier version still share the table, ``counts()``
may file their leases and delays under the wrong state; claims, leases and
tokens are unaffected.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bridge.backends.sql.statements import STATE_COLUMN, Statements


def ensure_schema(engine: Engine, statements: Statements) -> None:
    """Create the table and its claim index if missing; add what an older table lacks."""
    table = statements.table
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:
        # Another process created it between our check and our CREATE.
        if not sa.inspect(engine).has_table(table.name):
            raise
    if not _has_state(engine, table.name):
        _add_state(engine, statements)


def _has_state(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:
        return any(column["name"] == STATE_COLUMN for column in sa.inspect(conn).get_columns(table))


def _add_state(engine: Engine, statements: Statements) -> None:
    try:
        with engine.connect() as conn:
            _migrate(conn, statements)
    except sa.exc.DBAPIError:
        # Another process added it first: its ALTER won, ours failed.
        if not _has_state(engine, statements.table.name):
            raise


def _migrate(conn: Connection, statements: Statements) -> None:
    if statements.kind == "postgresql":
        # The engine autocommits; the column and its values go in together.
        conn = conn.execution_options(isolation_level="READ COMMITTED")
    with conn.begin():
        conn.exec_driver_sql(statements.add_state_column())
        conn.execute(statements.backfill_state)
