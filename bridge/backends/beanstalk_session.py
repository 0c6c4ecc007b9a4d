"""The one connection of a beanstalkd backend object, and what rides on it.

beanstalkd ties every reservation to the connection that made it, so a
backend object talks through exactly one (``beanstalk_wire.Connection``),
under one lock. What lives and dies with that connection is here: the
claims it holds (``beanstalk_claims.py``), the queues its waits have
named (``beanstalk_parked.py``), the fractional delays it ends on time
(``beanstalk_delays.py``), and the wrapping of driver errors. A lost
connection ends every claim at once: beanstalkd releases its reservations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bridge.backends import beanstalk_parked as parked
from bridge.backends import beanstalk_wire as wire
from bridge.backends.beanstalk_claims import Claim, Claims
from bridge.backends.beanstalk_delays import EarlyDelays
from bridge.errors import BackendError, BackendUnavailableError, BridgeError


class Session:
    """The connection's state and helpers; :class:`BeanstalkBackend` is built on it.

    ``url``, ``_g`` (greenstalk) and ``_conn`` are set by the backend's
    constructor, which calls :meth:`forget_connections` for the rest.
    """

    url: str
    _g: Any
    _conn: wire.Connection
    _lock: threading.RLock
    _claims: Claims
    _waiter: parked.Waiter
    _delays: EarlyDelays

    def close(self) -> None:
        """Close the connection: beanstalkd releases every job it still has reserved,
        parked ones included."""
        with self._lock:
            self._lost()

    def forget_connections(self) -> None:
        """Start afresh without a word to the server: at start-up and in a forked child.

        A new owner id makes the parent's claims foreign to the child.
        """
        self._lock = threading.RLock()
        self._claims = Claims()
        self._waiter = parked.Waiter()
        self._delays = EarlyDelays()
        self._conn.forget()

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Serialize calls; driver errors become bridge errors naming the server."""
        with self._lock:
            try:
                yield
            except BridgeError:
                raise
            except self._g.JobTooBigError as exc:
                raise BackendError(
                    f"{operation} on {self.url} failed: the payload is larger than the "
                    "server's max-job-size (beanstalkd -z); nothing was written"
                ) from exc
            except self._g.Error as exc:
                raise BackendError(f"{operation} on {self.url} failed: {exc!r}") from exc
            except (OSError, AssertionError, ValueError) as exc:
                # A lost or garbled connection: beanstalkd hands back every
                # reservation it held, so those claims are over.
                self._lost()
                raise BackendUnavailableError(
                    f"{operation} on {self.url} failed: the connection is lost ({exc!r}); "
                    "beanstalkd released this connection's claims; the next call reconnects"
                ) from exc

    def _lost(self) -> None:
        """The connection is gone or untrusted: drop it; beanstalkd releases its jobs."""
        self._conn.drop()
        self._claims.clear()
        self._waiter.forget()

    def _release(self, claim: Claim) -> int:
        return self._done(self._conn.client().release, self._job(claim), claim.pri, 0)

    def _requeue(self, claims: list[Claim]) -> int:
        """Release the claims' jobs at their own priority; how many were still reserved here."""
        if not claims:
            return 0
        client = self._conn.client()
        released = 0
        for claim in claims:
            self._claims.end(claim)
            released += self._done(client.release, self._job(claim), claim.pri, 0)
        return released

    def _done(self, call: Any, *args: Any) -> int:
        """1 if beanstalkd did it, 0 if it answered NOT_FOUND (not there, or not ours)."""
        try:
            call(*args)
        except self._g.NotFoundError:
            return 0
        return 1

    def _job(self, claim: Claim) -> Any:
        """greenstalk's release, touch and bury take a Job (only its id is sent)."""
        return self._g.Job(claim.job_id, b"")
