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

import math
from typing import Any

from bridge.items import ItemId, ItemPage, ItemState, ListedItem, Settlement, StoredItem

MALFORMED = (ValueError, TypeError, IndexError, AttributeError)
"""What reading a reply of an unexpected shape raises."""


def member(item_id: ItemId) -> str | None:
    """The id as the scripts store it, or None for an id this backend never issued."""
    if type(item_id) is not int or item_id < 1:
        return None
    return f"{item_id:016d}"


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
    # Built inline, once per claimed item: the hot path of a batched claim.
    return [
        StoredItem(
            out[i], out[i + 4], out[i + 1] / 1e6, expire, out[i + 2], out[i + 3], token,
            text(out[i + 5]),
        )
        for i in range(2, len(out), 6)
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
