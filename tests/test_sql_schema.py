"""The queue table over time and on disk: older tables migrate, files stay private.

A table made by the first bridge has no ``state`` column, and that version
told a delayed item from a leased one by a missing token. The backend adds
the column on first use and marks the old leases, so counts stay right and
the holder rules of this version apply to old items too. A table made
before held items has ``state`` but no ``last_error``, ``held_at`` or
``hold_reason``; those are added on first use too, as is ``ttl_end`` (an
item's TTL deadline, NULL on every older row: no TTL).
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import bridge
from bridge.backends.sql import SqlBackend, catalogue, schema
from bridge.backends.sql.statements import dialect_kind
from bridge.contract import MAX_SECONDS

from conftest import SERVICE_URLS, SQL_BACKENDS, spec_for


def _first_table(name: str) -> sa.Table:
    """The table as the first version created it (no state column)."""
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False, server_default="0"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("token", sa.String(32), nullable=True),
    )
    sa.Index(f"{name}_claim", table.c.name, table.c.priority.desc(), table.c.item_id)
    return table


def _table_before_holding(name: str) -> sa.Table:
    """The table as the version before held items created it: a state, no error columns."""
    table = _first_table(name)
    table.append_column(sa.Column("state", sa.String(16), nullable=False, server_default="ready"))
    return table


def _engine(kind: str, spec: dict[str, Any]) -> sa.Engine:
    return sa.create_engine(spec["url"] if kind == "sqlite" else SERVICE_URLS[kind])


@pytest.fixture(params=SQL_BACKENDS)
def old_table(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A spec whose table was filled by the first version: one item in each state."""
    table_name = f"old_{uuid.uuid4().hex[:10]}"
    spec = spec_for(request.param, tmp_path)
    spec = {"url": spec["url"], "options": {"table": table_name}}
    engine = _engine(request.param, spec)
    table = _first_table(table_name)
    table.create(engine)
    now = time.time()
    rows = [
        {"data": b'"ready"', "expire": 0.0, "token": None},
        {"data": b'"leased"', "expire": now + 600, "token": "a" * 32, "attempts": 1},
        {"data": b'"delayed"', "expire": now + 600, "token": None},
        {"data": b'"lease ended"', "expire": now - 10, "token": "b" * 32, "attempts": 1},
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"name": "migrated", "created": now, **row} for row in rows])
    yield spec
    table.drop(engine)
    engine.dispose()


def test_a_table_of_the_previous_version_gets_the_state_column_on_first_use(
    old_table: dict[str, Any],
) -> None:
    factory = bridge.QueueFactory(default=old_table)
    queue = factory.get("migrated")
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    sent: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(catalogue.tidy(statement))

    event.listen(backend.engine, "before_cursor_execute", note)
    try:
        counts = queue.counts()
    finally:
        event.remove(backend.engine, "before_cursor_execute", note)
    assert (counts.ready, counts.leased, counts.delayed) == (2, 1, 1)

    listed = {
        entry.name: entry.sql
        for entry in catalogue.entries(
            dialect_kind(backend.engine.dialect), table=backend.table.name
        )
    }
    for added in ("state", "last_error", "held_at", "hold_reason", "ttl_end"):
        assert listed[f"add_{added}_column"] in sent, "\n".join(sent)
    assert listed["backfill_state"] in sent, "\n".join(sent)

    # Old items follow this version's rules: claimable ones are claimed (the
    # ended lease too), and the new holder's release keeps its claim.
    claimed = queue.claim_items(10, lease_time=60)
    assert sorted(item.data for item in claimed) == ["lease ended", "ready"]
    assert queue.release_item(claimed[0])
    assert queue.delete_item(claimed[0])
    counts = queue.counts()
    assert (counts.ready, counts.leased, counts.delayed) == (0, 2, 1)
    factory.close()


def test_a_second_process_finding_the_column_added_goes_on(old_table: dict[str, Any]) -> None:
    """Two processes may both see the column missing; the ALTER that loses is no error."""
    first = bridge.QueueFactory(default=old_table)
    queue = first.get("migrated")
    assert queue.counts().total == 4
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    for column in ("state", "hold_reason"):  # the loser's late ALTERs
        schema.add_column(backend.engine, backend.statements, column)
    second = bridge.QueueFactory(default=old_table)
    assert second.get("migrated").counts() == queue.counts()
    second.close()
    first.close()


@pytest.fixture(params=SQL_BACKENDS)
def table_before_holding(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A spec whose table has a state column but none for errors and held items."""
    table_name = f"pre_{uuid.uuid4().hex[:10]}"
    spec = spec_for(request.param, tmp_path)
    spec = {"url": spec["url"], "options": {"table": table_name}}
    engine = _engine(request.param, spec)
    table = _table_before_holding(table_name)
    table.create(engine)
    now = time.time()
    rows = [
        {"data": b'"ready"', "expire": 0.0, "token": None, "state": "ready"},
        {"data": b'"leased"', "expire": now + 600, "token": "a" * 32, "state": "leased"},
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"name": "before", "created": now, **row} for row in rows])
    yield spec
    table.drop(engine)
    engine.dispose()


def test_a_table_from_before_held_items_gets_their_columns_and_can_hold(
    table_before_holding: dict[str, Any],
) -> None:
    factory = bridge.QueueFactory(default=table_before_holding)
    queue = factory.get("before")
    counts = queue.counts()
    assert (counts.ready, counts.leased, counts.held) == (1, 1, 0)
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    columns = {c["name"] for c in sa.inspect(backend.engine).get_columns(backend.table.name)}
    assert {"last_error", "held_at", "hold_reason", "ttl_end"} <= columns

    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert (item.data, item.last_error) == ("ready", None), "old rows have no error"
    assert queue.hold_item(item, reason="after the migration", error="E")
    [held] = queue.held_items()
    assert (held.data, held.hold_reason, held.last_error) == ("ready", "after the migration", "E")
    assert queue.kick() == 1
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.attempts, again.last_error) == (item.item_id, 1, "E")
    assert queue.delete_item(again)

    # The old rows have no TTL; new ones may, and expire on the migrated table.
    queue.create_item("brief", ttl=0.05)
    time.sleep(0.2)
    assert queue.claim_item(lease_time=60) is None
    assert queue.counts().expired == 1
    queue.garbage_collection()
    assert (queue.counts().expired, queue.number_of_items()) == (0, 1)
    factory.close()


# -- SQLite files --------------------------------------------------------------------


def _mode(path: Any) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_files_bridge_creates_are_its_owner_s_only(tmp_path: Any) -> None:
    path = tmp_path / "new" / "queue.sqlite"
    previous = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        factory = bridge.QueueFactory(default=f"sqlite:///{path}")
        queue = factory.get("private")
        queue.create_item("secret")
        item = queue.claim_item(lease_time=60)
        assert item is not None
        for each in (path, f"{path}-wal", f"{path}-shm"):
            assert os.path.exists(each), each
            assert _mode(each) == 0o600, f"{each}: {oct(_mode(each))}"
        factory.close()
    finally:
        os.umask(previous)


def test_a_sqlite_file_that_exists_keeps_its_mode(tmp_path: Any) -> None:
    path = tmp_path / "shared.sqlite"
    path.touch()
    os.chmod(path, 0o640)
    factory = bridge.QueueFactory(default=f"sqlite:///{path}")
    factory.get("kept").create_item("x")
    factory.close()
    assert _mode(path) == 0o640


def test_a_sqlite_path_that_cannot_be_made_is_a_clear_error() -> None:
    factory = bridge.QueueFactory(default="sqlite:////proc/nope/queue.sqlite")
    with pytest.raises(bridge.ConfigurationError, match="cannot create the SQLite file"):
        factory.get("nowhere").create_item("x")
    factory.close()


# -- the longest lease ----------------------------------------------------------------


@pytest.fixture(params=SQL_BACKENDS)
def sql_queue(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[bridge.Queue]:
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    queue = factory.get(f"q_{uuid.uuid4().hex[:12]}")
    yield queue
    queue.delete_queue()
    factory.close()


def _stored_expire(queue: bridge.Queue, item: bridge.QueueItem) -> float:
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    t = backend.table
    with backend.engine.connect() as conn:
        expire: float = conn.execute(
            sa.select(t.c.expire).where(t.c.item_id == item.item_id)
        ).scalar_one()
    return expire


def test_the_longest_lease_is_stored_exactly(sql_queue: bridge.Queue) -> None:
    sql_queue.create_item("x")
    before = time.time()
    item = sql_queue.claim_item(lease_time=MAX_SECONDS)
    assert item is not None
    assert _stored_expire(sql_queue, item) == item.expire
    assert abs(item.expire - before - MAX_SECONDS) < 60
    assert sql_queue.extend_lease(item, MAX_SECONDS)
    assert _stored_expire(sql_queue, item) == item.expire
    assert sql_queue.counts().leased == 1
    assert sql_queue.claim_item(lease_time=60) is None
    assert sql_queue.delete_item(item)


# -- names as bytes on MariaDB ----------------------------------------------------------


@pytest.mark.service("mariadb")
def test_a_mariadb_table_with_text_names_gets_byte_names_and_its_queues_part(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A table made while ``name`` was a VARCHAR (which MariaDB compares without case,
    accents or trailing spaces) is migrated on first use: ``pad`` and ``PAD`` part."""
    spec = {"url": SERVICE_URLS["mariadb"], "options": {"table": f"t_{uuid.uuid4().hex[:10]}"}}
    first = bridge.QueueFactory(default=spec)
    for name in ("pad", "PAD", "pád"):
        first.get(name).create_item(name)
    backend = first.get("pad").backend
    assert isinstance(backend, SqlBackend)
    table = backend.table.name
    with backend.engine.begin() as conn:  # as an earlier bridge made it
        conn.exec_driver_sql(f"ALTER TABLE {table} MODIFY COLUMN name VARCHAR(255) NOT NULL")
    first.close()
    try:
        older = bridge.QueueFactory(default=spec)
        with caplog.at_level("WARNING", logger="bridge.backends.sql.schema"):
            counts = [older.get(name).number_of_items() for name in ("pad", "PAD", "pád")]
        assert counts == [1, 1, 1]  # one queue of 3 before the migration
        assert "making name VARBINARY(255)" in caplog.text
        assert older.get("PAD").claim_item(lease_time=30).data == "PAD"  # type: ignore[union-attr]
        assert sorted(older.get("pad").backend.queue_names()) == ["PAD", "pad", "pád"]
        again = bridge.QueueFactory(default=spec)  # a later process: nothing left to do
        caplog.clear()
        with caplog.at_level("WARNING", logger="bridge.backends.sql.schema"):
            assert again.get("pád").number_of_items() == 1
        assert "VARBINARY" not in caplog.text
        again.close()
        older.close()
    finally:
        engine = sa.create_engine(SERVICE_URLS["mariadb"])
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()
