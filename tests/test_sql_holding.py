"""Held items on SQL: moves that a SIGKILL cannot split, the oldest ready age, item ids.

On SQL a hold and a kick are each one UPDATE, so a process killed in the
middle of either leaves every item where it was or where it went. The kill
tests show it with real processes: a kick of 20,000 held items killed a few
milliseconds in, and a loop of holds killed halfway, then every row is
read back and checked.
"""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql import SqlBackend
from bridge.backends.sql.statements import HELD_UNTIL

from children import kill_mover, start_mover
from conftest import BACKENDS, SQL_BACKENDS, spec_for

KILLED_BACKENDS = [BACKENDS[1], BACKENDS[2]]  # SQLite and PostgreSQL
HELD = 20_000
KILL_AFTER = 0.005

KICK_SCRIPT = textwrap.dedent("""
    import json, sys
    import bridge

    queue = bridge.QueueFactory(default=json.loads(sys.argv[1])).get(sys.argv[2])
    queue.counts()  # connected and set up: what the kill interrupts is the kick
    print("kicking", flush=True)
    print(queue.kick(), flush=True)
""")

HOLD_SCRIPT = textwrap.dedent("""
    import json, sys
    import bridge

    queue = bridge.QueueFactory(default=json.loads(sys.argv[1])).get(sys.argv[2])
    items = queue.claim_items(int(sys.argv[3]), lease_time=600)
    print("holding", flush=True)
    for item in items:
        queue.hold_item(item, reason="poison", error="ValueError: bad")
    print("held", flush=True)
""")


def _backend(queue: bridge.Queue) -> SqlBackend:
    assert isinstance(queue.backend, SqlBackend)
    return queue.backend


@pytest.fixture(params=KILLED_BACKENDS)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, Any], Any]]:
    spec = spec_for(request.param, tmp_path)
    factory = bridge.QueueFactory(default=spec)
    queue = factory.get(f"killed_{uuid.uuid4().hex[:10]}")
    yield spec, queue
    queue.delete_queue()
    factory.close()


def _rows(queue: bridge.Queue) -> list[Any]:
    """Every row of the queue, once any statement the killed process left running
    on the server has ended (a SHARE lock waits for its row locks' transaction)."""
    backend = _backend(queue)
    t = backend.table
    query = (
        sa.select(
            t.c.item_id,
            t.c.state,
            t.c.expire,
            t.c.attempts,
            t.c.token,
            t.c.held_at,
            t.c.hold_reason,
            t.c.last_error,
        )
        .where(t.c.name == queue.name)
        .order_by(t.c.item_id)
    )
    with backend.engine.connect() as conn:
        if backend.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                conn.exec_driver_sql(f"LOCK TABLE {t.name} IN SHARE MODE")
                return list(conn.execute(query).all())
        return list(conn.execute(query).all())


def test_a_kick_killed_midway_moved_all_or_nothing(shared: tuple[dict[str, Any], Any]) -> None:
    spec, queue = shared
    ids = queue.create_items(["poison"] * HELD)
    # Held as hold_item leaves an item, for 20,000 at once (20,000 holds take long).
    backend = _backend(queue)
    t = backend.table
    with backend.engine.begin() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.name == queue.name)
            .values(
                state="held",
                expire=HELD_UNTIL,
                held_at=t.c.created,
                hold_reason="poison",
                last_error="ValueError: bad",
                attempts=5,
                token=None,
            )
        )
    assert queue.counts().held == HELD
    assert len(queue.held_items(1)) == 1

    proc = start_mover(KICK_SCRIPT, spec, queue.name)
    time.sleep(KILL_AFTER)
    assert kill_mover(proc) == "", "the kick ended before the kill: the test proves nothing"

    rows = _rows(queue)
    assert [row.item_id for row in rows] == sorted(ids), "an item was lost or duplicated"
    states = {row.state for row in rows}
    assert states in ({"held"}, {"ready"}), f"a kick was split: {states}"
    for row in rows:
        if row.state == "held":
            assert (row.expire, row.attempts, row.hold_reason) == (HELD_UNTIL, 5, "poison")
            assert row.held_at is not None
        else:
            assert (row.expire, row.attempts, row.held_at, row.hold_reason) == (0, 0, None, None)
        assert row.last_error == "ValueError: bad"
    counts = queue.counts()
    assert (counts.ready + counts.held, counts.total) == (HELD, HELD)


def test_holds_killed_midway_leave_each_item_held_or_leased(
    shared: tuple[dict[str, Any], Any],
) -> None:
    spec, queue = shared
    total = 3000
    ids = queue.create_items([{"n": n} for n in range(total)])
    proc = start_mover(HOLD_SCRIPT, spec, queue.name, str(total))
    deadline = time.monotonic() + 30
    while queue.counts().held == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert kill_mover(proc) == "", "every hold ended before the kill: the test proves nothing"

    rows = _rows(queue)
    assert [row.item_id for row in rows] == sorted(ids), "an item was lost or duplicated"
    held = [row for row in rows if row.state == "held"]
    assert 0 < len(held) < total
    for row in rows:
        if row.state == "held":
            assert (row.token, row.expire, row.hold_reason) == (None, HELD_UNTIL, "poison")
            assert row.held_at is not None
            assert row.last_error == "ValueError: bad"
        else:
            assert row.state == "leased"
            assert row.token is not None
            assert (row.held_at, row.hold_reason, row.last_error) == (None, None, None)
    counts = queue.counts()
    assert (counts.held, counts.leased, counts.total) == (len(held), total - len(held), total)


# -- on every SQL database ------------------------------------------------------------


@pytest.fixture(params=SQL_BACKENDS)
def sql_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bridge.Queue]:
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    queue = factory.get(f"q_{uuid.uuid4().hex[:12]}")
    yield queue
    queue.delete_queue()
    factory.close()


def test_oldest_ready_age_is_how_long_the_oldest_claimable_item_waited(
    sql_queue: bridge.Queue,
) -> None:
    backend = _backend(sql_queue)

    def age() -> float | None:
        return backend.oldest_ready_age(sql_queue.name)

    assert age() is None, "nothing waits in an empty queue"
    sql_queue.create_item("old", priority=-5)  # claimed last, but waiting longest
    time.sleep(0.5)
    sql_queue.create_item("new", priority=5)
    waited = age()
    assert waited is not None
    assert 0.5 <= waited < 30

    new = sql_queue.claim_item(lease_time=60)
    assert new is not None
    assert new.data == "new"
    assert (age() or 0) >= waited, "the oldest item still waits"
    old = sql_queue.claim_item(lease_time=60)
    assert old is not None
    assert age() is None, "leased items do not wait"
    assert sql_queue.hold_item(old, reason="poison")
    assert sql_queue.fail_item(new, "E", delay=60)
    assert age() is None, "held and delayed items do not wait"
    assert sql_queue.kick() == 1
    assert (age() or 0) >= waited, "a kicked item waits since it was created"


def test_kick_item_takes_the_id_as_a_number_or_as_its_text(sql_queue: bridge.Queue) -> None:
    sql_queue.create_item("x")
    item = sql_queue.claim_item(lease_time=60)
    assert item is not None
    assert sql_queue.hold_item(item)
    assert sql_queue.kick_item("not an id") is False
    assert sql_queue.kick_item(2**70) is False
    assert sql_queue.kick_item(f" {item.item_id} ") is True
    assert sql_queue.counts().held == 0
