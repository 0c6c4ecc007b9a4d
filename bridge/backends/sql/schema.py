"""The queue table on first use: created if missing, brought up to date if older.

Tables made by an earlier bridge lack columns added since
(:data:`~bridge.backends.sql.statements.ADDED_COLUMNS`); each missing one
is added on first use with ``ALTER TABLE ... ADD COLUMN``, which rewrites
no table on PostgreSQL 11+, MariaDB 10.3+ or SQLite (a constant default or
none). Several processes may start at once: the one whose ALTER loses the
race finds the column there and goes on.

``state`` (first release to second): that version cleared an item's token
on release and delay and told a delayed item from a leased one by the
missing token; this one keeps the token (the holder may go on settling, as
in Drupal) and says which in ``state``. The items that version had leased
are marked so with the column, in one transaction where DDL is
transactional (PostgreSQL, SQLite). While processes of that version still
share the table, ``counts()`` may file their leases and delays under the
wrong state; claims, leases and tokens are unaffected.

``last_error``, ``held_at``, ``hold_reason`` (held items): NULL on every
existing row, which is what they are for an item that never failed. A
bridge without them never claims a held item (its ``expire`` is far ahead),
but its ``release_all`` would free one, as it frees any waiting item.

``name`` as bytes (MariaDB, MySQL): earlier tables have a VARCHAR, which
the server's default collation compares without case, accents or
trailing spaces, so ``pad`` and ``PAD`` were one queue. The column becomes
``VARBINARY(255)`` on first use. That ALTER copies the table (seconds per
million rows, writes wait meanwhile), so it is logged, and run by one
process at a time (``GET_LOCK``), the others finding it done. Rows keep
the names they were written with, so items written to ``PAD`` through a
queue called ``pad`` are in ``PAD`` again afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bridge.backends.sql.statements import ADDED_COLUMNS, STATE_COLUMN, Statements
from bridge.errors import BackendError

logger = logging.getLogger(__name__)

_MIGRATION_WAIT = 3600
"""How long a process waits, in seconds, for another one's ALTER of the names."""


def ensure_schema(engine: Engine, statements: Statements) -> None:
    """Create the table and its claim index if missing; add what an older table lacks."""
    table = statements.table
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:
        # Another process created it between our check and our CREATE.
        if not sa.inspect(engine).has_table(table.name):
            raise
    present = _columns(engine, table.name)
    for column in ADDED_COLUMNS:
        if column not in present:
            add_column(engine, statements, column)
    ensure_binary_names(engine, table, ["name"])


def ensure_binary_names(engine: Engine, table: sa.Table, columns: Sequence[str]) -> None:
    """MariaDB, MySQL: turn the table's VARCHAR name ``columns`` into bytes (see above)."""
    if engine.dialect.name not in ("mariadb", "mysql"):
        return
    lock = f"bridge:{table.name}"[:64]
    with engine.connect() as conn:
        if not _text_columns(conn, table, columns):
            return  # the usual case: one look, no lock
        if not conn.exec_driver_sql("SELECT GET_LOCK(%s, %s)", (lock, _MIGRATION_WAIT)).scalar():
            raise BackendError(
                f"{table.name}: another process's ALTER of its names took over "
                f"{_MIGRATION_WAIT} s; try again once it is done"
            )
        try:
            text = _text_columns(conn, table, columns)  # another process may have done it
            if text:
                logger.warning(
                    "Table %s: making %s VARBINARY(255), so that names differing only in "
                    "case, accents or trailing spaces are different queues; this copies "
                    "the table once.",
                    table.name,
                    ", ".join(text),
                )
                conn.exec_driver_sql(binary_names(engine.dialect, table, text))
        finally:
            conn.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (lock,))


def binary_names(dialect: sa.Dialect, table: sa.Table, columns: Sequence[str]) -> str:
    """The ALTER that makes a table's VARCHAR name ``columns`` bytes (MariaDB, MySQL)."""
    preparer = dialect.identifier_preparer
    changes = ", ".join(
        f"MODIFY COLUMN {preparer.format_column(table.c[c])} VARBINARY(255) NOT NULL"
        for c in columns
    )
    return f"ALTER TABLE {preparer.format_table(table)} {changes}"


def _text_columns(conn: Connection, table: sa.Table, columns: Sequence[str]) -> list[str]:
    """Those of ``columns`` that the database holds as text, not bytes."""
    found = {column["name"]: column["type"] for column in sa.inspect(conn).get_columns(table.name)}
    return [c for c in columns if found[c].python_type is not bytes]


def _columns(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {column["name"] for column in sa.inspect(conn).get_columns(table)}


def add_column(engine: Engine, statements: Statements, column: str) -> None:
    """Add ``column`` (with what it implies for existing rows), unless a racer did."""
    try:
        with engine.connect() as conn:
            _migrate(conn, statements, column)
    except sa.exc.DBAPIError:
        # Another process added it first: its ALTER won, ours failed.
        if column not in _columns(engine, statements.table.name):
            raise


def _migrate(conn: Connection, statements: Statements, column: str) -> None:
    if statements.kind == "postgresql":
        # The engine autocommits; the column and its values go in together.
        conn = conn.execution_options(isolation_level="READ COMMITTED")
    with conn.begin():
        conn.exec_driver_sql(statements.add_column(column))
        if column == STATE_COLUMN:
            conn.execute(statements.backfill_state)
