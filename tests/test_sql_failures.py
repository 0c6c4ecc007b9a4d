"""When the database fails: clear errors, nothing half-written, recovery by itself.

The connection is killed by the server while a call is blocked inside it
(another session holds a table lock), which is as close to "the database
died mid-call" as a test can get without stopping the shared server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql import SqlBackend

from conftest import MARIADB_URL, POSTGRES_URL, spec_for


def _backend(queue: bridge.Queue) -> SqlBackend:
    assert isinstance(queue.backend, SqlBackend)
    return queue.backend


def _kill_while_blocked(queue: bridge.Queue, call: Callable[[], object], kind: str) -> Exception:
    """Run ``call`` while another session locks the table, kill its connection."""
    backend = _backend(queue)
    table = backend.table.name
    admin = sa.create_engine(
        POSTGRES_URL if kind == "postgres" else MARIADB_URL, isolation_level="AUTOCOMMIT"
    )
    raised: list[Exception] = []

    def victim() -> None:
        try:
            call()
        except Exception as exc:
            raised.append(exc)

    with admin.connect() as locker, admin.connect() as killer:
        if kind == "postgres":
            locker.exec_driver_sql("BEGIN")
            locker.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        else:
            locker.exec_driver_sql(f"LOCK TABLES {table} WRITE")
        thread = threading.Thread(target=victim)
        thread.start()
        blocked = _wait_for_blocked_session(killer, kind, table)
        if kind == "postgres":
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({blocked})")
        else:
            killer.exec_driver_sql(f"KILL {blocked}")
        thread.join(timeout=30)
        if kind == "postgres":
            locker.exec_driver_sql("ROLLBACK")
        else:
            locker.exec_driver_sql("UNLOCK TABLES")
    admin.dispose()
    assert not thread.is_alive()
    assert len(raised) == 1, "the call survived its connection being killed"
    return raised[0]


def _wait_for_blocked_session(conn: sa.Connection, kind: str, table: str) -> int:
    if kind == "postgres":
        query = (
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            f"AND query LIKE '%%{table}%%' AND pid <> pg_backend_pid()"
        )
    else:
        query = (
            "SELECT id FROM information_schema.processlist WHERE state LIKE "
            f"'%%lock%%' AND info LIKE '%%{table}%%' AND id <> connection_id()"
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = conn.exec_driver_sql(query).scalar()
        if found:
            return int(found)
        time.sleep(0.05)
    raise AssertionError("the call never blocked on the lock")


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.service("postgres")),
        pytest.param("mariadb", marks=pytest.mark.service("mariadb")),
    ]
)
def server_queue(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    queue = factory.get("killed_mid_call")
    queue.delete_queue()
    yield request.param, queue
    queue.delete_queue()
    factory.close()


def test_connection_killed_mid_create_writes_nothing_and_recovers(server_queue: Any) -> None:
    kind, queue = server_queue
    queue.create_item("before")
    error = _kill_while_blocked(queue, lambda: queue.create_items(["a", "b", "c"]), kind)
    assert isinstance(error, bridge.BackendUnavailableError), repr(error)
    assert "create_items" in str(error)
    assert _backend(queue).url in str(error)
    assert isinstance(error.__cause__, sa.exc.DBAPIError)
    assert queue.number_of_items() == 1, "a killed create_items left rows behind"
    assert queue.create_item("after")
    assert queue.number_of_items() == 2


def test_connection_killed_mid_claim_leaves_the_item_claimable(server_queue: Any) -> None:
    kind, queue = server_queue
    queue.create_item("only")
    error = _kill_while_blocked(queue, lambda: queue.claim_item(lease_time=60), kind)
    assert isinstance(error, bridge.BackendUnavailableError), repr(error)
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.data == "only"
    assert item.attempts == 1
    assert queue.delete_item(item)


def test_unreachable_server_names_the_url_without_its_password() -> None:
    factory = bridge.QueueFactory(default="postgresql://app:s3cret@127.0.0.1:1/nowhere")
    queue = factory.get("emails")
    with pytest.raises(bridge.BackendUnavailableError) as caught:
        queue.create_item("x")
    message = str(caught.value)
    assert "postgresql://app:***@127.0.0.1:1/nowhere" in message
    assert "s3cret" not in message
    factory.close()


def test_sqlite_writer_held_past_the_busy_timeout_is_a_clear_error(tmp_path: Any) -> None:
    path = tmp_path / "held.sqlite"
    factory = bridge.QueueFactory(
        default={"url": f"sqlite:///{path}", "options": {"busy_timeout": 0.2}}
    )
    queue = factory.get("held")
    queue.create_item("first")
    import sqlite3

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(bridge.BackendError, match=r"claim_items on sqlite:///.*locked"):
            queue.claim_item(lease_time=30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.attempts == 1, "the failed claim counted an attempt"
    factory.close()
