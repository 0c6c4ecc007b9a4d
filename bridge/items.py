"""The values that cross the backend contract: items, stored and claimed, and counts.

A backend returns :class:`StoredItem` rows (payload still encoded); the
facade decodes them into :class:`QueueItem` objects, which applications
hold and hand back to settle the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

ItemId = int | str


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """A queue's items by state, at one instant of the backend's clock.

    ``ready`` items are claimable now (expired leases included); ``leased``
    ones are held by a claim; ``delayed`` ones wait for a delay to pass.
    """

    ready: int
    leased: int
    delayed: int

    @property
    def total(self) -> int:
        return self.ready + self.leased + self.delayed


class StoredItem(NamedTuple):
    """An item as a backend returns it: the payload still encoded.

    A named tuple rather than a frozen dataclass, as immutable and typed: a
    batched claim makes one per item, and a frozen dataclass took 2.4 us to
    build against 1 us (``docs/benchmarks.md``).
    """

    item_id: ItemId
    payload: bytes
    created: float
    expire: float
    attempts: int
    priority: int
    token: str


@dataclass(slots=True)
class QueueItem:
    """A claimed item: Drupal's ``{item_id, data, created}`` and what leases need.

    ``expire`` is the lease deadline (epoch seconds, on the backend's clock);
    :meth:`~bridge.Queue.extend_lease` and :meth:`~bridge.Queue.delay_item`
    move it, which is why this one object is not frozen. ``attempts`` counts
    claims, this one included. ``token`` identifies this claim: once the
    item is claimed again by someone else, calls made with this object
    return False.
    """

    item_id: ItemId
    data: Any
    created: float
    expire: float
    attempts: int
    priority: int
    queue: str
    token: str = field(repr=False)
