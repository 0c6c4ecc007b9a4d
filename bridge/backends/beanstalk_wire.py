"""What the beanstalkd backend puts on the wire: URLs, tube names, job bodies, priorities.

``beanstalk.py`` holds the queue semantics; this module holds the encodings
they rest on, and :class:`Connection`, the one socket a backend object talks
through (beanstalkd ties every reservation to the connection that made it,
so there is exactly one, used under the backend's lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import socket
import string
from typing import Any
from urllib.parse import urlsplit

from bridge.contract import MAX_PRIORITY
from bridge.errors import ConfigurationError

DEFAULT_PORT = 11300
MAX_TUBE_BYTES = 200
"""beanstalkd's longest tube name."""

# beanstalkd accepts these in a tube name (and no leading "-"). "$" is kept
# out of the plain set: it starts an escape, so every name maps to one tube.
_PLAIN = frozenset((string.ascii_letters + string.digits + "-+/;._()").encode())
_HASHED = "$$"
"""Marks a tube named by a hash of a queue name too long for beanstalkd."""

_MAGIC = b"\x00bridge1\x00"
"""Opens the body of every job bridge puts: a JSON payload never starts with NUL."""


def parse_url(url: str) -> tuple[str, int]:
    """``beanstalk://host:port`` as (host, port); anything else is a ConfigurationError."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(f"bad beanstalk URL {url!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigurationError(f"beanstalk URL {url!r} names no host: beanstalk://host:11300")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ConfigurationError(
            f"beanstalk URL {url!r} may hold only a host and a port (beanstalk://host:11300): "
            "beanstalkd has no databases, users or URL options; set options in the queue's "
            "'options'"
        )
    return parts.hostname, port


def check_prefix(prefix: str) -> str:
    """A tube prefix made of characters beanstalkd allows, short enough to leave room."""
    if not isinstance(prefix, str) or any(b not in _PLAIN for b in prefix.encode()):
        raise ConfigurationError(
            f"tube_prefix {prefix!r} may hold only letters, digits and - + / ; . _ ( )"
        )
    if len(prefix) > MAX_TUBE_BYTES - 66 or prefix.startswith("-"):
        raise ConfigurationError(
            f"tube_prefix {prefix!r} must not start with '-' and must leave room for a "
            f"name: at most {MAX_TUBE_BYTES - 66} characters"
        )
    return prefix


def tube_for(prefix: str, name: str) -> str:
    """The tube of queue ``name``: the prefix, then the name with other bytes as ``$hh``.

    A name whose escaped form passes beanstalkd's 200 bytes is named by its
    SHA-256 instead (``$$`` and 64 hex digits), which :func:`name_of` cannot
    turn back: the backend remembers the names it hashed.
    """
    escaped = "".join(chr(b) if b in _PLAIN else f"${b:02x}" for b in name.encode())
    if not prefix and escaped.startswith("-"):
        escaped = "$2d" + escaped[1:]
    tube = prefix + escaped
    if len(tube) > MAX_TUBE_BYTES:
        tube = prefix + _HASHED + hashlib.sha256(name.encode()).hexdigest()
    return tube


def name_of(prefix: str, tube: str) -> str | None:
    """The queue name of a tube :func:`tube_for` made without hashing; None otherwise."""
    if not tube.startswith(prefix):
        return None
    escaped = tube[len(prefix) :]
    if not escaped or escaped.startswith(_HASHED):
        return None
    out = bytearray()
    i = 0
    try:
        while i < len(escaped):
            if escaped[i] == "$":
                out.append(int(escaped[i + 1 : i + 3], 16))
                i += 3
            else:
                out.append(ord(escaped[i]))
                i += 1
        return out.decode()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None  # a tube another program named: not one of bridge's


def wrap(payload: bytes, created: float) -> bytes:
    """The job body: the creation time (beanstalkd keeps whole seconds of age), the payload."""
    return b"%b%.6f\n%b" % (_MAGIC, created, payload)


def unwrap(body: bytes) -> tuple[float | None, bytes]:
    """(created, payload) of a body :func:`wrap` made; (None, body) for another producer's job."""
    if body.startswith(_MAGIC):
        header, newline, payload = body[len(_MAGIC) :].partition(b"\n")
        try:
            if newline:
                return float(header), payload
        except ValueError:
            pass
    return None, body


def to_pri(priority: int) -> int:
    """bridge's priority (32-bit signed, higher first) as beanstalkd's (unsigned, lower first)."""
    return MAX_PRIORITY - priority


def from_pri(pri: int) -> int:
    return MAX_PRIORITY - pri


def whole_seconds(seconds: float) -> int:
    """beanstalkd counts delays and ttr in whole seconds: rounded up, never cut short."""
    return math.ceil(seconds)


class Connection:
    """The backend object's one beanstalkd connection, opened on first use.

    Remembers the tube it ``use``s (puts, peeks and kicks go there) and the
    ones it watches (reserves come from there), so a call switches only when
    the queue changes. Not thread-safe: the backend calls it under its lock.
    """

    def __init__(
        self, greenstalk: Any, host: str, port: int, connect_timeout: float, timeout: float
    ) -> None:
        self._greenstalk = greenstalk
        self._address = (host, port)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._client: Any = None
        self._using = "default"
        self._watching = frozenset({"default"})

    def client(self) -> Any:
        """The greenstalk client, connecting first if there is none."""
        if self._client is None:
            sock = socket.create_connection(self._address, timeout=self._connect_timeout)
            # A server that stops answering must not hang a worker: every
            # call is bounded, and a timeout is a lost connection.
            sock.settimeout(self._timeout)
            self._client = self._greenstalk.Client(sock, encoding=None)
            self._using, self._watching = "default", frozenset({"default"})
        return self._client

    def use(self, tube: str) -> Any:
        client = self.client()
        if self._using != tube:
            client.use(tube)
            self._using = tube
        return client

    def watch(self, *tubes: str) -> Any:
        """The client, watching exactly ``tubes``: a claim watches its queue's tube, a
        wait (``beanstalk_parked.py``) those of every queue it waits on."""
        client = self.client()
        wanted = frozenset(tubes)
        if self._watching != wanted:
            # Watch first: beanstalkd refuses to ignore the last watched tube.
            for tube in wanted - self._watching:
                client.watch(tube)
            for tube in self._watching - wanted:
                client.ignore(tube)
            self._watching = wanted
        return client

    def drop(self) -> None:
        """Close after a failure; the server hands this connection's reservations back."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    def forget(self) -> None:
        """In a forked child: let go of the parent's socket without a word on it."""
        self._client = None
