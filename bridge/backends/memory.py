"""In-process queues: the executable specification of the backend contract.

Features:
    Everything the contract has (per-claim leases, extend, delay, priority,
    claim tokens, attempts), kept in a dict guarded by a lock, so the memory
    backend passes the same contract suite as the real ones. Not reliable:
    items live and die with the process, and other processes never see them
    (Drupal's ``Memory`` queue). Payloads are stored encoded, so a caller
    mutating its data after ``create_item`` does not change the queue.
    A record's token is that of its latest claim: the holder's own release
    or delay keeps it (Drupal lets the holder go on settling), a new claim
    replaces it and ``release_all`` clears it. ``delayed`` tells a delayed
    item from a leased one for ``counts``; ``held_at`` marks a held item,
    which no claim, peek or ``release_all`` touches until it is kicked.
    ``settle_and_claim`` holds the lock across the settlement and the
    claim, so no other thread sees one without the other (capability on);
    ``browse`` lists items in id order (creation order), the cursor being
    the last id shown. ``dies`` is a TTL's deadline (None: no TTL); an
    expired record stays in the dict, skipped by claims, peek and browse
    and counted as expired, until ``garbage_collection`` deletes it.

URL format:
    ``memory://`` (anything after the scheme is ignored). Every queue served
    by one factory's ``memory://`` backend lives in that backend object.

Options:
    none.

Storage layout:
    ``{queue name: {item_id: record}}``; ids count up from 1 across all
    queues and are never reused, so a stale item can never match a new one.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import final

from bridge.contract import Backend, Capabilities, Expiring, settle
from bridge.errors import InvalidArgumentError
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


@dataclass(slots=True)
class _Record:
    payload: bytes
    created: float
    expire: float
    attempts: int
    priority: int
    token: str
    delayed: bool = False
    last_error: str | None = None
    held_at: float | None = None
    hold_reason: str | None = None
    dies: float | None = None

    def stored(self, item_id: int, token: str) -> StoredItem:
        return StoredItem(
            item_id,
            self.payload,
            self.created,
            self.expire,
            self.attempts,
            self.priority,
            token,
            self.last_error,
            self.held_at,
            self.hold_reason,
        )

    def expired(self, now: float) -> bool:
        """Past its TTL and not protected by a lease that still holds (nor held)."""
        if self.dies is None or self.dies > now or self.held_at is not None:
            return False
        return self.delayed or self.expire <= now

    def claimable(self, now: float) -> bool:
        return self.held_at is None and self.expire <= now and not self.expired(now)

    def state(self, now: float) -> ItemState:
        """Where the record is at ``now``: the rule ``counts`` counts by (unexpired records)."""
        if self.held_at is not None:
            return ItemState.HELD
        if self.expire <= now:
            return ItemState.READY
        return ItemState.DELAYED if self.delayed else ItemState.LEASED


@final
class MemoryBackend(Backend, Expiring):
    """Queues in a dict of this process; see the module docstring."""

    capabilities = Capabilities(
        reliable=False,
        shared=False,
        lease="exact",
        extend_lease=True,
        delay=True,
        priority=True,
        counts_leased=True,
        hold=True,
        browse=True,
        remove_item=True,
        settle_and_claim=True,
        ttl=True,
        grace=True,
        topics=True,
    )

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._queues: dict[str, dict[int, _Record]] = {}
        self._ids = itertools.count(1)
        # Reentrant: settle_and_claim makes the single calls under one hold of it.
        self._lock = threading.RLock()

    def create_queue(self, name: str) -> None:
        with self._lock:
            self._queues.setdefault(name, {})

    def delete_queue(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        return self.create_expiring_items(name, payloads, delay, priority, None)

    def create_expiring_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int, ttl: float | None
    ) -> list[ItemId]:
        with self._lock:
            now = time.time()
            queue = self._queues.setdefault(name, {})
            ids: list[ItemId] = []
            for payload in payloads:
                item_id = next(self._ids)
                queue[item_id] = _Record(
                    payload, now, now + delay if delay else 0.0, 0, priority, "", bool(delay)
                )
                if ttl is not None:
                    queue[item_id].dies = now + ttl
                ids.append(item_id)
            return ids

    def counts(self, name: str) -> ItemCounts:
        with self._lock:
            now = time.time()
            found = dict.fromkeys(ItemState, 0)
            expired = 0
            for record in self._queues.get(name, {}).values():
                if record.expired(now):
                    expired += 1
                else:
                    found[record.state(now)] += 1
            return ItemCounts(
                found[ItemState.READY],
                found[ItemState.LEASED],
                found[ItemState.DELAYED],
                found[ItemState.HELD],
                expired,
            )

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        return self.claim_items_with_grace(name, count, lease_time, None)

    def claim_items_with_grace(
        self, name: str, count: int, lease_time: float, grace: float | None
    ) -> list[StoredItem]:
        with self._lock:
            now = time.time()
            queue = self._queues.get(name, {})
            claimable = [i for i, r in queue.items() if r.claimable(now)]
            claimable.sort(key=lambda i: (-queue[i].priority, i))
            claimed = []
            for item_id in claimable[:count]:
                record = queue[item_id]
                record.expire = now + lease_time
                if grace is not None and record.dies is not None:
                    record.dies = max(record.dies, record.expire + grace)
                record.attempts += 1
                record.token = secrets.token_hex(16)
                record.delayed = False
                claimed.append(record.stored(item_id, record.token))
            return claimed

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        with self._lock:
            # The single calls, under one hold of the lock: all or nothing, as
            # a transaction would be (a refused settlement raises before any
            # change, and a claim here cannot fail).
            settled = settle(self, name, settlement)
            return settled, self.claim_items(name, count, lease_time) if count else []

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._lock:
            queue = self._queues.get(name, {})
            deleted = 0
            for item in items:
                if self._claimed_by(queue, item):
                    del queue[item.item_id]  # type: ignore[arg-type]
                    deleted += 1
            return deleted

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_expire(name, item, lambda now: 0.0, delayed=False) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._set_expire(name, item, lambda now: now + delay, delayed=True)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._set_expire(name, item, lambda now: now + lease_time, delayed=False)

    def extend_lease_with_grace(
        self, name: str, item: QueueItem, lease_time: float, grace: float
    ) -> float | None:
        with self._lock:
            expire = self.extend_lease(name, item, lease_time)
            record = self._claimed_record(name, item)
            if expire is not None and record is not None and record.dies is not None:
                record.dies = max(record.dies, expire + grace)
            return expire

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        with self._lock:
            record = self._claimed_record(name, item)
            if record is None:
                return None
            record.last_error = error
            if delay is not None:
                record.expire = time.time() + delay
                record.delayed = True
            return record.expire

    def garbage_collection(self, name: str) -> None:
        with self._lock:
            now = time.time()
            queue = self._queues.get(name, {})
            for item_id in [i for i, record in queue.items() if record.expired(now)]:
                del queue[item_id]

    def oldest_ready_age(self, name: str) -> float | None:
        with self._lock:
            now = time.time()
            ready = [r.created for r in self._queues.get(name, {}).values() if r.claimable(now)]
            return now - min(ready) if ready else None

    def queue_names(self) -> dict[str, int]:
        with self._lock:
            return {name: len(queue) for name, queue in self._queues.items() if queue}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        with self._lock:
            now = time.time()
            queue = self._queues.get(name, {})
            listed = [
                i
                for i, record in queue.items()
                if record.held_at is None and not record.expired(now)
            ]
            listed.sort(key=lambda i: (queue[i].expire > now, -queue[i].priority, i))
            return [queue[i].stored(i, "") for i in listed[:limit]]

    def browse(self, name: str, state: ItemState | None, after: str | None, limit: int) -> ItemPage:
        start = _cursor(after)
        with self._lock:
            now = time.time()
            queue = self._queues.get(name, {})
            listed: list[ListedItem] = []
            # Ids only grow, so a page after id n never shifts as items come and go.
            for item_id in sorted(i for i in queue if i > start):
                record = queue[item_id]
                if record.expired(now):
                    continue  # gone but for garbage_collection: counted, never listed
                where = record.state(now)
                if state is not None and where != state:
                    continue
                if len(listed) == limit:
                    return ItemPage(listed, str(listed[-1].stored.item_id))
                listed.append(ListedItem(where, record.stored(item_id, "")))
            return ItemPage(listed, None)

    def find_item(self, name: str, item_id: ItemId) -> ListedItem | None:
        if not isinstance(item_id, int):
            return None  # ids here are ints: a str names no item
        with self._lock:
            record = self._queues.get(name, {}).get(item_id)
            if record is None:
                return None
            return ListedItem(record.state(time.time()), record.stored(item_id, ""))

    def remove_item(self, name: str, item_id: ItemId) -> bool:
        if not isinstance(item_id, int):
            return False
        with self._lock:
            return self._queues.get(name, {}).pop(item_id, None) is not None

    def release_all(self, name: str) -> int:
        with self._lock:
            now = time.time()
            freed = 0
            for record in self._queues.get(name, {}).values():
                if record.held_at is not None or record.expired(now):
                    continue
                if record.expire > now:
                    freed += 1
                record.expire = 0.0
                record.token = ""
                record.delayed = False
            return freed

    # -- holding ------------------------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        with self._lock:
            record = self._claimed_record(name, item)
            if record is None:
                return False
            record.held_at = time.time()
            record.hold_reason = reason
            if error is not None:
                record.last_error = error
            record.token = ""
            record.delayed = False
            return True

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        with self._lock:
            queue = self._queues.get(name, {})
            return [queue[i].stored(i, "") for i in self._held_order(queue)[:limit]]

    def kick(self, name: str, limit: int | None) -> int:
        with self._lock:
            queue = self._queues.get(name, {})
            kicked = self._held_order(queue)[:limit]
            for item_id in kicked:
                self._unhold(queue[item_id])
            return len(kicked)

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        with self._lock:
            record = self._queues.get(name, {}).get(item_id)  # type: ignore[arg-type]
            if record is None or record.held_at is None:
                return False
            self._unhold(record)
            return True

    def delete_held(self, name: str, limit: int | None) -> int:
        with self._lock:
            queue = self._queues.get(name, {})
            doomed = self._held_order(queue)[:limit]
            for item_id in doomed:
                del queue[item_id]
            return len(doomed)

    @staticmethod
    def _held_order(queue: dict[int, _Record]) -> list[int]:
        held = [i for i, record in queue.items() if record.held_at is not None]
        held.sort(key=lambda i: (queue[i].held_at, i))
        return held

    @staticmethod
    def _unhold(record: _Record) -> None:
        record.held_at = record.hold_reason = None
        record.attempts = 0
        record.expire = 0.0

    def _set_expire(
        self, name: str, item: QueueItem, expire_at: Callable[[float], float], *, delayed: bool
    ) -> float | None:
        with self._lock:
            record = self._claimed_record(name, item)
            if record is None:
                return None
            record.expire = expire_at(time.time())
            record.delayed = delayed
            return record.expire

    def _claimed_record(self, name: str, item: QueueItem) -> _Record | None:
        """The record of ``item`` while its claim is the latest; call with the lock held."""
        queue = self._queues.get(name, {})
        return queue[item.item_id] if self._claimed_by(queue, item) else None  # type: ignore[index]

    @staticmethod
    def _claimed_by(queue: dict[int, _Record], item: QueueItem) -> bool:
        """Whether ``item``'s claim is the record's latest (a held record has none)."""
        record = queue.get(item.item_id)  # type: ignore[arg-type]
        # An unclaimed record has no token; a peeked item's empty token matches none.
        return record is not None and bool(item.token) and record.token == item.token


def _cursor(after: str | None) -> int:
    """The last id a page showed, from ``next_after``; 0 for the first page."""
    if after is None:
        return 0
    try:
        return int(after)
    except ValueError:
        raise InvalidArgumentError(f"after must be a cursor from a page, not {after!r}") from None
