"""The values that cross the backend contract: items, stored and claimed, and counts.

A backend returns :class:`StoredItem` rows (payload still encoded); the
facade decodes them into :class:`QueueItem` objects, which applications
hold and hand back to settle the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

ItemId = int | str


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """A queue's items by state, at one instant of the backend's clock.

    ``ready`` items are claimable now (expired leases included); ``leased``
    ones are held by a claim; ``delayed`` ones wait for a delay to pass;
    ``held`` ones were set aside (``hold_item``, ``max_attempts``) and wait
    for an operator. ``expired`` ones outlived their TTL unclaimed
    (``create_item(..., ttl=...)``): never claimable, not in ``total``, and
    counted until ``garbage_collection`` (or, on Redis, a claim that meets
    them) removes them.
    """

    ready: int
    leased: int
    delayed: int
    held: int = 0
    """Held items: set aside after failing, never claimable, kept until kicked or deleted."""
    expired: int = 0
    """Items past their TTL not yet removed; gone for claims, counts' ``total`` and peek."""

    @property
    def total(self) -> int:
        """Every item not deleted, held ones included (Drupal's count)."""
        return self.ready + self.leased + self.delayed + self.held


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
    last_error: str | None = None
    """The error of the latest failed attempt (``fail_item``, ``hold_item``), if any."""
    held_at: float | None = None
    """When the item was held (epoch seconds, the store's clock); None unless held, and
    where the store does not keep it (``capabilities.held_details`` False)."""
    hold_reason: str | None = None
    """Why the item was held; None unless held, "" where the store keeps no reason."""


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
    last_error: str | None = None
    """The previous failed attempt's error (type, message, last frames), if one failed."""
    held_at: float | None = None
    """On held items: when the item was held."""
    hold_reason: str | None = None
    """On held items: why (the worker's ``HoldItem`` reason, or attempts exhausted)."""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """The data of a listed item whose stored bytes the codec cannot decode.

    ``peek`` and ``held_items`` show such items instead of failing, so an
    operator can see (and kick or delete) them; ``raw`` is the stored bytes,
    ``error`` what the codec said. Claims never hand one out: the claim holds
    it with a reason naming the problem.
    """

    raw: bytes
    error: str

    def __str__(self) -> str:
        shown = self.raw[:200].decode("utf-8", "backslashreplace")
        more = "..." if len(self.raw) > 200 else ""
        return f"<undecodable {len(self.raw)} bytes: {shown!r}{more}; {self.error}>"


class ItemState(StrEnum):
    """Where an item is: exactly one of these at any instant."""

    READY = "ready"
    LEASED = "leased"
    DELAYED = "delayed"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class ListedItem:
    """An item as an operator's listing shows it: its state and its stored row (no token)."""

    state: ItemState
    stored: StoredItem


@dataclass(frozen=True, slots=True)
class ItemPage:
    """One page of a queue's items and where the next page starts.

    ``next_after`` is an opaque cursor for ``browse(..., after=...)``, None
    on the last page. Paging is by key, never by offset: a page costs the
    same at the millionth item as at the first, and items created or
    deleted meanwhile never shift the pages already shown.
    """

    items: list[ListedItem]
    next_after: str | None


SettleAction = Literal["delete", "release", "delay", "hold", "fail"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to do with a finished item, sent in the same round trip as the next claim.

    Build one with the class methods: ``Settlement.delete(item)``,
    ``.release(item)``, ``.delay_by(item, seconds)``, ``.hold(item, reason,
    error)``, ``.fail(item, error, delay)``; each means what the facade's
    ``delete_item``, ``release_item``, ``delay_item``, ``hold_item`` and
    ``fail_item`` mean.
    """

    item: QueueItem
    action: SettleAction
    delay: float | None = None
    """``delay``: seconds until claimable; ``fail``: None keeps the item leased."""
    reason: str = ""
    """``hold``: why."""
    error: str | None = None
    """``hold`` and ``fail``: the error kept as ``last_error``."""

    @classmethod
    def delete(cls, item: QueueItem) -> Settlement:
        return cls(item, "delete")

    @classmethod
    def release(cls, item: QueueItem) -> Settlement:
        return cls(item, "release")

    @classmethod
    def delay_by(cls, item: QueueItem, seconds: float) -> Settlement:
        return cls(item, "delay", delay=seconds)

    @classmethod
    def hold(cls, item: QueueItem, reason: str = "", error: str | None = None) -> Settlement:
        return cls(item, "hold", reason=reason, error=error)

    @classmethod
    def fail(cls, item: QueueItem, error: str, delay: float | None = None) -> Settlement:
        return cls(item, "fail", delay=delay, error=error)
