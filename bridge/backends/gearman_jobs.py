"""What a bridge item is in gearmand: function names, unique ids, status lines, claims.

Kept apart from ``gearman.py``, which holds the queue semantics (claims,
handing jobs back, who may settle), so that a reader sees here, in one
place, every name and string the backend writes into gearmand and how it
reads them back.

A queue is one Gearman function per priority: ``NAME`` for priority 0 and
``NAME~P`` for priority P (``emails``, ``emails~5``, ``emails~-3``), so
that claims can take the highest priority first whatever its value
(gearmand itself has three levels). In ``NAME``, bytes a function name or
the admin protocol cannot carry (whitespace, control bytes) and the
separators ``%`` and ``~`` are written ``%XX``; a name still longer than
gearmand's functions may be is replaced by ``sha256-`` and its digest.

A job's unique id is ``<nonce>:<creation time>:<attempts>:<item id>``
(``1a2b3c4d:1764480000.123456:2:9f86d081884c7d65``): the protocol has no
field for any of these, and the workload must stay the payload for other
Gearman workers. A job handed back is replaced by a copy (same item id and
creation time, attempts so far, a new nonce): gearmand merges background
jobs of one function that share a unique id, so every copy needs its own.
A job from another producer has the job handle as its item id until it is
first handed back, and keeps it then.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from bridge.backends.gearman_wire import Connection

MAX_FUNCTION_BYTES = 480
"""Below gearmand's 512-byte function names, with room for ``~-2147483648``."""

_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("%"), ord("~")} | frozenset(range(0x80, 0x100))
_UNIQUE = re.compile(rb"^([cn])[0-9a-f]{7}:(\d+\.\d+):(\d+):([\x21-\x7e]+)$")
MAX_UNIQUE_BYTES = 64
"""gearmand's longest unique id."""


def queue_function(name: str) -> bytes:
    """The function name of the queue's priority-0 items (and the stem of the others)."""
    raw = name.encode("utf-8")
    escaped = b"".join(bytes([b]) if b in _PLAIN else b"%%%02X" % b for b in raw)
    if len(escaped) > MAX_FUNCTION_BYTES:
        return b"sha256-" + hashlib.sha256(raw).hexdigest().encode()
    return escaped


def function_for(name: str, priority: int) -> bytes:
    """The function holding the queue's items of ``priority``."""
    stem = queue_function(name)
    return stem if priority == 0 else b"%s~%d" % (stem, priority)


def priority_of(function: bytes, stem: bytes) -> int | None:
    """The priority ``function`` holds for the queue whose stem is ``stem``; None if not its."""
    if function == stem:
        return 0
    head, sep, tail = function.rpartition(b"~")
    if sep and head == stem and re.fullmatch(rb"-?\d+", tail):
        return int(tail)
    return None


def queue_name_of(function: bytes) -> str:
    """The queue a function belongs to, for listings (a hashed name stays hashed)."""
    stem, sep, tail = function.rpartition(b"~")
    if not (sep and re.fullmatch(rb"-?\d+", tail)):
        stem = function
    raw = re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m[1], 16)]), stem)
    return raw.decode("utf-8", errors="replace")


def new_id() -> str:
    """A new item's id: 16 random hex digits."""
    return secrets.token_hex(8)


def unique_for(item_id: str, created: float, attempts: int, *, copy: bool) -> bytes:
    """A job's unique id: a fresh nonce, then what the job must carry (see the docstring).

    The nonce makes every copy's unique id new, so gearmand never merges a
    copy into the job it replaces (it would answer with the old handle).
    Its first letter tells a copy (``c``, at gearmand's high level) from a
    new job (``n``), which puts a claim's jobs back in gearmand's order.
    Another producer's job keeps its handle as its id, unless the handle is
    too long to fit (a long host name): then its copy gets a new id.
    """
    if len(item_id) > MAX_UNIQUE_BYTES - 40:
        item_id = new_id()
    nonce = (b"c" if copy else b"n") + secrets.token_hex(4).encode()[1:]
    return b"%s:%.6f:%d:%s" % (nonce, created, attempts, item_id.encode())


class Unique(NamedTuple):
    """What a unique id of ours carries."""

    item_id: str
    created: float
    attempts: int
    copy: bool


def parse_unique(unique: bytes) -> Unique | None:
    """What a unique id of ours carries; None for another producer's job."""
    match = _UNIQUE.match(unique)
    if match is None:
        return None
    return Unique(match[4].decode(), float(match[2]), int(match[3]), match[1] == b"c")


class FunctionStatus(NamedTuple):
    """One line of the admin ``status`` command."""

    function: bytes
    total: int
    running: int

    @property
    def queued(self) -> int:
        return max(self.total - self.running, 0)


def parse_high(lines: list[str]) -> dict[bytes, int]:
    """Jobs queued at gearmand's high level, by function (admin ``prioritystatus``)."""
    found = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 4 and parts[1].isdigit():
            found[parts[0].encode("utf-8", errors="surrogateescape")] = int(parts[1])
    return found


def parse_status(lines: list[str]) -> list[FunctionStatus]:
    """``FUNCTION\\tTOTAL\\tRUNNING\\tAVAILABLE_WORKERS`` lines, as the server sent them."""
    found = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            function = parts[0].encode("utf-8", errors="surrogateescape")
            found.append(FunctionStatus(function, int(parts[1]), int(parts[2])))
    return found


@dataclass(slots=True)
class Claim:
    """A job this backend object holds: grabbed on ``connection``, which nothing else uses."""

    name: str
    item_id: str
    handle: str
    function: bytes
    payload: bytes
    priority: int
    created: float
    expire: float
    attempts: int
    connection: Connection
    order: tuple[int, int]
    """Where gearmand had the job: copies (its high level) first, then by handle."""


class Errors:
    """``fail_item``'s errors, by item id, for this object's next claims; bounded.

    gearmand has no place for them (a job never changes, and a unique id
    holds 64 bytes), so they live in the process: the oldest go first.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 10_000) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def get(self, item_id: str) -> str | None:
        return self._entries.get(item_id)

    def put(self, item_id: str, error: str) -> None:
        self._entries[item_id] = error
        self._entries.move_to_end(item_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, item_id: str) -> None:
        self._entries.pop(item_id, None)
