"""Every statement the SQL backend sends, named and rendered per dialect.

``queries/<kind>.sql`` holds what :func:`render` returns for each kind
(``sqlite``, ``postgresql``, ``mariadb``, ``mysql``): the compiled SQL, as
the driver receives it, of every statement in ``statements.py``, plus the
session set-up, transaction control and ping the engine and driver send.
``tests/test_sql_statements.py`` fails when a file and its rendering
differ, and checks that a live backend sends nothing that is not listed;
``BRIDGE_WRITE_SQL=1`` rewrites the files.

A statement whose text depends on a count is listed for a few counts
(``[n=1]``, ``[n=100]``...); the others differ only in how often the
repeated part repeats. Rendering needs no server: each dialect is built
offline, configured as bridge's engine is once connected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.schema import DDLElement

from bridge.backends.sql.driver import BEGIN, BEGIN_WRITE, COMMIT, PING, ROLLBACK, Compiled
from bridge.backends.sql.engine import MAX_STATEMENT, session_statements
from bridge.backends.sql.schema import binary_names
from bridge.backends.sql.statements import (
    ADDED_COLUMNS,
    STATE_COLUMN,
    STATES,
    Statements,
    queue_table,
)
from bridge.backends.sql.topic_statements import TopicStatements

KINDS = ("sqlite", "postgresql", "mariadb", "mysql")
QUERIES = Path(__file__).with_name("queries")
DEFAULT_TABLE = "bridge_queue"
_URLS = {
    "sqlite": "sqlite+pysqlite://",
    "postgresql": "postgresql+psycopg://",
    "mariadb": "mariadb+pymysql://",
    "mysql": "mysql+pymysql://",
}
_PRODUCTS = {
    "sqlite": "SQLite (the sqlite3 module, qmark placeholders)",
    "postgresql": "PostgreSQL (psycopg 3, named placeholders)",
    "mariadb": "MariaDB 10.6+ (PyMySQL, named placeholders)",
    "mysql": "MySQL 8.0.1+ (PyMySQL, named placeholders)",
}
_NAMED = re.compile(r"%\((\w+)\)s")
Source = sa.ClauseElement | str


@dataclass(frozen=True, slots=True)
class Entry:
    """One statement: its name, the operation that sends it, its SQL and parameters."""

    name: str
    runs_in: str
    sql: str
    parameters: tuple[str, ...]


def path_of(kind: str) -> Path:
    return QUERIES / f"{kind}.sql"


def offline_dialect(kind: str) -> sa.Dialect:
    """The dialect of ``kind`` as bridge's engine has it, built without a server.

    From an engine that never connects: it loads the driver, whose
    placeholder style the dialect takes (PyMySQL's is ``%(name)s``).
    """
    engine = sa.create_engine(_URLS[kind])
    dialect = engine.dialect
    engine.dispose()
    return dialect


def statements_for(kind: str, table: str = DEFAULT_TABLE) -> Statements:
    """bridge's statements on ``table`` for ``kind``, to compile without a server."""
    return Statements(queue_table(table), offline_dialect(kind))


def entries(kind: str, table: str = DEFAULT_TABLE) -> list[Entry]:
    """Every statement for ``kind``, in the order the files list them."""
    s = statements_for(kind, table)
    sources = [*_schema(s), *_session(kind), *_hot_path(s), *_holder(s), *_held(s), *_admin(s)]
    sources += _topics(TopicStatements(table, kind), s.dialect)
    return [_entry(name, runs_in, source, s.dialect) for name, runs_in, source in sources]


def render(kind: str, table: str = DEFAULT_TABLE) -> str:
    """The text of ``queries/<kind>.sql``."""
    lines = [
        f"-- Every statement bridge's SQL backend sends to {_PRODUCTS[kind]}.",
        "--",
        "-- Generated from bridge/backends/sql/statements.py and topic_statements.py by",
        "-- catalogue.py; do not edit.",
        "-- tests/test_sql_statements.py fails when this file and the statements differ;",
        "-- regenerate with: BRIDGE_WRITE_SQL=1 pytest tests/test_sql_statements.py",
        "--",
        f"-- The table is {DEFAULT_TABLE} (the `table` option); the topic store's statements",
        f"-- (topic_*) use {DEFAULT_TABLE}_topic and {DEFAULT_TABLE}_topic_sub beside it.",
        "-- [n=...] is a claim of n items (the LIMIT is part of the text); [ids=...] and",
        "-- [rows=...] repeat a placeholder or a row that many times (up to 100).",
        "-- Parameters are listed in the order the driver takes them. Not listed: what",
        "-- SQLAlchemy sends by itself (the isolation level, its pool's pings, schema",
        "-- reflection). Trailing spaces are trimmed.",
        "",
    ]
    for entry in entries(kind, table):
        lines += [f"-- name: {entry.name}", f"-- runs in: {entry.runs_in}"]
        if entry.parameters:
            lines.append(f"-- parameters: {', '.join(entry.parameters)}")
        lines += [f"{entry.sql};", ""]
    return "\n".join(lines)


def tidy(sql: str) -> str:
    """The SQL as the files show it: no trailing spaces, no blank edges."""
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


# -- what each part of the backend sends -------------------------------------------------


def _schema(s: Statements) -> list[tuple[str, str, Source]]:
    found: list[tuple[str, str, Source]] = [
        ("create_table", "first use of a database (create_queue, or any call)", s.create_table()),
        ("create_claim_index", "first use, with the table", s.create_claim_index()),
    ]
    for column in ADDED_COLUMNS:
        found.append(
            (
                f"add_{column}_column",
                f"first use of a table made before the {column} column",
                s.add_column(column),
            )
        )
        if column == STATE_COLUMN:
            found.append(
                (
                    "backfill_state",
                    "with add_state_column, in its transaction where DDL has one",
                    s.backfill_state,
                )
            )
    if s.kind in ("mariadb", "mysql"):
        found.append(
            ("max_allowed_packet", "first use (create_items' statement size)", MAX_STATEMENT)
        )
        found.append(
            (
                "binary_names",
                "first use of a table made while names were VARCHAR (schema.py)",
                binary_names(s.dialect, s.table, ["name"]),
            )
        )
    return found


def _session(kind: str) -> list[tuple[str, str, Source]]:
    engine_kind = "mysql" if kind == "mariadb" else kind
    found: list[tuple[str, str, Source]] = [
        (f"session_{number}", "every new connection", sql)
        for number, sql in enumerate(session_statements(engine_kind), start=1)
    ]
    found.append(("ping", "a pinned connection idle for over a second", PING))
    if kind == "sqlite":
        found += [
            (
                "begin_write",
                "write transactions of more than one statement: settle_and_claim, "
                "create_items of over 100 rows, release_all...",
                BEGIN_WRITE,
            ),
            ("begin_read", "counts, queue_names, peek, browse", BEGIN),
        ]
    elif kind == "postgresql":
        found.append(
            (
                "begin",
                "create_items of over 100 rows, delete_items of many claims, "
                "settle_and_claim of a release or a delay of 0",
                BEGIN,
            )
        )
    if kind in ("sqlite", "postgresql"):  # PyMySQL's begin() and commit() say the same
        found += [
            ("commit", "the end of those transactions", COMMIT),
            ("rollback", "a failed transaction", ROLLBACK),
        ]
    return found


def _hot_path(s: Statements) -> list[tuple[str, str, Source]]:
    found: list[tuple[str, str, Source]] = []
    rows = (1, 3) if s.insert_returning else (1,)
    for count in rows:
        found.append((f"insert[rows={count}]", "create_items", s.insert(count, False)))
    found.append(("insert_delayed[rows=1]", "create_items with a delay", s.insert(1, True)))
    found.append(("insert_ttl[rows=1]", "create_items with a ttl", s.insert(1, False, True)))
    after = "settle_and_claim, after the settlement"
    if s.kind in ("sqlite", "postgresql"):
        found += [(f"claim[n={n}]", f"claim_items; {after}", s.claim(n)) for n in (1, 100)]
        found.append(("claim_grace[n=1]", "claim_items with a grace", s.claim(1, True)))
    else:
        found += [
            (f"lock_claimable[n={n}]", f"claim_items, first; {after}", s.lock_claimable(n))
            for n in (1, 100)
        ]
        found += [
            (f"mark_claimed[ids={n}]", "claim_items, then", s.mark_claimed(n)) for n in (1, 3)
        ]
        found.append(
            ("mark_claimed_grace[ids=1]", "claim_items with a grace, then", s.mark_claimed(1, True))
        )
    if s.kind == "postgresql":
        found.append(("delete[ids=any]", "delete_items (one per claim)", s.delete(0)))
        found += [
            (
                f"settle_and_claim[{action},n={n}]",
                f"settle_and_claim({_SETTLED[action]}) of {n}: one statement",
                s.settle_and_claim(action, n),
            )
            for action, n in (*((action, 1) for action in _SETTLED), ("delete", 100))
        ]
    else:
        found += [
            (
                f"delete[ids={n}]",
                "delete_items (one per claim and 100 ids)"
                + ("; settle_and_claim(delete), first" if n == 1 else ""),
                s.delete(n),
            )
            for n in (1, 3)
        ]
    return found


# settle_and_claim's one statement on PostgreSQL, by the holder statement it
# starts with: every settlement after which the item is not claimable at once.
_SETTLED = {
    "delete": "delete",
    "delay": "delay of over 0 s",
    "fail": "fail without a delay",
    "fail_delayed": "fail with a delay of over 0 s",
    "hold": "hold",
}


def _holder(s: Statements) -> list[tuple[str, str, Source]]:
    first = (
        "; settle_and_claim, first, of a release or a delay of 0"
        if s.kind == "postgresql"
        else "; settle_and_claim, first"
    )
    found: list[tuple[str, str, Source]] = [
        ("release", f"release_item{first}", s.release),
        ("delay", f"delay_item{first}", s.delay),
        ("extend", "extend_lease", s.extend),
        ("extend_grace", "extend_lease with a grace", s.extend_grace),
        ("fail", "fail_item without a delay" + ("" if s.kind == "postgresql" else first), s.fail),
        ("fail_delayed", f"fail_item with a delay{first}", s.fail_delayed),
        ("hold", "hold_item" + ("" if s.kind == "postgresql" else first), s.hold),
    ]
    if not s.update_returning:
        found.append(
            (
                "read_expire",
                "delay_item, extend_lease, release_item, fail_item: after the UPDATE, "
                "in its transaction",
                s.read_expire,
            )
        )
    return found


def _held(s: Statements) -> list[tuple[str, str, Source]]:
    return [
        ("held_items", "held_items", s.held_items),
        ("kick", "kick with a limit", s.kick(True)),
        ("kick_all", "kick without a limit", s.kick(False)),
        ("kick_item", "kick_item", s.kick_item),
        ("delete_held", "delete_held with a limit", s.delete_held(True)),
        ("delete_all_held", "delete_held without a limit", s.delete_held(False)),
    ]


def _admin(s: Statements) -> list[tuple[str, str, Source]]:
    return [
        ("counts", "counts, number_of_items", s.counts),
        ("oldest_ready_age", "oldest_ready_age", s.oldest_ready_age),
        ("queue_names", "queue_names", s.queue_names),
        ("peek", "peek", s.peek),
        *_browse(s),
        ("find_item", "find_item", s.find_item),
        ("free_leases", "release_all, first", s.free_leases),
        ("end_claims", "release_all, then, in its transaction", s.end_claims),
        ("remove_item", "remove_item", s.remove_item),
        ("delete_expired", "garbage_collection", s.delete_expired),
        ("delete_queue", "delete_queue", s.delete_queue),
    ]


def _browse(s: Statements) -> list[tuple[str, str, Source]]:
    found: list[tuple[str, str, Source]] = []
    for state in (None, *STATES):
        shown = "every state" if state is None else state
        for after in (False, True):
            name = f"browse{'_after' if after else ''}[{shown}]"
            runs_in = f"browse, {'a next' if after else 'the first'} page, {shown}"
            found.append((name, runs_in, s.browse(state, after)))
    return found


def _topics(t: TopicStatements, dialect: sa.Dialect) -> list[tuple[str, str, Source]]:
    """The topic store's (``topics_sql.py``), on its two tables beside the queue table."""
    found: list[tuple[str, str, Source]] = [
        ("topic_create_messages", "first use of topics", sa.schema.CreateTable(t.messages)),
        ("topic_create_expire_index", "first use of topics, with the table", _expire_index(t)),
        ("topic_create_subscribers", "first use of topics", sa.schema.CreateTable(t.subscribers)),
        ("topic_lock_head", "publish and delete_topic, first", t.lock_head),
        ("topic_delete_expired", "publish, then; read, at most once a second", t.delete_expired),
        ("topic_insert_messages", "publish, then, once per message", t.insert_messages),
        ("topic_set_head", "publish, last", t.set_head),
        (
            "topic_add_subscriber",
            "the first publish to a topic; a first read from 'latest'",
            t.add_subscriber,
        ),
        ("topic_read", "read", t.read),
        ("topic_subscriber_position", "a first read from 'latest'", t.subscriber_position),
        ("topic_last_position", "ack, first; a first read from 'latest'", t.last_position),
        ("topic_ack_forward", "ack, then", t.ack_forward),
        ("topic_live_stats", "stats", t.live_stats),
        ("topic_subscriber_count", "stats", t.subscriber_count),
        ("topic_delete_messages", "delete_topic, then", t.delete_messages),
        ("topic_delete_subscribers", "delete_topic, last", t.delete_subscribers),
    ]
    if t.kind in ("mariadb", "mysql"):
        found += [
            (
                f"topic_binary_names_{which}",
                "first use of topic tables made while names were VARCHAR",
                binary_names(dialect, table, columns),
            )
            for which, table, columns in (
                ("messages", t.messages, ["name"]),
                ("subscribers", t.subscribers, ["name", "subscriber"]),
            )
        ]
    if t.add_subscriber_returning is not None:
        found.append(
            (
                "topic_add_subscriber_returning",
                "ack of a subscriber's first marker",
                t.add_subscriber_returning,
            )
        )
    return found


def _expire_index(t: TopicStatements) -> DDLElement:
    (index,) = t.messages.indexes
    return sa.schema.CreateIndex(index)


def _entry(name: str, runs_in: str, source: Source, dialect: sa.Dialect) -> Entry:
    if isinstance(source, str):
        return Entry(name, runs_in, tidy(source), ())
    if isinstance(source, DDLElement):
        return Entry(name, runs_in, tidy(str(source.compile(dialect=dialect))), ())
    compiled = Compiled(source, dialect)
    names = compiled.names
    if names is None:  # named placeholders: each once, in order of appearance
        names = tuple(dict.fromkeys(_NAMED.findall(compiled.sql)))
    return Entry(name, runs_in, tidy(compiled.sql), names)
