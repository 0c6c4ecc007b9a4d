"""The claim walks the claim index in order on every SQL dialect.

This is what keeps claim cost flat as a queue grows, and on MariaDB it is
also what keeps SKIP LOCKED from skipping everything: InnoDB locks every
row a locking read examines, so a claim that scanned or sorted would lock
rows other claimers then skip. The plan is asked of the database itself,
on a table holding enough items that a planner would prefer a scan if the
index did not fit the query.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql import SqlBackend
from bridge.backends.sql.driver import Compiled

from conftest import SQL_BACKENDS, spec_for

ITEMS = 5000


@pytest.fixture(params=SQL_BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    queue = factory.get("plan_probe")
    other = factory.get("plan_other")
    queue.delete_queue()
    other.delete_queue()
    queue.create_items([{"n": n} for n in range(ITEMS)])
    other.create_items([{"n": n} for n in range(ITEMS)])
    # Leased and held rows at the head, as in real use: held items are old
    # ones, and the claim must skip them without leaving the index.
    for item in queue.claim_items(100, lease_time=60)[:20]:
        assert queue.hold_item(item, reason="at the head")
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    with backend.engine.begin() as conn:
        conn.exec_driver_sql(
            f"ANALYZE {'TABLE ' if backend.dialect == 'mysql' else ''}{backend.table.name}"
        )
    yield backend
    queue.delete_queue()
    other.delete_queue()
    factory.close()


def _plan(backend: SqlBackend, name: str = "plan_probe") -> str:
    """The plan of the claim's search, as the claim statement has it (LIMIT 10)."""
    claim = backend.statements.claimable().limit(10)
    if backend.dialect != "sqlite":
        claim = claim.with_for_update(skip_locked=True)
    claim = claim.params(queue=name)
    sql = str(claim.compile(dialect=backend.engine.dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if backend.dialect == "sqlite" else "EXPLAIN "
    with backend.engine.connect() as conn:
        rows = conn.execute(sa.text(explain + sql)).mappings().all()
    return "\n".join(" | ".join(f"{k}={v}" for k, v in row.items()) for row in rows)


def test_claim_uses_the_claim_index_without_sorting(filled: SqlBackend) -> None:
    plan = _plan(filled)
    index = f"{filled.table.name}_claim"
    assert index in plan, plan
    # PostgreSQL, MariaDB and SQLite each name a full scan or a sort this way.
    for scan_or_sort in ("Seq Scan", "Sort Key", "type=ALL", "filesort", "SCAN ", "TEMP B-TREE"):
        assert scan_or_sort not in plan, plan


@pytest.mark.service("postgres")
@pytest.mark.parametrize(
    "statement",
    [
        "claim 1",
        "claim 100",
        "settle_and_claim delete 1",
        "settle_and_claim hold 1",
        "oldest_ready_age 1",
    ],
)
def test_postgres_generic_plan_of_the_claim_walks_the_index(tmp_path: Any, statement: str) -> None:
    """psycopg prepares a statement after five runs; PostgreSQL may then reuse a
    generic plan. The claim's plan must stay an index walk even then, on a table
    whose statistics say the queue is large; so must settle_and_claim's, whose
    claim spares the settled item; so must the queues page's oldest_ready_age,
    whose generic plan once walked the primary key from the table's first id."""
    factory = bridge.QueueFactory(default=spec_for("postgres", tmp_path))
    queue = factory.get("generic_plan_probe")
    queue.delete_queue()
    queue.create_items([{"n": n} for n in range(20_000)])
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    # The statement exactly as the backend sends it, with psycopg's
    # placeholders turned into PREPARE's numbered ones.
    given: dict[str, Any] = {"queue": "generic_plan_probe", "lease_time": 60.0, "token": "probe"}
    *kind, count = statement.split()
    built: Any
    if kind == ["claim"]:
        built = backend.statements.claim(int(count))
    elif kind == ["oldest_ready_age"]:
        built = backend.statements.oldest_ready_age
    else:
        built = backend.statements.settle_and_claim(kind[1], int(count))
        given.update(id=1, claim="held", reason="probe", error="probe")
    compiled = Compiled(built, backend.engine.dialect)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", compiled.sql)))
    assert set(names) <= set(given), compiled.sql
    sql = compiled.sql
    for number, name in enumerate(names, start=1):
        sql = sql.replace(f"%({name})s", f"${number}")
    values = ", ".join(
        sa.literal(given[n])
        .compile(dialect=backend.engine.dialect, compile_kwargs={"literal_binds": True})
        .string
        for n in names
    )
    try:
        with backend.engine.connect() as conn:
            conn.exec_driver_sql(f"ANALYZE {backend.table.name}")
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql(f"PREPARE claim_probe AS {sql}")
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE claim_probe({values})")
            )
            conn.exec_driver_sql("DEALLOCATE claim_probe")
    finally:
        queue.delete_queue()
        factory.close()
    assert f"Index Scan using {backend.table.name}_claim" in plan, plan
    assert "Seq Scan" not in plan, plan
    if kind == ["oldest_ready_age"]:  # the others look up a settled item by its id
        assert f"using {backend.table.name}_pkey" not in plan, plan


@pytest.mark.service("postgres")
def test_postgres_claim_walks_the_index_when_statistics_are_stale(tmp_path: Any) -> None:
    """A queue that grew from empty since its table was last analyzed (autovacuum
    off, or not yet round): the planner believes the table tiny and would sort the
    whole queue on every claim. bridge's sessions must walk the index anyway."""
    table = f"stale_{uuid.uuid4().hex[:10]}"
    spec = spec_for("postgres", tmp_path)
    factory = bridge.QueueFactory(default={**spec, "options": {"table": table}})
    queue = factory.get("stale_probe")
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    try:
        queue.create_queue()
        with backend.engine.connect() as conn:
            conn.exec_driver_sql(f"ANALYZE {table}")  # statistics of an empty table
        queue.create_items([{"n": n} for n in range(20_000)])
        plan = _plan(backend, "stale_probe")
    finally:
        backend.table.drop(backend.engine)
        factory.close()
    assert f"Index Scan using {table}_claim" in plan, plan
    assert "Sort Key" not in plan, plan


def _explain_rows(backend: SqlBackend, statement: Any) -> list[dict[str, Any]]:
    sql = str(
        statement.compile(dialect=backend.engine.dialect, compile_kwargs={"literal_binds": True})
    )
    explain = "EXPLAIN QUERY PLAN " if backend.dialect == "sqlite" else "EXPLAIN "
    with backend.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.text(explain + sql)).mappings().all()]


def _scans_the_table(backend: SqlBackend, rows: list[dict[str, Any]]) -> list[str]:
    """The plan's lines that read the queue table whole, in each database's words."""
    table = backend.table.name
    found = []
    for row in rows:
        line = " | ".join(f"{k}={v}" for k, v in row.items())
        if backend.dialect == "mysql":
            if row.get("table") == table and row.get("type") == "ALL":
                found.append(line)
        elif f"Seq Scan on {table}" in line or f"SCAN {table}" in line:
            found.append(line)
    return found


@pytest.mark.parametrize("after", [False, True], ids=["first page", "next page"])
def test_browse_pages_walk_the_claim_index(filled: SqlBackend, after: bool) -> None:
    """A page is a walk of the claim index from its cursor, whatever the queue's size:
    never a scan of the table, never OFFSET. The first page sorts nothing; a next
    page sorts only the two ranges' few rows it joins."""
    values: dict[str, Any] = {"queue": "plan_probe", "limit": 51}
    if after:
        values.update(after_priority=0, after_id=ITEMS // 2)
    rows = _explain_rows(filled, filled.statements.browse(None, after).params(**values))
    plan = "\n".join(" | ".join(f"{k}={v}" for k, v in row.items()) for row in rows)
    assert f"{filled.table.name}_claim" in plan, plan
    assert not _scans_the_table(filled, rows), plan
    if not after:
        for sort in ("Sort Key", "filesort", "TEMP B-TREE"):
            assert sort not in plan, plan
