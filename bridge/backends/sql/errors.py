"""Driver errors of the SQL backend, turned into bridge's own.

Kept apart from ``backend.py`` so that module reads as its operations.
A lost connection or a server that cannot be reached becomes
:class:`~bridge.errors.BackendUnavailableError`; any other database error
:class:`~bridge.errors.BackendError`; both name the (masked) URL and the
operation, and chain the driver's exception. A statement MariaDB/MySQL
refused as too large is a ``BackendError`` although the server then drops
the connection: the same statement would fail on any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from bridge.errors import BackendError, BackendUnavailableError

# Errors after which the transaction was rolled back and running it again
# is safe: deadlocks and serialization failures (PostgreSQL SQLSTATEs,
# MySQL/MariaDB error numbers).
_RETRY_SQLSTATES = {"40001", "40P01"}
_RETRY_MYSQL_CODES = {1205, 1213}
# MariaDB/MySQL's "packet bigger than max_allowed_packet": the server drops
# the connection, but it would refuse the same statement on any other.
_TOO_LARGE_MYSQL_CODE = 1153


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether the failed transaction may simply be run again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return _mysql_code(exc) in _RETRY_MYSQL_CODES


def _mysql_code(exc: sa.exc.DBAPIError) -> object:
    """MariaDB/MySQL's error number (the driver error's first argument), if any."""
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return args[0] if args else None


@contextmanager
def wrap_errors(url: str, operation: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as bridge errors naming ``url``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        message = f"{operation} on {url} failed: {reason}"
        lost = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        if _mysql_code(exc) == _TOO_LARGE_MYSQL_CODE:
            raise BackendError(message) from exc
        if exc.connection_invalidated or lost:
            raise BackendUnavailableError(message) from exc
        raise BackendError(message) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise BackendError(f"{operation} on {url} failed: {exc}") from exc
