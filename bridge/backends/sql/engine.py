"""The SQL backend's engine: URL to connection pool, session settings, server check.

Each session is set up by the statements of :func:`session_statements`, run
on every new connection; ``catalogue.py`` lists them with the rest.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from bridge.backends import missing_driver
from bridge.backends.sql.driver import BEGIN, BEGIN_WRITE
from bridge.errors import ConfigurationError
from bridge.urls import mask_password

_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_OWNER_ONLY = 0o600


def session_statements(kind: str, synchronous: str = "NORMAL") -> list[str]:
    """What every new connection runs first, by dialect kind (see ``dialect_kind``)."""
    if kind == "sqlite":
        return ["PRAGMA journal_mode=WAL", f"PRAGMA synchronous={synchronous}"]
    if kind == "postgresql":
        # Every ordered bridge query has an index in its order; a sort is
        # chosen only on stale statistics (a queue grown from empty since
        # the last ANALYZE, autovacuum off or not yet round), and then it
        # sorted the whole queue on every claim: 200 ms per claim at 30k
        # items, where the index walk takes 0.3 ms. Queries that must sort
        # (peek) still do; this only takes the sort off the table as a choice.
        # That choice costs such a plan 10^10, far past jit_above_cost, so
        # PostgreSQL compiled it with LLVM first: a second of JIT for a 2 ms
        # browse page or a small sort. No bridge statement gains from JIT.
        return ["SET enable_sort = off", "SET jit = off"]
    # UTC, so that UNIX_TIMESTAMP(NOW(6)) is exact across daylight-saving changes.
    return ["SET time_zone = '+00:00'"]


def create_engine(url: str, busy_timeout: float, synchronous: str, pool_size: int) -> Engine:
    """The engine for ``url``, with bridge's isolation, pool and session settings."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"{mask_password(url)} is not a database URL: {exc}") from None
    except ValueError as exc:
        # The port is the one part make_url converts: int("abc") fails.
        raise ConfigurationError(
            f"{mask_password(url)} is not a database URL: its port is not a number ({exc})"
        ) from None
    _check_url_parts(parsed, url)
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database is private to one connection; use memory:// "
                "for an in-process queue or sqlite:///path for a file"
            )
        if not parsed.query.get("uri"):  # a file: URI names no plain path
            create_private_file(parsed.database)
        options["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
    else:
        options.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)
    if backend == "postgresql":
        # Every PostgreSQL operation is one statement: autocommit makes it one round trip.
        options["isolation_level"] = "AUTOCOMMIT"
    elif backend in ("mysql", "mariadb"):
        options["isolation_level"] = "READ COMMITTED"
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    try:
        engine = sa.create_engine(parsed, **options)
    except ImportError as exc:
        raise missing_driver(exc, url) from None
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"{mask_password(url)}: {exc}") from None
    except (TypeError, ValueError) as exc:
        # The dialect converts the URL's query options to the driver's types here.
        raise ConfigurationError(f"{mask_password(url)} has a bad query option: {exc}") from None
    _install_session_settings(engine, backend, synchronous)
    return engine


def _check_url_parts(parsed: sa.engine.URL, url: str) -> None:
    """Refuse what drivers would fail on with a bare ValueError or OverflowError."""
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(
            f"{mask_password(url)} is not a database URL: port {parsed.port} is not 1 to 65535"
        )
    parts = (parsed.username, parsed.password, parsed.host, parsed.database)
    if any("\x00" in part for part in parts if isinstance(part, str)):
        raise ConfigurationError(f"{mask_password(url)} is not a database URL: it holds a NUL")


def create_private_file(path: str) -> None:
    """Create the SQLite file, if new, readable and writable by its owner only.

    The queue holds payloads, which may be secret. SQLite gives the ``-wal``
    and ``-shm`` files it makes the mode of the database file, so they are
    private too. A file that already exists keeps the mode its owner chose.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _OWNER_ONLY)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigurationError(f"cannot create the SQLite file {path}: {exc}") from None
    try:
        os.fchmod(descriptor, _OWNER_ONLY)  # whatever the umask took away or left
    finally:
        os.close(descriptor)


def _install_session_settings(engine: Engine, backend: str, synchronous: str) -> None:
    kind = "mysql" if backend in ("mysql", "mariadb") else backend
    settings = session_statements(kind, synchronous)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        if kind == "sqlite":
            # The driver's own transaction handling would BEGIN DEFERRED and
            # then fail to upgrade the lock under contention; we begin ourselves.
            dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for statement in settings:
            cursor.execute(statement)
        cursor.close()
        if kind == "postgresql":
            dbapi_conn.commit()

    if kind == "sqlite":

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            read = conn.get_execution_options().get("bridge_read", False)
            conn.exec_driver_sql(BEGIN if read else BEGIN_WRITE)


MAX_STATEMENT = "SELECT @@max_allowed_packet"
"""MariaDB/MySQL: the longest statement the server takes, read once per backend."""


def max_statement(conn: Connection) -> int:
    """The server's ``max_allowed_packet``: a longer statement makes it drop the connection."""
    return int(conn.exec_driver_sql(MAX_STATEMENT).scalar_one())


def check_server(conn: Connection) -> None:
    """Refuse a MariaDB or MySQL server too old for SKIP LOCKED."""
    dialect = conn.dialect
    version = dialect.server_version_info or ()
    if dialect.name in ("mysql", "mariadb"):
        mariadb = getattr(dialect, "is_mariadb", False)
        needed = (10, 6) if mariadb else (8, 0, 1)
        if tuple(version[: len(needed)]) < needed:
            product = "MariaDB" if mariadb else "MySQL"
            raise ConfigurationError(
                f"the sql backend needs {product} {'.'.join(map(str, needed))}+ "
                f"(SKIP LOCKED); this server is {'.'.join(map(str, version))}"
            )
