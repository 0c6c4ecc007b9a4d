"""The claim walks the claim index in order on every SQL dialect.

This is what keeps claim cost flat as a queue grows, and on MariaDB it is
also what keeps SKIP LOCKED from skipping everything: InnoDB locks every
row a locking read examines, so a claim that scanned or sorted would lock
rows other claimers then skip. The plan is asked of the database itself,
on a table holding enough items that a planner would prefer a scan if the
index did not fit the query.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql import SqlBackend

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
    queue.claim_items(100, lease_time=60)  # leased rows at the head, as in real use
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    with backend.engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {'TABLE ' if backend.dialect == 'mysql' else ''}"
                             f"{backend.table.name}")
    yield backend
    queue.delete_queue()
    other.delete_queue()
    factory.close()


def _plan(backend: SqlBackend) -> str:
    claim = backend._claimable("plan_probe").limit(10)
    if backend.dialect != "sqlite":
        claim = claim.with_for_update(skip_locked=True)
    sql = str(claim.compile(dialect=backend.engine.dialect,
                            compile_kwargs={"literal_binds": True}))
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
