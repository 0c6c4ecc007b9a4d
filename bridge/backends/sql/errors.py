"""Driver errors of the SQL backend, turned into bridge's own.

Kept apart from ``backend.py`` so that module reads as its operations.
A lost connection or a server that cannot be reached becomes
:class:`~bridge.errors.BackendUnavailableError`; any other database error
:class:`~bridge.errors.BackendError`; both name the (masked) URL and the
operation, and chain the driver's exception.
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


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether the failed transaction may simply be run again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _RETRY_MYSQL_CODES


@contextmanager
def wrap_errors(url: str, operation: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as bridge errors naming ``url``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        message = f"{operation} on {url} failed: {reason}"
        lost = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        if exc.connection_invalidated or lost:
            raise BackendUnavailableError(message) from exc
        raise BackendError(message) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise BackendError(f"{operation} on {url} failed: {exc}") from exc
