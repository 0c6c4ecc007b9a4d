"""settle_and_claim on SQL: one transaction and one commit, all or nothing if the connection dies.

PostgreSQL settles and claims in one statement (data-modifying CTEs), or,
for a release, in two statements in one transaction; SQLite and MariaDB
always use one transaction. Each test kills the caller's connection at the
worst moment it can be made to stop at, then checks, through a fresh
connection, that the finished item is still leased to the caller (its
token still settles it) and that nothing else was claimed:

* PostgreSQL, one statement: another session holds the finished item's row
  lock, so the statement waits inside its settlement; its backend is then
  terminated.
* PostgreSQL and MariaDB, two statements: the connection is killed by the
  server after the settlement ran and before the claim is sent.
* SQLite: the process is SIGKILLed at that same point.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge import Settlement
from bridge.backends.sql import SqlBackend, driver

from conftest import MARIADB_URL, POSTGRES_URL, spec_for

ITEMS = 5


def _backend(queue: bridge.Queue) -> SqlBackend:
    assert isinstance(queue.backend, SqlBackend)
    return queue.backend


@pytest.fixture
def make_queue(tmp_path: Path) -> Iterator[Callable[[str], bridge.Queue]]:
    """A fresh queue on a SQL backend kind; deleted, and its factory closed, after the test."""
    made: list[tuple[bridge.QueueFactory, bridge.Queue]] = []

    def make(kind: str) -> bridge.Queue:
        factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
        queue = factory.get(f"settle_{uuid.uuid4().hex[:10]}")
        made.append((factory, queue))
        return queue

    yield make
    for factory, queue in made:
        queue.delete_queue()
        factory.close()


@pytest.fixture
def postgres_queue(make_queue: Callable[[str], bridge.Queue]) -> bridge.Queue:
    return make_queue("postgres")


def _still_ours(queue: bridge.Queue, item: bridge.QueueItem) -> None:
    """Nothing happened: the item is leased to its holder, every other one is ready."""
    counts = queue.counts()
    assert (counts.ready, counts.leased) == (ITEMS - 1, 1), counts
    assert queue.delete_item(item), "the holder's token still settles the item"


@pytest.mark.service("postgres")
def test_postgres_settles_and_claims_in_one_statement(postgres_queue: bridge.Queue) -> None:
    queue = postgres_queue
    queue.create_items(["first", "second"])
    first = queue.claim_item(lease_time=60)
    assert first is not None
    sent: list[str] = []
    pinned = _backend(queue)._pinned._local.pinned
    real = pinned.cursor

    class Recording:
        def execute(self, sql: str, *args: Any) -> Any:
            sent.append(sql)
            return real.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    pinned.cursor = Recording()
    try:
        settled, claimed = queue.settle_and_claim(Settlement.delete(first), count=1)
    finally:
        pinned.cursor = real
    assert settled
    assert [item.data for item in claimed] == ["second"]
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH settled AS"), sent[0]


@pytest.mark.service("postgres")
def test_postgres_one_statement_killed_inside_settles_and_claims_nothing(
    postgres_queue: bridge.Queue,
) -> None:
    queue = postgres_queue
    queue.create_items([f"item {n}" for n in range(ITEMS)])
    item = queue.claim_item(lease_time=600)
    assert item is not None
    table = _backend(queue).table.name
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    raised: list[Exception] = []

    def settle_and_claim() -> None:
        try:
            queue.settle_and_claim(Settlement.delete(item), count=1, lease_time=600)
        except Exception as exc:
            raised.append(exc)

    with admin.connect() as locker, admin.connect() as killer:
        locker.exec_driver_sql("BEGIN")
        locker.exec_driver_sql(
            f"SELECT 1 FROM {table} WHERE item_id = %(id)s FOR UPDATE", {"id": item.item_id}
        )
        caller = threading.Thread(target=settle_and_claim)
        caller.start()
        blocked = _blocked_postgres_backend(killer, f"%DELETE FROM {table}%")
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({blocked})")
        caller.join(timeout=30)
        locker.exec_driver_sql("ROLLBACK")
    admin.dispose()
    assert not caller.is_alive()
    assert len(raised) == 1, "the call survived its connection being killed"
    assert isinstance(raised[0], bridge.BackendUnavailableError), raised
    _still_ours(queue, item)


def _blocked_postgres_backend(conn: sa.Connection, query: str) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %(query)s",
            {"query": query},
        ).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.02)
    raise AssertionError("the settle_and_claim call never waited on the row lock")


def _kill_before_the_claim(queue: bridge.Queue, kill: Callable[[Any], None]) -> None:
    """Make the caller's connection die once its settlement ran, before its claim is sent."""
    backend = _backend(queue)
    claim = (
        backend.statements.lock_claimable(1)
        if backend.dialect == "mysql"
        else backend.statements.claim(1)
    )
    claim_sql = driver.Compiled(claim, backend.engine.dialect).sql
    pinned = backend._pinned._local.pinned
    real = pinned.cursor

    class Dying:
        def execute(self, sql: str, *args: Any) -> Any:
            if sql == claim_sql:
                kill(pinned.driver)
            return real.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    pinned.cursor = Dying()


@pytest.mark.parametrize(
    ("kind", "settlement"),
    [
        pytest.param("postgres", Settlement.release, marks=pytest.mark.service("postgres")),
        pytest.param("mariadb", Settlement.delete, marks=pytest.mark.service("mariadb")),
        pytest.param("mariadb", Settlement.release, marks=pytest.mark.service("mariadb")),
    ],
)
def test_a_connection_killed_between_settlement_and_claim_undoes_the_settlement(
    kind: str,
    settlement: Callable[[bridge.QueueItem], Settlement],
    make_queue: Callable[[str], bridge.Queue],
) -> None:
    queue = make_queue(kind)
    queue.create_items([f"item {n}" for n in range(ITEMS)])
    item = queue.claim_item(lease_time=600)
    assert item is not None
    admin = sa.create_engine(
        POSTGRES_URL if kind == "postgres" else MARIADB_URL, isolation_level="AUTOCOMMIT"
    )

    def kill(connection: Any) -> None:
        with admin.connect() as killer:
            if kind == "postgres":
                killer.exec_driver_sql(
                    f"SELECT pg_terminate_backend({connection.info.backend_pid})"
                )
            else:
                killer.exec_driver_sql(f"KILL {connection.thread_id()}")

    _kill_before_the_claim(queue, kill)
    try:
        with pytest.raises(bridge.BackendUnavailableError):
            queue.settle_and_claim(settlement(item), count=1, lease_time=600)
        _still_ours(queue, item)
    finally:
        admin.dispose()


DYING_CALLER = textwrap.dedent("""
    import json, os, signal, sys
    import bridge
    from bridge import Settlement
    from bridge.backends.sql import driver

    queue = bridge.QueueFactory(default=json.loads(sys.argv[1])).get(sys.argv[2])
    item = queue.claim_item(lease_time=600)
    print(json.dumps([item.item_id, item.token, item.created, item.expire]), flush=True)
    backend = queue.backend
    claim = driver.Compiled(backend.statements.claim(1), backend.engine.dialect).sql
    pinned = backend._pinned._local.pinned
    real = pinned.cursor

    class Dying:
        def execute(self, sql, *args):
            if sql == claim:  # the settlement ran, in the open transaction
                os.kill(os.getpid(), signal.SIGKILL)
            return real.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(real, name)

    pinned.cursor = Dying()
    queue.settle_and_claim(Settlement.delete(item), count=1, lease_time=600)
    print("survived", flush=True)
""")


def test_sqlite_caller_killed_between_settlement_and_claim_undoes_the_settlement(
    tmp_path: Path, make_queue: Callable[[str], bridge.Queue]
) -> None:
    spec = spec_for("sqlite", tmp_path)
    queue = make_queue("sqlite")
    queue.create_items([f"item {n}" for n in range(ITEMS)])
    child = subprocess.run(
        [sys.executable, "-c", DYING_CALLER, json.dumps(spec), queue.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    item_id, token, created, expire = json.loads(child.stdout.splitlines()[0])
    held = bridge.QueueItem(item_id, "item 0", created, expire, 1, 0, queue.name, token)
    _still_ours(queue, held)
