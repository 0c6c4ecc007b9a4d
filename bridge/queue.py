"""The queue facade: what applications hold.

A :class:`Queue` is Drupal's ``QueueInterface`` in snake_case, plus bulk
calls and lease extension. It validates arguments against the limits in
:mod:`bridge.contract` (the same on every backend), encodes payloads,
refuses what the backend's :class:`~bridge.contract.Capabilities` say it
cannot do, and hands the rest to a :class:`~bridge.contract.Backend`, which
stores bytes. One backend instance serves every queue behind one URL, so
the backend's methods take the queue name; the facade binds it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.codecs import Codec
from bridge.contract import (
    MAX_COUNT,
    MAX_ERROR_CHARS,
    MAX_NAME_BYTES,
    MAX_PRIORITY,
    MAX_REASON_CHARS,
    MAX_SECONDS,
    MIN_PRIORITY,
    Backend,
    Capabilities,
    Expiring,
)
from bridge.errors import InvalidArgumentError, PayloadError, UnsupportedOperationError
from bridge.failures import DEFAULT_POLICY, FailurePolicy
from bridge.items import (
    ItemCounts,
    ItemId,
    ItemState,
    ListedItem,
    QueueItem,
    Settlement,
    StoredItem,
    Undecodable,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrowsedItem:
    """An item as an operator's listing shows it: its state and the item, decoded."""

    state: ItemState
    item: QueueItem


@dataclass(frozen=True, slots=True)
class BrowsedPage:
    """One page of :meth:`Queue.browse`; ``next_after`` starts the next page (None: last)."""

    items: list[BrowsedItem]
    next_after: str | None


def check_seconds(
    what: str, value: float, *, positive: bool, most: float | None = None, store: str = ""
) -> float:
    """``value`` as float seconds, or an error naming ``what`` and the allowed range.

    ``most`` is a backend's own limit, below :data:`MAX_SECONDS`; the error
    names ``store`` (its URL) when that is the limit crossed.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise InvalidArgumentError(f"{what} must be {bound} seconds, not {value!r}")
    limit = MAX_SECONDS if most is None else min(most, MAX_SECONDS)
    if seconds > limit:
        whose = f", the limit of {store}" if store and limit < MAX_SECONDS else ""
        raise InvalidArgumentError(
            f"{what} must be at most {limit:g} seconds{whose}, not {value!r}"
        )
    return seconds


def check_count(what: str, value: int) -> int:
    """A count of items, from 0 to :data:`~bridge.contract.MAX_COUNT`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidArgumentError(f"{what} must be an int from 0 to {MAX_COUNT}, not {value!r}")
    return value


def cap_text(what: str, text: object, most: int) -> str:
    """``text`` as a str of at most ``most`` characters: its head and its tail, which
    for a traceback hold the exception's type and its last frames."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{what} must be a str, not {text!r}")
    if len(text) <= most:
        return text
    head = most // 4
    tail = most - head - 40
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"


def check_name(name: object) -> str:
    """A queue name, or an error saying what a name may be."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a queue name is a non-empty string, not {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"queue name {name!r} is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise InvalidArgumentError(
            f"a queue name is at most {MAX_NAME_BYTES} bytes in UTF-8, not {size}: {name[:40]!r}..."
        )
    return name


class Queue:
    """One named queue on one backend: Drupal's queue API, typed and leased."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        codec: Codec,
        failure_policy: FailurePolicy = DEFAULT_POLICY,
    ) -> None:
        self.name = check_name(name)
        self.backend = backend
        self.codec = codec
        self.failure_policy = failure_policy
        """``max_attempts`` and ``retry`` from the queue's settings (see :mod:`bridge.failures`)."""

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

    def create_item(
        self, data: Any, delay: float = 0, priority: int = 0, ttl: float | None = None
    ) -> ItemId:
        """Store ``data``; claimable after ``delay`` s, higher ``priority`` first.

        With ``ttl``, the item is gone if not claimed within ``ttl`` s of now
        (the ``ttl`` capability; see :class:`~bridge.contract.Expiring`).
        """
        return self.create_items([data], delay=delay, priority=priority, ttl=ttl)[0]

    def create_items(
        self,
        items: Iterable[Any],
        delay: float = 0,
        priority: int = 0,
        ttl: float | None = None,
    ) -> list[ItemId]:
        """Store every item in one round trip; all or none are written."""
        caps = self.capabilities
        most = caps.max_delay if caps.max_create_delay is None else caps.max_create_delay
        delay = self._check_delay(delay, most)
        self._check_priority(priority)
        expiring = None if ttl is None else self._expiring("ttl", ttl, positive=True)
        payloads = [self.codec.encode(data) for data in items]
        if not payloads:
            return []
        if expiring is not None:
            return expiring[0].create_expiring_items(
                self.name, payloads, delay, priority, expiring[1]
            )
        return self.backend.create_items(self.name, payloads, delay, priority)

    def _expiring(self, what: str, value: float, *, positive: bool) -> tuple[Expiring, float]:
        """The backend's :class:`Expiring` role and ``value`` checked, or an error.

        The value first, as priorities are: a negative or infinite TTL is a
        bad argument everywhere, before it is an unsupported one here.
        """
        seconds = check_seconds(what, value, positive=positive)
        backend = self.backend
        if not getattr(self.capabilities, what) or not isinstance(backend, Expiring):
            self._refuse(what)
        assert isinstance(backend, Expiring)
        return backend, seconds

    def number_of_items(self) -> int:
        """Every item not deleted: ready, leased, delayed and held (Drupal's count)."""
        return self.backend.number_of_items(self.name)

    def counts(self) -> ItemCounts:
        """The items by state: ready, leased, delayed, held (for monitoring)."""
        return self.backend.counts(self.name)

    def claim_item(self, lease_time: float = 30, grace: float | None = None) -> QueueItem | None:
        """Lease the next claimable item for ``lease_time`` s, or None if there is none.

        With ``grace``, an item created with a TTL lives at least ``grace`` s
        past the lease's end (the ``grace`` capability).
        """
        claimed = self.claim_items(1, lease_time, grace)
        return claimed[0] if claimed else None

    def claim_items(
        self, count: int, lease_time: float = 30, grace: float | None = None
    ) -> list[QueueItem]:
        """Lease up to ``count`` items in one round trip, in claim order."""
        check_count("count", count)
        lease_time = self._check_lease(lease_time)
        if grace is not None:
            backend, seconds = self._expiring("grace", grace, positive=False)
            if count == 0:
                return []
            stored = backend.claim_items_with_grace(self.name, count, lease_time, seconds)
        elif count == 0:
            return []
        else:
            stored = self.backend.claim_items(self.name, count, lease_time)
        # Built inline: this runs once per claimed item, a hundred per batch.
        decode, name = self.codec.decode, self.name
        try:
            return [
                QueueItem(
                    row[0], decode(row[1]), row[2], row[3], row[4], row[5], name, row[6], row[7]
                )
                for row in stored
            ]
        except PayloadError:
            return self._set_aside_undecodable(stored, count, lease_time, grace)

    def _set_aside_undecodable(
        self, stored: list[StoredItem], count: int, lease_time: float, grace: float | None = None
    ) -> list[QueueItem]:
        """Hold the claimed items whose bytes do not decode; hand out the rest.

        A row written by another program (or damaged) must never block the
        queue: it is held with a reason naming it, and the claim asks again
        for as many items as it set aside, so a caller who asked for one gets
        one while good items remain.
        """
        good: list[QueueItem] = []
        while stored:
            for row in stored:
                try:
                    data = self.codec.decode(row[1])
                except PayloadError as exc:
                    self._hold_undecodable(row, exc)
                    continue
                good.append(self._built(row, data))
            wanted = count - len(good)
            if not wanted:
                break
            if grace is None:
                stored = self.backend.claim_items(self.name, wanted, lease_time)
            else:  # the claims that replace them keep the caller's grace
                stored = self._expiring("grace", grace, positive=False)[0].claim_items_with_grace(
                    self.name, wanted, lease_time, grace
                )
        return good

    def _hold_undecodable(self, row: StoredItem, exc: PayloadError) -> None:
        claimed = self._built(row, Undecodable(row[1], str(exc)))
        reason = f"item {row[0]!r}: its stored payload cannot be decoded: {exc}"
        if not self.capabilities.hold:
            raise PayloadError(reason) from exc
        self.backend.hold_item(self.name, claimed, reason, None)
        logger.error("Queue %s: held %s", self.name, reason)

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
        """Make the item claimable now; False if the item is gone or claimed by another.

        As in Drupal, the holder may still delete, delay or extend the item
        afterwards, until someone else claims it.
        """
        self._check_item(item)
        released = self.backend.release_item(self.name, item)
        if released:
            item.expire = 0.0
        return released

    def delay_item(self, item: QueueItem, delay: float) -> bool:
        """Claimable ``delay`` s from now (not from the lease's end); False if not held.

        The claim stays the holder's until someone else claims the item, as
        with :meth:`release_item`.
        """
        self._check_item(item)
        if not self.capabilities.delay:
            self._refuse("delay_item")
        delay = self._check_delay(delay, self.capabilities.max_delay)
        expire = self.backend.delay_item(self.name, item, delay)
        if expire is None:
            return False
        item.expire = expire
        return True

    def extend_lease(self, item: QueueItem, lease_time: float, grace: float | None = None) -> bool:
        """Hold the item ``lease_time`` s from now; False if the claim was lost.

        With ``grace``, as in a claim: an item with a TTL lives at least
        ``grace`` s past the new lease's end (Zaqar's claim update).
        """
        self._check_item(item)
        if not self.capabilities.extend_lease:
            self._refuse("extend_lease")
        lease_time = self._check_lease(lease_time)
        if grace is not None:
            backend, seconds = self._expiring("grace", grace, positive=False)
            expire = backend.extend_lease_with_grace(self.name, item, lease_time, seconds)
        else:
            expire = self.backend.extend_lease(self.name, item, lease_time)
        if expire is None:
            return False
        item.expire = expire
        return True

    def garbage_collection(self) -> None:
        """Housekeeping; claims never depend on it (expired leases are claimable at once)."""
        self.backend.garbage_collection(self.name)

    def peek(self, limit: int = 10) -> list[QueueItem]:
        """The next ``limit`` items in claim order, not claimed; their token deletes nothing.

        An item whose bytes do not decode is listed with an
        :class:`~bridge.items.Undecodable` as its data.
        """
        check_count("limit", limit)
        return [self._item(row) for row in self.backend.peek(self.name, limit)]

    def browse(
        self, state: ItemState | str | None = None, after: str | None = None, limit: int = 50
    ) -> BrowsedPage:
        """One page of the queue's items, any state (or only ``state``), not claimed.

        Pass the page's ``next_after`` as ``after`` for the next page. Paging is
        by key: the thousandth page costs what the first does. Undecodable
        payloads are listed with an :class:`~bridge.items.Undecodable` as data.
        Only where the ``browse`` capability is on.
        """
        if check_count("limit", limit) == 0:
            # A page of none could never move its cursor.
            raise InvalidArgumentError("limit must be 1 or more items a page, not 0")
        if not self.capabilities.browse:
            self._refuse("browse")
        wanted = None if state is None else _state(state)
        if after is not None and not isinstance(after, str):
            raise InvalidArgumentError(f"after must be a cursor from a page, not {after!r}")
        page = self.backend.browse(self.name, wanted, after, limit)
        return BrowsedPage([self._listed(row) for row in page.items], page.next_after)

    def find_item(self, item_id: ItemId) -> BrowsedItem | None:
        """One item by id, any state, not claimed; None if this queue has none by that id."""
        _check_id(item_id)
        if not self.capabilities.browse:
            self._refuse("find_item")
        found = self.backend.find_item(self.name, item_id)
        return None if found is None else self._listed(found)

    def remove_item(self, item_id: ItemId) -> bool:
        """Delete one item by id, whatever its state (an operator's delete); False if absent.

        Unlike :meth:`delete_item` it needs no claim, and it ends any claim
        on the item: its holder finds it gone.
        """
        _check_id(item_id)
        if not self.capabilities.remove_item:
            self._refuse("remove_item")
        return self.backend.remove_item(self.name, item_id)

    def settle(self, settlement: Settlement) -> bool:
        """Apply ``settlement`` alone, with the call of its name (``delete_item``...).

        What :meth:`settle_and_claim` does when no claim follows: the call a
        loop makes for its last item. False if the item was no longer ours.
        """
        checked = self._check_settlement(settlement)
        item, action = checked.item, checked.action
        if action == "delete":
            return self.delete_item(item)
        if action == "release":
            return self.release_item(item)
        if action == "delay":
            return self.delay_item(item, checked.delay or 0.0)
        if action == "fail":
            return self.fail_item(item, checked.error or "", checked.delay)
        return self.hold_item(item, checked.reason, checked.error)

    def settle_and_claim(
        self, settlement: Settlement, count: int = 1, lease_time: float = 30
    ) -> tuple[bool, list[QueueItem]]:
        """Settle a finished item and claim the next ``count``, in one round trip where possible.

        ``settlement`` says what to do with the item (``Settlement.delete(item)``,
        ``.release``, ``.delay_by``, ``.hold``, ``.fail``). Returns whether the
        item was still ours (the settlement was done) and the items claimed.
        Where the ``settle_and_claim`` capability is on, one statement, script
        or transaction does both or neither: if the call raises, the item is
        still leased to us and comes back when its lease ends. Elsewhere it is
        the two calls, and a failed claim leaves the settlement done. The
        answer does not carry the item's new deadline: after a delay its
        ``expire`` is left as it was (``find_item`` shows the store's).
        """
        checked = self._check_settlement(settlement)
        check_count("count", count)
        lease_time = self._check_lease(lease_time)
        settled, stored = self.backend.settle_and_claim(self.name, checked, count, lease_time)
        if settled and checked.action in ("release", "fail"):
            # As release_item and fail_item leave the item (the store's new
            # expire after a delay is not in the answer).
            item = checked.item
            if checked.action == "release":
                item.expire = 0.0
            else:
                item.last_error = checked.error
        decode, name = self.codec.decode, self.name
        try:
            claimed = [
                QueueItem(
                    row[0], decode(row[1]), row[2], row[3], row[4], row[5], name, row[6], row[7]
                )
                for row in stored
            ]
        except PayloadError:
            claimed = self._set_aside_undecodable(stored, count, lease_time)
        return settled, claimed

    def _check_settlement(self, settlement: Settlement) -> Settlement:
        """The settlement with its values checked and capped as the single calls check them."""
        if not isinstance(settlement, Settlement):
            raise InvalidArgumentError(f"expected a Settlement, not {settlement!r}")
        self._check_item(settlement.item)
        action, delay = settlement.action, settlement.delay
        if action == "delay":
            if not self.capabilities.delay:
                self._refuse("delay_item")
            delay = self._check_delay(delay or 0.0, self.capabilities.max_delay)
        elif action == "fail":
            error = cap_text("error", settlement.error, MAX_ERROR_CHARS)
            if delay is not None:
                delay = self._check_delay(delay, self.capabilities.max_delay)
            return Settlement(settlement.item, action, delay=delay, error=error)
        elif action == "hold":
            self._require_hold("hold_item")
            reason = cap_text("reason", settlement.reason, MAX_REASON_CHARS)
            given = settlement.error
            held_error = None if given is None else cap_text("error", given, MAX_ERROR_CHARS)
            return Settlement(settlement.item, action, reason=reason, error=held_error)
        elif action not in ("delete", "release"):
            raise InvalidArgumentError(f"unknown settlement action {action!r}")
        return Settlement(settlement.item, action, delay=delay)

    def _listed(self, listed: ListedItem) -> BrowsedItem:
        return BrowsedItem(listed.state, self._item(listed.stored))

    # -- failures and held items -----------------------------------------------------

    def fail_item(self, item: QueueItem, error: str, delay: float | None = None) -> bool:
        """Keep ``error`` with the item as its ``last_error``; False if the claim was lost.

        With ``delay`` None the item stays leased and comes back when its lease
        ends (Drupal's way); with a delay it is claimable ``delay`` s from now.
        One round trip either way. The runner calls this for a worker that
        raised; so may a loop of one's own.
        """
        self._check_item(item)
        text = cap_text("error", error, MAX_ERROR_CHARS)
        seconds = None if delay is None else self._check_delay(delay, self.capabilities.max_delay)
        expire = self.backend.fail_item(self.name, item, text, seconds)
        if expire is None:
            return False
        item.expire = expire
        item.last_error = text
        return True

    def hold_item(self, item: QueueItem, reason: str = "", error: str | None = None) -> bool:
        """Set a claimed item aside: never claimable until kicked; False if not held.

        Fenced by the claim token like :meth:`delete_item`. ``error``, when
        given, becomes the item's ``last_error``.
        """
        self._check_item(item)
        self._require_hold("hold_item")
        why = cap_text("reason", reason, MAX_REASON_CHARS)
        text = None if error is None else cap_text("error", error, MAX_ERROR_CHARS)
        return self.backend.hold_item(self.name, item, why, text)

    def held_items(self, limit: int = 100) -> list[QueueItem]:
        """Up to ``limit`` held items, oldest held first, with ``held_at`` and ``hold_reason``."""
        check_count("limit", limit)
        self._require_hold("held_items")
        return [self._item(row) for row in self.backend.held_items(self.name, limit)]

    def kick(self, limit: int | None = None) -> int:
        """Held items back to ready, oldest held first, attempts reset; how many (None: all)."""
        if limit is not None:
            check_count("limit", limit)
        self._require_hold("kick")
        return self.backend.kick(self.name, limit)

    def kick_item(self, item_id: ItemId) -> bool:
        """One held item back to ready, attempts reset; False if no such item is held."""
        _check_id(item_id)
        self._require_hold("kick_item")
        return self.backend.kick_item(self.name, item_id)

    def delete_held(self, limit: int | None = None) -> int:
        """Delete held items, oldest held first; how many (None: all)."""
        if limit is not None:
            check_count("limit", limit)
        self._require_hold("delete_held")
        return self.backend.delete_held(self.name, limit)

    def release_all(self) -> int:
        """Drop every lease and delay in this queue; returns how many items it freed.

        The claims it drops are ended: their holders can no longer delete,
        release, delay or extend those items.
        """
        return self.backend.release_all(self.name)

    def _item(self, row: StoredItem) -> QueueItem:
        """A listed item: undecodable bytes are shown, not raised."""
        try:
            data = self.codec.decode(row[1])
        except PayloadError as exc:
            data = Undecodable(row[1], str(exc))
        return self._built(row, data)

    def _built(self, row: StoredItem, data: Any) -> QueueItem:
        return QueueItem(
            row.item_id,
            data,
            row.created,
            row.expire,
            row.attempts,
            row.priority,
            self.name,
            row.token,
            row.last_error,
            row.held_at,
            row.hold_reason,
        )

    def _require_hold(self, operation: str) -> None:
        if not self.capabilities.hold:
            self._refuse(operation)

    def _check_item(self, item: QueueItem) -> None:
        if not isinstance(item, QueueItem):
            raise InvalidArgumentError(f"expected a QueueItem from claim_item, not {item!r}")
        if item.queue != self.name:
            raise InvalidArgumentError(
                f"item {item.item_id!r} was claimed from queue {item.queue!r}, not {self.name!r}"
            )

    def _check_delay(self, delay: float, most: float | None) -> float:
        seconds = check_seconds("delay", delay, positive=False, most=most, store=self.backend.url)
        if seconds and not self.capabilities.delay:
            self._refuse("delay")
        return seconds

    def _check_lease(self, lease_time: float) -> float:
        return check_seconds(
            "lease_time",
            lease_time,
            positive=True,
            most=self.capabilities.max_lease,
            store=self.backend.url,
        )

    def _check_priority(self, priority: int) -> None:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgumentError(f"priority must be an int, not {priority!r}")
        # The range first: a priority no backend could store is a bad argument
        # everywhere, before it is an unsupported one here.
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidArgumentError(
                f"priority must be from {MIN_PRIORITY} to {MAX_PRIORITY}, not {priority}"
            )
        if priority and not self.capabilities.priority:
            self._refuse("priority")
        most = self.capabilities.max_priority
        if most is not None and not 0 <= priority <= most:
            raise InvalidArgumentError(
                f"priority must be from 0 to {most} on {self.backend.url}, not {priority}"
            )

    def _refuse(self, operation: str) -> None:
        raise UnsupportedOperationError(
            f"the backend at {self.backend.url} does not support {operation} "
            f"(queue {self.name!r}); see its capabilities"
        )


def _check_id(item_id: object) -> None:
    if isinstance(item_id, bool) or not isinstance(item_id, int | str):
        raise InvalidArgumentError(f"an item id is an int or str, not {item_id!r}")


def _state(state: object) -> ItemState:
    try:
        return ItemState(str(state))
    except ValueError:
        names = ", ".join(member.value for member in ItemState)
        raise InvalidArgumentError(f"state must be one of {names}, not {state!r}") from None
