"""How values cross between the Redis backend and its scripts: arguments in, replies out.

Each script's comment (``redis_scripts.py``, ``redis_admin.py``) says what
its reply holds; the functions here turn those replies into
:class:`~bridge.items.StoredItem` rows. Ids, times, attempts and priorities
arrive as Lua numbers, so as ints with nothing to parse; text arrives as
bytes and is decoded so that bytes another program wrote never raise.
Anything else about a reply is trusted no more than that: one of another
shape raises one of :data:`MALFORMED`, which the backend wraps into a
``BackendError``.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from bridge.items import ItemId, ItemPage, ItemState, ListedItem, Settlement, StoredItem

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

MALFORMED = (ValueError, TypeError, IndexError, AttributeError)
"""What reading a reply of an unexpected shape raises."""


def member(item_id: ItemId) -> str | None:
    """The id as the scripts store it, or None for an id this backend never issued."""
    if type(item_id) is not int or item_id < 1:
        return None
    return f"{item_id:016d}"


def tokens() -> Callable[[], str]:
    """A source of claim tokens: a random prefix and a count, unique to each claim.

    A token fences a claim's holder in and the previous holders out; it need
    not be secret (whoever reads Redis reads the tokens), only never the
    same twice for one item: 48 random bits per source, which a forked
    child replaces (``forget_connections``), then a count, and no system
    call per claim as ``secrets.token_hex`` makes.
    """
    prefix, serial = secrets.token_hex(6), itertools.count()
    return lambda: f"{prefix}{next(serial):x}"


def micros(seconds: float) -> int:
    """Seconds as the scripts count time: whole microseconds."""
    return round(seconds * 1_000_000)


def seconds(micros: int | bytes | None) -> float | None:
    """A time or duration from a script (microseconds, as a number or text), or None."""
    return None if micros is None else float(micros) / 1e6


def last_rank(limit: int | None) -> int:
    """The last rank (0-based) of the oldest ``limit`` held items; -1 for all of them."""
    return -1 if limit is None else limit - 1


def encoded(text: str) -> bytes:
    """Error or reason text as stored: UTF-8, with a lone surrogate (a file name in a
    traceback, say) escaped rather than refused, which would lose the whole text."""
    return text.encode("utf-8", "backslashreplace")


def text(raw: bytes | None) -> str | None:
    """Stored text, or None; bytes that are not UTF-8 (another program's) are escaped."""
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def listed_name(key: bytes) -> str:
    """A key as text; one that is not UTF-8 (so not bridge's) is listed escaped."""
    return key.decode("utf-8", "backslashreplace")


def listed_id(raw: int | bytes) -> ItemId:
    """A listed member's id: an int, or the text of a member that is no id."""
    return raw if isinstance(raw, int) else raw.decode("utf-8", "backslashreplace")


def claimed(out: list[Any], token: str) -> list[StoredItem]:
    """CLAIM's items: the lease end, the notes, then six fields per item."""
    expire = int(out[0]) / 1e6
    # The hot path of a batched claim, once per item: the columns sliced out
    # at C speed, and each row made by tuple.__new__ (what a named tuple's
    # _make does) rather than the named tuple's own __new__, a Python
    # function call per item; every field is given, defaults included.
    new = tuple.__new__
    return [
        new(StoredItem, (
            item_id, payload, created / 1e6, expire, attempts, priority, token,
            None if error is None else error.decode("utf-8", "backslashreplace"), None, None,
        ))
        for item_id, created, attempts, priority, payload, error in zip(
            out[2::6], out[3::6], out[4::6], out[5::6], out[6::6], out[7::6], strict=True
        )
    ]  # fmt: skip


def peeked(out: list[Any]) -> list[StoredItem]:
    """PEEK's items: the notes, then seven fields per item."""
    return [
        StoredItem(
            listed_id(out[i]), out[i + 5], out[i + 1] / 1e6, float(out[i + 4]) / 1e6,
            out[i + 2], out[i + 3], "", text(out[i + 6]),
        )
        for i in range(1, len(out), 7)
    ]  # fmt: skip


def held(out: list[Any]) -> list[StoredItem]:
    """HELD's items: eight fields each. A held item has no lease, so its expire is 0."""
    return [
        StoredItem(
            listed_id(out[i]), out[i + 5], out[i + 1] / 1e6, 0.0, out[i + 2], out[i + 3], "",
            text(out[i + 6]), float(out[i + 4]) / 1e6, text(out[i + 7]),
        )
        for i in range(0, len(out), 8)
    ]  # fmt: skip


_STATES = {state.value.encode(): state for state in ItemState}
_ZSET_LETTERS = "rldh"
"""A cursor's zset: ready, leased, delayed, held (the scripts' 1 to 4)."""


def listed(out: list[Any], start: int) -> list[ListedItem]:
    """BROWSE's and FIND's entries from ``start``: nine fields each (``entry`` in the scripts)."""
    rows = []
    for i in range(start, len(out), 9):
        state = _STATES[out[i + 7]]
        held = state is ItemState.HELD
        score = float(out[i + 4]) / 1e6
        stored = StoredItem(
            listed_id(out[i]), out[i + 5], out[i + 1] / 1e6, 0.0 if held else score,
            out[i + 2], out[i + 3], "", text(out[i + 6]), score if held else None,
            text(out[i + 8]),
        )  # fmt: skip
        rows.append(ListedItem(state, stored))
    return rows


def page(out: list[Any]) -> ItemPage:
    """BROWSE's reply: whether more follow, the cursor's zset, score and member, then entries."""
    more, zset, score, member = out[:4]
    after = None
    if more:
        shown = member.decode() if _is_id(member) else "x" + member.hex()
        after = f"{_ZSET_LETTERS[int(zset) - 1]}:{score.decode()}:{shown}"
    return ItemPage(listed(out, 4), after)


def cursor(after: str | None) -> tuple[int, str, bytes]:
    """A page's ``next_after`` as BROWSE takes it: zset (0: from the start), score, member.

    A cursor is ``<zset letter>:<score>:<member>``, the member being a stored
    id or ``x`` and the hex of a member that is no id. Raises ``ValueError``
    for anything else.
    """
    if after is None:
        return 0, "0", b""
    letter, score, shown = after.split(":")
    if len(letter) != 1 or letter not in _ZSET_LETTERS or not score.isascii():
        raise ValueError(after)
    if math.isnan(float(score)) or score.strip() != score:
        raise ValueError(after)
    member = bytes.fromhex(shown[1:]) if shown[:1] == "x" else shown.encode("ascii")
    if not member or (shown[:1] != "x" and not _is_id(member)):
        raise ValueError(after)
    return _ZSET_LETTERS.index(letter) + 1, score, member


def _is_id(member: bytes) -> bool:
    return len(member) == 16 and member.isdigit()


def settlement(done: Settlement) -> tuple[str | bytes | int, ...] | None:
    """SETTLE_AND_CLAIM's settlement arguments; None for an item no claim of ours took."""
    item, action = done.item, done.action
    held = member(item.item_id)
    if held is None or not item.token:
        return None
    if action in ("release", "delay"):
        return action, held, item.token, micros(done.delay or 0.0)
    if action == "fail":
        return action, held, item.token, encoded(done.error or ""), _delay(done.delay)
    if action == "hold":
        texts = (done.reason,) if done.error is None else (done.reason, done.error)
        return (action, held, item.token, *map(encoded, texts))
    if action == "delete":
        return action, held, item.token
    raise ValueError(f"unknown settlement action {action!r}")


def _delay(delay: float | None) -> int | str:
    return "" if delay is None else micros(delay)


class DirectScripts:
    """Scripts run on a connection of a single-server client's pool, past its command layer.

    What redis-py 8 wraps around every command cost the client more than
    everything else in a one-item settle-and-claim: its command layer
    (observability hooks, retry bookkeeping, argument checks) about 140
    Python calls an EVALSHA, and checking a connection out of the pool and
    back in (more hooks, a lock, a ``poll`` system call) 60,000 instructions
    a call. bridge retries nothing itself (a repeated script may claim
    twice) and EVALSHA's reply needs no callback, so a call is: the command
    packed, sent, and the reply read, on a connection this thread keeps.

    - Each thread checks one connection out of the pool and keeps it;
      when the thread ends, its connection goes back to the pool.
    - A forked child never uses its parent's connection (redis-py's pool
      notices the fork too, and gives the child connections of its own).
    - A connection left idle for over a second goes back through the pool,
      whose check finds one the server has closed meanwhile (its
      ``timeout``, a restart) and opens a new one, as before.
    - A call cut short anywhere but at an error reply (a lost connection, a
      timeout, an interrupt) disconnects its connection, as redis-py does,
      so that no later call reads this one's late reply, and gives it back;
      the next call checks one out, connected again. ``close()`` on the
      client disconnects the kept ones too; they connect again when used.

    With ``hiredis`` (the redis extra installs it), the command is packed
    by ``hiredis.pack_command`` in one C call; redis-py's packer looks at
    every argument in Python first, which for a batched delete (two
    arguments an item) cost as much as building the claimed items.

    ``Script`` asks its client for ``get_encoder``, ``evalsha`` and
    ``script_load`` only, as with ``redis_cluster.ClusterClient``.
    """

    IDLE_SECONDS = 1.0
    """A kept connection unused for longer goes back through the pool's check."""

    def __init__(self, client: redis.Redis) -> None:
        from redis.commands.core import Script
        from redis.exceptions import DataError, ResponseError

        self._pack: Callable[[tuple[Any, ...]], bytes] | None = None
        try:
            from hiredis import pack_command

            self._pack = pack_command
        except ImportError:  # redis-py's own packer, slower, does the same
            pass
        self._client, self._pool = client, client.connection_pool
        self._script, self._error_reply, self._data_error = Script, ResponseError, DataError
        self._local = threading.local()

    def register_script(self, script: str) -> Script:
        return self._script(cast(Any, self), script)

    def get_encoder(self) -> Any:
        return self._client.get_encoder()

    def script_load(self, script: str) -> str:
        return str(self._client.script_load(script))

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        command = ("EVALSHA", sha, numkeys, *args)
        packed = None
        if self._pack is not None:
            try:
                packed = [self._pack(command)]
            except TypeError as exc:  # what redis-py's packer raises for such an argument
                raise self._data_error(str(exc)) from exc
        conn = self.connection()
        try:
            if packed is None:
                conn.send_command(*command)
            else:
                conn.send_packed_command(packed)
            return conn.read_response()
        except self._error_reply:
            raise  # read whole: the connection is as good as before
        except BaseException:
            conn.disconnect()
            self._local.kept.let_go()  # the next call checks one out, connected again
            self._local.kept = None
            raise

    def connection(self) -> Any:
        """This thread's connection: kept, or checked out (first call, after a fork or idling)."""
        kept: _Kept | None = getattr(self._local, "kept", None)
        now = time.monotonic()
        if kept is not None and (kept.pid != os.getpid() or now - kept.used > self.IDLE_SECONDS):
            kept.let_go()
            kept = None
        if kept is None:
            kept = self._local.kept = _Kept(self._pool)
        kept.used = now
        return kept.connection


class _Kept:
    """A connection a thread keeps out of the pool; back in when the thread (or this) ends."""

    def __init__(self, pool: Any) -> None:
        self.connection, self.pid, self.used = pool.get_connection(), os.getpid(), 0.0
        self._back = weakref.finalize(self, pool.release, self.connection)

    def let_go(self) -> None:
        """Back to the pool now; in a forked child, dropped untouched (it is the parent's)."""
        if self.pid == os.getpid():
            self._back()
        else:
            self._back.detach()
