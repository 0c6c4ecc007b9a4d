"""The backend contract, split by role, and the limits every backend shares.

Three abstract classes, one per role, so that code depends on only what it
uses::

    QueueStore        create, claim, settle (delete, release, delay, fail), extend
    Introspection     read-only: queue names, counts by state, peek
    Administration    release every lease, delete a queue
    Holding           set failed items aside, list them, kick them back, delete them
    Expiring          optional: items with a TTL, claims with grace (Zaqar's)
    Backend           all four: what a URL scheme's class implements
    Waiting           optional: block until new items may be there (``queue watch``)

The CLI, metrics and the web UI read through :class:`Introspection`; the
runner works through :class:`QueueStore`. A backend class subclasses
:class:`Backend` and is marked ``@typing.final``: mypy then fails on a
method that is missing or renamed ("final class has abstract attributes")
and on one whose signature drifts ("incompatible with supertype"), which
``tests/test_contract_typing.py`` proves. A capability is a role class
here and one flag in :class:`Capabilities` (``hold`` for :class:`Holding`),
which the facade checks before it calls the backend.

Derived operations have one implementation, here: ``number_of_items`` is
``counts().total``, ``garbage_collection`` does nothing (claims never need
it), ``close`` does nothing, and a forked child calls every live backend's
``forget_connections`` so that it never writes to its parent's sockets.

Every method that takes a claimed item compares its token and does nothing
(returning False or None) when the item has been claimed again since, or
freed by :meth:`Administration.release_all`. A holder's own release or
delay does not end its claim: as in Drupal, the same holder may still
delete, release, delay or extend the item until someone else claims it.
"""

from __future__ import annotations

import os
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bridge.errors import UnsupportedOperationError
from bridge.items import (
    ItemCounts,
    ItemId,
    ItemPage,
    ItemState,
    ListedItem,
    QueueItem,
    Settlement,
    StoredItem,
)

# -- limits ------------------------------------------------------------------------

MAX_SECONDS = 2**31 - 1
"""The longest lease or delay, in seconds (about 68 years).

Large enough for any real lease, small enough that every backend stores the
deadline exactly: Redis keeps microseconds in a Lua double (exact to 2**53),
and a 32-bit epoch holds it on the SQL side.
"""
MIN_PRIORITY = -(2**31)
MAX_PRIORITY = 2**31 - 1
"""Priorities are 32-bit signed integers, PostgreSQL's and MariaDB's INTEGER."""
MAX_COUNT = 2**31 - 1
"""The most items one claim or peek may ask for (every driver binds it as an int)."""
MAX_ERROR_CHARS = 4000
"""The longest error text kept with an item: the head and the tail of a longer one."""
MAX_REASON_CHARS = 1000
"""The longest hold reason kept with an item."""
MAX_NAME_BYTES = 255
"""The longest queue name, in UTF-8 bytes (RabbitMQ's limit for a queue name)."""


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
    settle_after_release: the holder may still delete, delay or extend an
        item it released or delayed, until another claimer takes it (as in
        Drupal); False where a release hands the item back for good.
    max_delay, max_lease: the longest delay and lease the store keeps, in
        seconds, when it has a limit below :data:`MAX_SECONDS` (SQS: 12 h
        visibility); None when it has none.
    max_create_delay: the longest ``delay`` of ``create_items``, when the
        store delays new items less long than claimed ones (SQS: 900 s of
        DelaySeconds, against 12 h for ``delay_item``); None when
        ``max_delay`` holds for both.
    max_priority: the highest priority the store orders by, when below
        :data:`MAX_PRIORITY` (RabbitMQ's ``x-max-priority``).
    hold: the :class:`Holding` operations: failed items set aside, never
        claimable, until kicked back or deleted.
    held_details: held items keep their reason and ``held_at``, and
        ``held_items`` lists them oldest held first; False where the store
        keeps only that they are held (beanstalkd's bury: ``hold_reason``
        "", ``held_at`` None, and only the first listed is known to be the
        oldest held).
    keeps_errors: ``fail_item`` and ``hold_item`` keep the error as the
        item's ``last_error`` for the next claimer and for listings; False
        where the store keeps nothing beside the payload (beanstalkd, whose
        job bodies never change) or only in the object that failed the
        item (Gearman).
    kick_resets_attempts: a kick starts the item's ``attempts`` again from
        0; False where the store keeps counting (beanstalkd's reserve
        count). The runner's ``max_attempts`` then counts from each kick as
        far as the store can tell (:meth:`Holding.times_kicked`).
    browse: ``browse`` and ``find_item``: every item, any state, page by
        page (the web UI's item list); False where the store cannot look
        without receiving (RabbitMQ, SQS), which then shows ``peek``.
    remove_item: ``remove_item``: an operator deletes one item by id, in
        any state.
    settle_and_claim: ``settle_and_claim`` is one round trip, all or
        nothing; False where it is the default's two calls.
    ttl: the ``ttl`` argument of ``create_items``: an item not claimed
        within its TTL is gone (the :class:`Expiring` role).
    grace: the ``grace`` argument of ``claim_items``: a claim keeps its
        item's TTL at least ``grace`` s past the lease's end.
    topics: the store also serves pub/sub topics (``get_topic``), through
        the topic store :data:`bridge.topics.TOPIC_STORES` names for it.
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
    settle_after_release: bool = True
    max_delay: float | None = None
    max_lease: float | None = None
    max_create_delay: float | None = None
    max_priority: int | None = None
    hold: bool = False
    held_details: bool = True
    keeps_errors: bool = True
    kick_resets_attempts: bool = True
    browse: bool = False
    remove_item: bool = False
    settle_and_claim: bool = False
    ttl: bool = False
    grace: bool = False
    topics: bool = False


# -- the contract ------------------------------------------------------------------

_live: weakref.WeakSet[QueueStore] = weakref.WeakSet()


def _forget_in_child() -> None:
    for backend in list(_live):
        backend.forget_connections()


os.register_at_fork(after_in_child=_forget_in_child)


class QueueStore(ABC):
    """The core: create, claim and settle items. One round trip a call where possible.

    One backend object serves every queue stored behind its URL, so each
    method takes the queue name. Times are the store's own clock.
    """

    capabilities: Capabilities
    url: str
    """The backend's URL with any password masked, for messages and listings."""

    def __init__(self, url: str) -> None:
        from bridge.urls import mask_password

        self.url = mask_password(url)
        _live.add(self)

    @abstractmethod
    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        """Store every payload, all or none; claimable ``delay`` s from now."""

    @abstractmethod
    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """Lease up to ``count`` claimable items, in claim order, each with a new token."""

    @abstractmethod
    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        """Delete the items whose claim the caller still holds; how many that was."""

    @abstractmethod
    def release_item(self, name: str, item: QueueItem) -> bool:
        """Make the item claimable now; False if the caller no longer holds it."""

    @abstractmethod
    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        """Claimable ``delay`` s from now; the new expire, or None if not held."""

    @abstractmethod
    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        """Lease the item ``lease_time`` s from now; the new expire, or None if not held."""

    @abstractmethod
    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        """Keep ``error`` as the item's ``last_error``, in the same round trip as the rest.

        With ``delay`` None the item stays leased (it comes back when its lease
        ends, as in Drupal); with a delay it is claimable ``delay`` s from now,
        as ``delay_item`` makes it. Returns the item's expire, or None if the
        caller no longer holds it (then nothing is written). The next claimer
        sees the error as ``last_error``.
        """

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        """Settle a finished item and claim the next ones: one round trip where the store can.

        Returns whether the caller still held the item (so the settlement was
        done) and the items claimed, as ``claim_items`` returns them. A
        backend that does it in one statement, script or transaction (its
        ``settle_and_claim`` capability) does all or nothing: if the call
        fails, the item is still leased to the caller and nothing was
        claimed (unless only the answer was lost on its way back). This
        default is the two calls one after the other: a failure of the claim
        leaves the settlement done. ``count`` 0 only settles.
        """
        settled = settle(self, name, settlement)
        return settled, self.claim_items(name, count, lease_time) if count else []

    def create_queue(self, name: str) -> None:  # noqa: B027 - optional by design
        """Set up storage ahead of use; creating items works without it."""

    def garbage_collection(self, name: str) -> None:  # noqa: B027 - optional by design
        """Housekeeping. Claims never depend on it: expired leases are claimable."""

    def close(self) -> None:  # noqa: B027 - optional by design
        """Let go of connections; the next call opens new ones."""

    def forget_connections(self) -> None:  # noqa: B027 - optional by design
        """In a forked child: drop the parent's connections unused (never close them)."""


class Introspection(ABC):
    """Read-only views of a store, for the CLI, metrics and the web UI."""

    url: str

    @abstractmethod
    def counts(self, name: str) -> ItemCounts:
        """The queue's items by state."""

    def number_of_items(self, name: str) -> int:
        """Every item not deleted (Drupal's count)."""
        return self.counts(name).total

    def oldest_ready_age(self, name: str) -> float | None:
        """Seconds the oldest ready item has waited since it was created (the store's clock).

        How long work waits: what an alert on a stuck queue watches. None when
        nothing is ready, and also where a store cannot tell (the default).
        """
        return None

    @abstractmethod
    def queue_names(self) -> dict[str, int]:
        """Every queue with items in this store, with its item count."""

    @abstractmethod
    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """The next items in claim order, not claimed; their tokens are empty."""

    def browse(self, name: str, state: ItemState | None, after: str | None, limit: int) -> ItemPage:
        """Up to ``limit`` items (of ``state``, or every state), after the cursor ``after``.

        In an order the backend keeps stable (documented per backend), by
        key, never by offset. Tokens are empty. Only where the ``browse``
        capability is on.
        """
        raise UnsupportedOperationError(f"{self.url} cannot list items page by page")

    def find_item(self, name: str, item_id: ItemId) -> ListedItem | None:
        """One item by id, any state; None if the queue has no such item (``browse``)."""
        raise UnsupportedOperationError(f"{self.url} cannot look items up by id")


class Administration(ABC):
    """Operations on a whole queue, for operators."""

    url: str

    @abstractmethod
    def release_all(self, name: str) -> int:
        """Drop every lease (and delay, where ``cancel_delays``); ends those claims.

        Returns how many items it freed. A holder whose lease was dropped
        here can no longer settle or extend its item.
        """

    @abstractmethod
    def delete_queue(self, name: str) -> None:
        """Delete the queue's items, leased ones included; other queues are untouched."""

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        """Delete one item by id in any state, ending any claim on it; False if not there.

        An operator's delete (the web UI's): the holder of a claim on it
        finds it gone. Only where the ``remove_item`` capability is on.
        """
        raise UnsupportedOperationError(f"{self.url} cannot delete an item by id")


class Holding(ABC):
    """Failed items set aside: beanstalkd's bury and kick, SQS's dead-letter queue.

    A held item is never claimable and never expires; it is counted (as
    ``held``) and deleted only when someone asks. Moving an item to held and
    back is atomic: a crash at any instant leaves it where it was or where
    it went, never lost, never in both.
    """

    @abstractmethod
    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        """Hold a claimed item, with why and the error if any; False if not held by the caller."""

    @abstractmethod
    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        """Up to ``limit`` held items, oldest held first, with ``held_at`` and ``hold_reason``."""

    @abstractmethod
    def kick(self, name: str, limit: int | None) -> int:
        """Back to ready, oldest held first, attempts reset to 0; how many (None: all)."""

    @abstractmethod
    def kick_item(self, name: str, item_id: ItemId) -> bool:
        """Kick one held item back to ready; False if it is not held here."""

    @abstractmethod
    def delete_held(self, name: str, limit: int | None) -> int:
        """Delete held items, oldest held first; how many (None: all)."""

    def times_kicked(self, name: str, item: QueueItem) -> int:
        """How often a claimed item has been kicked back from held, where a kick keeps
        its attempts (``kick_resets_attempts`` False); 0 where a kick resets them.

        Read from what the claim saw (no round trip), so the runner can give
        a kicked item its ``max_attempts`` again.
        """
        return 0


class Expiring(ABC):
    """Optional: Zaqar's message TTL and claim grace (``ttl`` and ``grace`` capabilities).

    A role of its own, not arguments of ``create_items`` and ``claim_items``,
    so that the hot path of every backend is unchanged when neither is asked
    for and a backend without them has nothing to implement.

    An item created with a TTL has a deadline, ``created + ttl`` on the
    store's clock. Past it, while not leased, the item is expired: never
    claimed, peeked or counted as ready or delayed again, counted as
    ``expired`` until ``garbage_collection`` deletes it. A lease protects
    the item for as long as it holds (its holder can always settle it); a
    claim with ``grace`` also moves the deadline to at least the lease's end
    plus ``grace``, so that an item whose claimer died or released it stays
    claimable that long (Zaqar: message TTL = max(TTL, claim TTL + grace)).
    An item without a TTL never expires, grace or not.
    """

    @abstractmethod
    def create_expiring_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int, ttl: float
    ) -> list[ItemId]:
        """``create_items``, each item gone if not claimed within ``ttl`` s of now."""

    @abstractmethod
    def claim_items_with_grace(
        self, name: str, count: int, lease_time: float, grace: float
    ) -> list[StoredItem]:
        """``claim_items``, each claimed item's deadline at least lease end + ``grace``."""

    @abstractmethod
    def extend_lease_with_grace(
        self, name: str, item: QueueItem, lease_time: float, grace: float
    ) -> float | None:
        """``extend_lease``, the item's deadline at least the new lease end + ``grace``
        (Zaqar's claim update)."""


class Backend(QueueStore, Introspection, Administration, Holding):
    """Everything a backend class implements; the registry builds these."""


class Waiting(ABC):
    """Optional: wait for new items without polling (``bridge queue watch``).

    A backend that can be told about new items (PostgreSQL's ``NOTIFY``,
    Redis's ``PUBLISH``) subclasses this besides :class:`Backend`; for any
    other, :func:`bridge.waiting.wait_for_items` sleeps a short interval.
    A wake-up is only a hint: the caller claims after it, and a claim that
    finds nothing is harmless.
    """

    @abstractmethod
    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` s until items of ``names`` may be claimable.

        True when told of new items, or when nothing was listening before
        this call (the first call starts listening and returns True at once,
        so an item created before it is seen by the claim that follows);
        False on timeout. Where the backend can tell when a delayed or
        leased item of ``names`` becomes claimable, the wait ends then
        (True) rather than at ``timeout``. Raises ``BackendUnavailableError`` when the
        server is gone; the next call listens again.
        """


def settle(store: QueueStore, name: str, settlement: Settlement) -> bool:
    """Apply a settlement with the store's own single-purpose call; True if the caller held it."""
    item, action = settlement.item, settlement.action
    if action == "delete":
        return store.delete_items(name, [item]) == 1
    if action == "release":
        return store.release_item(name, item)
    if action == "delay":
        return store.delay_item(name, item, settlement.delay or 0.0) is not None
    if action == "fail":
        return store.fail_item(name, item, settlement.error or "", settlement.delay) is not None
    if action == "hold":
        if not isinstance(store, Holding):
            raise UnsupportedOperationError(f"{store.url} cannot hold items")
        return store.hold_item(name, item, settlement.reason, settlement.error)
    raise ValueError(f"unknown settlement action {action!r}")
