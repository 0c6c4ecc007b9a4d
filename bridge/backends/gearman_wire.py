"""Gearman's protocol, as much of it as the Gearman backend speaks: one socket, no library.

Why our own client: PyPI's ``gearman`` (2.0.2, 2011) is Python 2 only;
``gearman3`` (0.2.1, 2021, its Python 3 fork, unmaintained since) and
``python3-gearman`` keep its design, a worker loop that owns its
connections and completes jobs from a callback. The backend needs the
opposite: one connection per claimed job, held open for as long as the
claim lasts and closed on purpose to hand the job back (gearmand requeues
the job of a worker that disconnects), and several requests written
before their answers are read. The binary protocol is small (a 12-byte
header: ``\\0REQ``/``\\0RES``, type, length; then NUL-separated
arguments), so this module writes it directly, with the text admin
commands (``status``, ``workers``, ``drop function``) beside it.

Errors: :class:`GearmanUnavailable` when the socket fails (connect, send,
receive, timeout, a closed connection), :class:`GearmanServerError` for an
``ERROR`` packet or an admin ``ERR`` line. The backend wraps both.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Sequence

REQ = b"\0REQ"
RES = b"\0RES"
_HEADER = struct.Struct(">4sII")

# Request types (the protocol document's numbers).
CAN_DO = 1
RESET_ABILITIES = 3
PRE_SLEEP = 4
SUBMIT_JOB_BG = 18
SUBMIT_JOB_HIGH_BG = 32
SUBMIT_JOB_LOW_BG = 34
WORK_COMPLETE = 13
ECHO_REQ = 16
SET_CLIENT_ID = 22
GRAB_JOB_UNIQ = 30

# Response types.
NOOP = 6
JOB_CREATED = 8
NO_JOB = 10
ECHO_RES = 17
ERROR = 19
JOB_ASSIGN_UNIQ = 31

# How many NUL-separated arguments each response carries: the last may hold
# NULs of its own (a job's workload), so a body is split at most n-1 times.
_ARGS = {NOOP: 0, JOB_CREATED: 1, NO_JOB: 0, ECHO_RES: 1, ERROR: 2, JOB_ASSIGN_UNIQ: 4}


class GearmanUnavailable(Exception):
    """The socket failed: gearmand is down, unreachable, or dropped the connection."""


class GearmanServerError(Exception):
    """gearmand answered with an ERROR packet or an admin ``ERR`` line."""


def packet(kind: int, *args: bytes) -> bytes:
    """One request packet."""
    body = b"\0".join(args)
    return _HEADER.pack(REQ, kind, len(body)) + body


class Connection:
    """One TCP connection to gearmand: packets out, answers in, in order."""

    __slots__ = ("_buffer", "_sock", "_timeout", "address", "client_id")

    def __init__(
        self, host: str, port: int, connect_timeout: float, timeout: float, client_id: str = ""
    ) -> None:
        self.address = f"{host}:{port}"
        self.client_id = client_id
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise GearmanUnavailable(
                f"cannot connect to gearmand at {self.address}: {exc}"
            ) from exc
        self._timeout = timeout
        self._sock.settimeout(timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        if client_id:
            # Named, so that the admin ``workers`` listing shows when it is gone.
            self.send(packet(SET_CLIENT_ID, client_id.encode()))

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise GearmanUnavailable(f"lost gearmand at {self.address}: {exc}") from exc

    def read(self) -> tuple[int, list[bytes]]:
        """The next response packet: its type and arguments; an ERROR packet raises."""
        while True:
            header = self._take(_HEADER.size)
            magic, kind, size = _HEADER.unpack(header)
            if magic != RES:
                raise GearmanUnavailable(
                    f"gearmand at {self.address} sent {bytes(header)!r}, not a response packet"
                )
            body = self._take(size)
            if kind == NOOP:
                continue  # a wake-up for sleeping workers; this connection never sleeps
            count = _ARGS.get(kind, 1)
            args = body.split(b"\0", count - 1) if count else []
            if kind == ERROR:
                code, text = [*args, b""][:2]
                raise GearmanServerError(
                    f"gearmand at {self.address}: {code.decode(errors='replace')}: "
                    f"{text.decode(errors='replace')}"
                )
            return kind, args

    def woken(self, timeout: float) -> bool:
        """Whether gearmand sent ``NOOP`` within ``timeout`` s: after ``PRE_SLEEP``, a job
        came for one of this worker's functions. Any other packet raises."""
        deadline = time.monotonic() + timeout
        try:
            while len(self._buffer) < _HEADER.size:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    self._sock.settimeout(left)
                except OSError as exc:
                    raise GearmanUnavailable(f"lost gearmand at {self.address}: {exc}") from exc
                try:
                    self._fill()
                except GearmanUnavailable as exc:
                    if isinstance(exc.__cause__, TimeoutError):
                        return False  # what came so far stays in the buffer
                    raise
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(self._timeout)
        kind = _HEADER.unpack(bytes(self._buffer[: _HEADER.size]))[1]
        if kind != NOOP:
            got, _ = self.read()  # an ERROR packet raises here
            raise GearmanUnavailable(f"gearmand at {self.address} woke a worker with type {got}")
        self._take(_HEADER.size)
        return True

    def expect(self, kind: int) -> list[bytes]:
        """The arguments of the next packet, which must be of type ``kind``."""
        got, args = self.read()
        if got != kind:
            raise GearmanUnavailable(f"gearmand at {self.address} answered type {got}, not {kind}")
        return args

    def admin(self, command: str) -> list[str]:
        """A text admin command: its lines up to the closing ``.`` (``status``, ``workers``)."""
        self.send(command.encode() + b"\n")
        lines = []
        while (line := self._line()) != ".":
            if line.startswith("ERR "):
                raise GearmanServerError(f"gearmand at {self.address}: {line}")
            lines.append(line)
        return lines

    def admin_one(self, command: bytes) -> str:
        """A text admin command answered by one line (``drop function``): the line."""
        self.send(command + b"\n")
        return self._line()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _line(self) -> str:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line.decode("utf-8", errors="surrogateescape").rstrip("\r")

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except OSError as exc:  # socket.timeout is an OSError
            raise GearmanUnavailable(f"lost gearmand at {self.address}: {exc}") from exc
        if not chunk:
            raise GearmanUnavailable(f"gearmand at {self.address} closed the connection")
        self._buffer += chunk


def send_all(connections: Sequence[Connection], requests: Sequence[bytes]) -> None:
    """Write each connection its requests before any answer is read: one round trip for all."""
    for connection, data in zip(connections, requests, strict=True):
        connection.send(data)
