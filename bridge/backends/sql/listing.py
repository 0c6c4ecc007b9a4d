"""Operators' listings of the SQL backend: rows to listed items, and the browse cursor.

``browse`` pages through a queue in claim order, ``(priority DESC,
item_id)``, the claim index's own order, by key: a cursor is the last
listed row's ``priority:item_id``, and the next page starts after it
(``Statements.browse`` says how the statement reads it). Each page asks
for one row more than it shows, so the last page says so (``next_after``
None) instead of leaving an empty page to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.contract import MAX_COUNT, MAX_PRIORITY, MIN_PRIORITY
from bridge.errors import InvalidArgumentError
from bridge.items import ItemPage, ItemState, ListedItem, StoredItem

_ID_RANGE = (-(2**63), 2**63 - 1)


def search_limit(limit: int) -> int:
    """Rows to ask for: one more than the page shows, to know whether another follows."""
    return min(limit, MAX_COUNT - 1) + 1


def cursor_after(after: str) -> tuple[int, int]:
    """The ``(priority, item_id)`` a cursor names; refused when no page made it."""
    priority, colon, item_id = after.partition(":")
    try:
        if not colon:
            raise ValueError(after)
        key = int(priority), int(item_id)
    except ValueError:
        raise InvalidArgumentError(
            f"after must be a cursor from a page of this queue (next_after), not {after!r}"
        ) from None
    if not MIN_PRIORITY <= key[0] <= MAX_PRIORITY or not _ID_RANGE[0] <= key[1] <= _ID_RANGE[1]:
        raise InvalidArgumentError(f"after {after!r} is out of range for a cursor")
    return key


def listed(row: Sequence[Any]) -> ListedItem:
    """A row of ``Statements.browse`` or ``find_item`` as a listed item (no token)."""
    item_id, data, created, expire, attempts, priority, error, held_at, reason, shown = row
    stored = StoredItem(
        item_id, bytes(data), created, expire, attempts, priority, "", error, held_at, reason
    )
    return ListedItem(ItemState(shown), stored)


def page_of(rows: Sequence[Sequence[Any]], limit: int) -> ItemPage:
    """The page of ``limit`` items the rows hold, and the cursor of the next, if any."""
    items = [listed(row) for row in rows[:limit]]
    if len(rows) <= limit or not items:  # the facade asks for 1 or more
        return ItemPage(items, None)
    last = items[-1].stored
    return ItemPage(items, f"{last.priority}:{last.item_id}")
