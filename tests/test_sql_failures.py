"""When the database fails: clear errors, nothing half-written, recovery by itself.

The connection is killed by the server while a call is blocked inside it
(another session holds a table lock), which is as close to "the database
died mid-call" as a test can get without stopping the shared server. A
server that stops altogether is a TCP forwarder in front of the shared one,
closed under the backend. And a payload too large for MariaDB is refused
as what it is, not reported as a lost server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql import SqlBackend

from conftest import MARIADB_URL, POSTGRES_URL, SESSION_TABLE, spec_for


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


# -- a server that stops ---------------------------------------------------------------


class Forwarder:
    """A local port forwarding to the database: stopping it is the server stopping.

    Connections through it drop at once, and new ones are refused, while
    the shared server goes on serving everyone else.
    """

    def __init__(self, host: str, port: int, listen_port: int = 0) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", listen_port))
        self.port: int = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # stopped
                return
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); the port refuses from now
        self.listener.close()
        for each in self.open:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)


OUTAGE_SCRIPT = textwrap.dedent("""
    import gc, json, sys, threading
    import sqlalchemy as sa
    import bridge
    from test_sql_failures import Forwarder

    url, table = sa.engine.make_url(sys.argv[1]), sys.argv[2]
    forwarder = Forwarder(url.host, url.port or 5432)
    through = url.set(host="127.0.0.1", port=forwarder.port)
    spec = {"url": through.render_as_string(hide_password=False), "options": {"table": table}}
    factory = bridge.QueueFactory(default=spec)
    queue = factory.get(sys.argv[3])
    queue.create_item("before")  # set up, with a pinned connection
    forwarder.stop()

    def attempt(call):
        try:
            call()
        except bridge.BackendUnavailableError as exc:
            print(type(exc).__name__, type(exc.__cause__).__module__, flush=True)

    attempt(lambda: queue.create_item("pinned connection dropped"))
    attempt(lambda: queue.create_item("no connection opens"))
    attempt(lambda: queue.claim_item(lease_time=60))
    thread = threading.Thread(target=attempt, args=(lambda: queue.create_item("new thread"),))
    thread.start()
    thread.join()
    attempt(lambda: queue.counts())
    gc.collect()

    forwarder = Forwarder(url.host, url.port or 5432, listen_port=forwarder.port)
    queue.create_item("after")
    print("back", queue.number_of_items(), flush=True)
    queue.delete_queue()
    factory.close()
""")


@pytest.mark.service("postgres")
def test_a_stopped_server_is_unavailable_never_a_bare_driver_error() -> None:
    """Once the backend has connected, a server that stops must still surface as
    BackendUnavailableError: new connections used to raise psycopg's own error,
    with an "Exception ignored in _Pinned.__del__" after it. Run in a child
    process so that its stderr can be read whole."""
    proc = subprocess.run(
        [sys.executable, "-c", OUTAGE_SCRIPT, POSTGRES_URL, SESSION_TABLE, "outage"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:-1] == ["BackendUnavailableError sqlalchemy.exc"] * 5, proc.stdout
    assert lines[-1] == "back 2", "the backend did not recover once the server was back"


# -- a payload too large for MariaDB ----------------------------------------------------


@pytest.fixture
def mariadb_queue(tmp_path: Path) -> Any:
    factory = bridge.QueueFactory(default=spec_for("mariadb", tmp_path))
    queue = factory.get(f"big_{uuid.uuid4().hex[:10]}")
    yield queue
    queue.delete_queue()
    factory.close()


def _max_allowed_packet() -> int:
    engine = sa.create_engine(MARIADB_URL)
    with engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    engine.dispose()
    return limit


@pytest.mark.service("mariadb")
def test_a_payload_over_max_allowed_packet_is_refused_before_it_is_sent(
    mariadb_queue: bridge.Queue, tmp_path: Path
) -> None:
    limit = _max_allowed_packet()
    mariadb_queue.create_item("first")
    # JSON adds quotes, and the driver sends bytes as hex: over the limit.
    too_big = "x" * (limit // 2)
    with pytest.raises(bridge.PayloadError) as caught:
        mariadb_queue.create_items(["fits", too_big])
    message = str(caught.value)
    assert f"{len(json.dumps(too_big)):,} bytes" in message, message
    assert f"max_allowed_packet is {limit:,} bytes" in message, message
    assert mariadb_queue.number_of_items() == 1, "create_items stores all or none"

    # The case, on a backend whose first call it is: 50 MB.
    fresh = bridge.QueueFactory(default=spec_for("mariadb", tmp_path))
    with pytest.raises(bridge.PayloadError, match="max_allowed_packet"):
        fresh.get(mariadb_queue.name).create_item("y" * 50_000_000)
    fresh.close()
    assert mariadb_queue.number_of_items() == 1

    # Under the limit, whole; and several that fit alone go in several statements.
    fits = "z" * (limit // 2 - 8192)
    thirds = ["t" * (limit // 6)] * 3
    mariadb_queue.create_items([fits, *thirds])
    claimed = mariadb_queue.claim_items(5, lease_time=60)
    assert [item.data for item in claimed] == ["first", fits, *thirds]
    assert mariadb_queue.delete_items(claimed) == 5


@pytest.mark.service("mariadb")
def test_a_statement_the_server_refuses_as_too_large_is_no_outage(
    mariadb_queue: bridge.Queue,
) -> None:
    """The limit read at start may be stale (lowered since): the server then refuses
    the statement itself (error 1153) and closes the connection. That is still
    a refusal, not an outage, and the next call works at once."""
    limit = _max_allowed_packet()
    mariadb_queue.create_item("first")
    backend = mariadb_queue.backend
    assert isinstance(backend, SqlBackend)
    backend._max_statement = 4 * limit  # what a stale reading would say
    with pytest.raises(bridge.BackendError, match="max_allowed_packet") as caught:
        mariadb_queue.create_item("w" * (limit // 2 + 1000))
    assert not isinstance(caught.value, bridge.BackendUnavailableError)
    assert mariadb_queue.create_item("next")
    assert mariadb_queue.number_of_items() == 2
