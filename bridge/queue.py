"""The queue facade, its items, and the contract every backend fulfils.

A :class:`Queue` is what applications hold: Drupal's ``QueueInterface`` in
snake_case, plus bulk calls and lease extension. It validates arguments,
encodes payloads, refuses what the backend's :class:`Capabilities` say it
cannot do, and hands the rest to a :class:`Backend`, which stores bytes.

One backend instance serves every queue stored behind one URL, so the
:class:`Backend` methods take the queue name; the facade binds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from bridge.codecs import Codec
from bridge.errors import InvalidArgumentError, UnsupportedOperationError

ItemId = int | str


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend really does; the facade refuses the rest up front.

    reliable: items survive the process that created them and a crash of the
        one that claimed them (Drupal's ``ReliableQueueInterface``).
    shared: several processes see the same queue.
    lease: ``"exact"`` when the backend holds every claim for exactly its
        ``lease_time``; ``"emulated"`` when it approximates it.
    extend_lease, delay, priority: the operations of those names, and the
        ``delay``/``priority`` arguments of ``create_item``.
    counts_leased: ``number_of_items`` includes leased and delayed items, as
        Drupal's does.
    crash_recovery: how a dead claimer's items come back: ``"lease"`` when
        its lease ends, ``"disconnect"`` at once, when the broker sees the
        connection drop.
    settle_anywhere: any process may delete, release or extend a claim it
        holds the item for; False when only the claiming connection can.
    ordered: claims follow priority, then creation order, exactly (with one
        consumer); False where the store promises no order.
    cancel_delays: ``release_all`` makes delayed items claimable early.
    """

    reliable: bool
    shared: bool
    lease: Literal["exact", "emulated"]
    extend_lease: bool
    delay: bool
    priority: bool
    counts_leased: bool
    crash_recovery: Literal["lease", "disconnect"] = "lease"
    settle_anywhere: bool = True
    ordered: bool = True
    cancel_delays: bool = True


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
    :meth:`Queue.extend_lease` and :meth:`Queue.delay_item` move it, which is
    why this one object is not frozen. ``attempts`` counts claims, this one
    included. ``token`` identifies this claim: once the item is claimed again
    by someone else, calls made with this object return False.
    """

    item_id: ItemId
    data: Any
    created: float
    expire: float
    attempts: int
    priority: int
    queue: str
    token: str = field(repr=False)


class Backend(Protocol):
    """The storage contract, one method per Drupal queue operation.

    Every method is one round trip where the store allows it. Times are the
    store's own clock. Methods that take a claimed item compare its token and
    do nothing (returning False) when the item has been claimed again since.
    """

    capabilities: Capabilities
    url: str
    """The backend's URL with any password masked, for messages and listings."""

    def create_queue(self, name: str) -> None: ...

    def delete_queue(self, name: str) -> None: ...

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]: ...

    def number_of_items(self, name: str) -> int: ...

    def counts(self, name: str) -> ItemCounts: ...

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]: ...

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int: ...

    def release_item(self, name: str, item: QueueItem) -> bool:
        """Make the item claimable now and end the claim (its token no longer matches)."""
        ...

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        """Claimable ``delay`` s from now, the claim ended; the new expire, or None if lost."""
        ...

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        """Lease the item ``lease_time`` s from now; the new expire, or None if lost."""
        ...

    def garbage_collection(self, name: str) -> None: ...

    def queue_names(self) -> dict[str, int]:
        """Every queue with items in this store, with its item count."""
        ...

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """The next items in claim order, without claiming them."""
        ...

    def release_all(self, name: str) -> int:
        """Drop every lease and delay in the queue (Queue UI's "remove leases")."""
        ...

    def close(self) -> None: ...


def _check_seconds(what: str, value: float, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise InvalidArgumentError(f"{what} must be {bound} seconds, not {value!r}")
    return seconds


class Queue:
    """One named queue on one backend: Drupal's queue API, typed and leased."""

    def __init__(self, name: str, backend: Backend, codec: Codec) -> None:
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidArgumentError(f"a queue name is 1 to 255 characters, not {name!r}")
        self.name = name
        self.backend = backend
        self.codec = codec

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} on {self.backend.url}>"

    @property
    def capabilities(self) -> Capabilities:
        return self.backend.capabilities

    def create_queue(self) -> None:
        """Set up storage; idempotent, and creating items works without it."""
        self.backend.create_queue(self.name)

    def delete_queue(self) -> None:
        """Delete this queue's items, leased ones included; other queues are untouched."""
        self.backend.delete_queue(self.name)

    def create_item(self, data: Any, delay: float = 0, priority: int = 0) -> ItemId:
        """Store ``data``; claimable after ``delay`` s, higher ``priority`` first."""
        return self.create_items([data], delay=delay, priority=priority)[0]

    def create_items(
        self, items: Iterable[Any], delay: float = 0, priority: int = 0
    ) -> list[ItemId]:
        """Store every item in one round trip; all or none are written."""
        delay = self._check_delay(delay)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgumentError(f"priority must be an int, not {priority!r}")
        if priority and not self.capabilities.priority:
            self._refuse("priority")
        payloads = [self.codec.encode(data) for data in items]
        if not payloads:
            return []
        return self.backend.create_items(self.name, payloads, delay, priority)

    def number_of_items(self) -> int:
        """Every item not deleted: ready, leased and delayed (Drupal's count)."""
        return self.backend.number_of_items(self.name)

    def counts(self) -> ItemCounts:
        """The items by state: ready, leased, delayed (for monitoring)."""
        return self.backend.counts(self.name)

    def claim_item(self, lease_time: float = 30) -> QueueItem | None:
        """Lease the next claimable item for ``lease_time`` s, or None if there is none."""
        claimed = self.claim_items(1, lease_time)
        return claimed[0] if claimed else None

    def claim_items(self, count: int, lease_time: float = 30) -> list[QueueItem]:
        """Lease up to ``count`` items in one round trip, in claim order."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidArgumentError(f"count must be an int of 0 or more, not {count!r}")
        lease_time = _check_seconds("lease_time", lease_time, positive=True)
        if count == 0:
            return []
        stored = self.backend.claim_items(self.name, count, lease_time)
        # _item inlined: this runs once per claimed item, a hundred per batch.
        decode, name = self.codec.decode, self.name
        return [QueueItem(item_id, decode(payload), created, expire, attempts, priority, name,
                          token)
                for item_id, payload, created, expire, attempts, priority, token in stored]

    def delete_item(self, item: QueueItem) -> bool:
        """Delete a claimed item; False if its claim was lost to another claimer."""
        self._check_item(item)
        return self.backend.delete_items(self.name, [item]) == 1

    def delete_items(self, items: Sequence[QueueItem]) -> int:
        """Delete claimed items in one round trip; returns how many were still held."""
        name = self.name
        for item in items:
            if type(item) is not QueueItem or item.queue != name:
                self._check_item(item)  # says what is wrong (or accepts a subclass)
        return self.backend.delete_items(self.name, items) if items else 0

    def release_item(self, item: QueueItem) -> bool:
        """Make the item claimable now, ending this claim; False if it was not held."""
        self._check_item(item)
        released = self.backend.release_item(self.name, item)
        if released:
            item.expire = 0.0
        return released

    def delay_item(self, item: QueueItem, delay: float) -> bool:
        """Claimable ``delay`` s from now (not from the lease's end), ending this claim."""
        self._check_item(item)
        if not self.capabilities.delay:
            self._refuse("delay_item")
        delay = self._check_delay(delay)
        expire = self.backend.delay_item(self.name, item, delay)
        if expire is None:
            return False
        item.expire = expire
        return True

    def extend_lease(self, item: QueueItem, lease_time: float) -> bool:
        """Hold the item ``lease_time`` s from now; False if the claim was lost."""
        self._check_item(item)
        if not self.capabilities.extend_lease:
            self._refuse("extend_lease")
        lease_time = _check_seconds("lease_time", lease_time, positive=True)
        expire = self.backend.extend_lease(self.name, item, lease_time)
        if expire is None:
            return False
        item.expire = expire
        return True

    def garbage_collection(self) -> None:
        """Housekeeping; claims never depend on it (expired leases are claimable at once)."""
        self.backend.garbage_collection(self.name)

    def peek(self, limit: int = 10) -> list[QueueItem]:
        """The next ``limit`` items in claim order, not claimed; their token deletes nothing."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"limit must be an int of 0 or more, not {limit!r}")
        return [self._item(row) for row in self.backend.peek(self.name, limit)]

    def release_all(self) -> int:
        """Drop every lease and delay in this queue; returns how many items it freed."""
        return self.backend.release_all(self.name)

    def _item(self, row: StoredItem) -> QueueItem:
        item_id, payload, created, expire, attempts, priority, token = row
        # Positional: a claim of 100 builds 100 of these, and keywords cost double.
        return QueueItem(item_id, self.codec.decode(payload), created, expire, attempts,
                         priority, self.name, token)

    def _check_item(self, item: QueueItem) -> None:
        if not isinstance(item, QueueItem):
            raise InvalidArgumentError(f"expected a QueueItem from claim_item, not {item!r}")
        if item.queue != self.name:
            raise InvalidArgumentError(
                f"item {item.item_id!r} was claimed from queue {item.queue!r}, not {self.name!r}"
            )

    def _check_delay(self, delay: float) -> float:
        seconds = _check_seconds("delay", delay, positive=False)
        if seconds and not self.capabilities.delay:
            self._refuse("delay")
        return seconds

    def _refuse(self, operation: str) -> None:
        raise UnsupportedOperationError(
            f"the backend at {self.backend.url} does not support {operation} "
            f"(queue {self.name!r}); see its capabilities"
        )
