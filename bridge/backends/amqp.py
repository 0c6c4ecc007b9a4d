"""RabbitMQ (AMQP 0-9-1) queues for the kombu backend's ``kombu+amqp://`` URLs.

The queue semantics live here: claims, the emulated lease, tokens,
attempts. ``kombu_amqp_session.py`` does the talking to the broker (the
connection and its channels). The lease design, (a) expiry in a live
process and (b) a dead process, is set out in ``kombu.py``.

Features:
    Queues are declared durable and messages published persistent
    (``application/octet-stream``: the codec's bytes are the body) in an AMQP
    transaction, so ``create_items`` writes all or none. ``claim_items(n)``
    is up to ``n`` ``basic.get`` calls. Each queue has its own channel, so a
    channel error on one queue (a missing queue, ``consumer_timeout``) never
    costs the claims held on another. A call that finds the connection lost
    raises :class:`~bridge.errors.BackendUnavailableError` (the broker has
    requeued its claims, which now return False); the next call reconnects.
    A forked child drops its parent's connection unused and opens its own.

    Attempts are exact for claims made through one backend object (it counts
    them per message id, which the broker does not for requeues); a delivery
    first seen here counts 1, or 2 if the broker marks it redelivered; on a
    quorum queue the broker's ``x-delivery-count`` makes them exact anywhere.

    ``peek`` fetches ready messages and requeues them at once (AMQP cannot
    look without fetching): it marks them redelivered, and for that moment
    other claimers do not see them. ``queue_names`` lists the queues this
    backend has used (AMQP cannot list a broker's queues).

Options:
    ``max_priority``: declare queues with ``x-max-priority`` (1-255) and
    accept priorities 0 to that; a queue declared without it cannot gain it
    later (delete and re-create it). Default: no priorities.
    ``queue_arguments``: more declare arguments, such as
    ``{"x-queue-type": "quorum"}`` (exact attempts everywhere; released
    items go to the back of the queue).
    ``max_lease``: the latest a lease may end, in seconds after the delivery
    (default 1800, RabbitMQ's default ``consumer_timeout``; None: no limit).
    ``connect_timeout`` (default 5 s); ``heartbeat`` (default 0: none, since
    nothing services heartbeats while a worker runs an item);
    ``transport_options`` (passed to Kombu).

Storage layout:
    One durable queue per bridge queue, named as it, on the default exchange.
    Message: body = the payload; ``message_id`` = the item id (32 hex
    digits); ``priority``; header ``bridge-created`` = the creation time
    (epoch seconds, the creating process's clock). Messages from other
    producers are claimed too; without a message id, they get a new id at
    each claim.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bridge.backends import missing_driver
from bridge.backends.amqp_session import (
    AmqpSession,
    Fetched,
    Held,
    Ledger,
    check_max_lease,
    declare_arguments,
)
from bridge.backends.tokens import CREATED_HEADER, new_token, token_owner
from bridge.contract import Capabilities
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    InvalidArgumentError,
    UnsupportedOperationError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem
from bridge.urls import mask_password

_backends: weakref.WeakSet[AmqpBackend] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    # A forked child shares its parent's sockets: closing or using them would
    # break the parent's connection and requeue the parent's claims.
    for backend in list(_backends):
        backend._forget_connection()


os.register_at_fork(after_in_child=_forget_parent_connections)


def amqp_capabilities(*, priority: bool = False) -> Capabilities:
    """Reliable (durable queues, persistent messages, committed publishes; a dead
    claimer's messages are redelivered at once) and shared, but the lease is
    emulated by the claiming connection, which is also why ``extend_lease`` is
    local. Counts see ready messages and this backend's own claims only.
    ``priority`` for queues declared with ``x-max-priority``.
    """
    return Capabilities(
        reliable=True, shared=True, lease="emulated", extend_lease=True,
        delay=False, priority=priority, counts_leased=False,
        crash_recovery="disconnect", settle_anywhere=False,
    )


class AmqpBackend:
    """Queues on RabbitMQ through Kombu's py-amqp transport; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        max_priority: int | None = None,
        queue_arguments: dict[str, Any] | None = None,
        max_lease: float | None = 1800.0,
        connect_timeout: float = 5.0,
        heartbeat: float = 0,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = mask_password(url)
        broker_url = url
        try:
            import kombu
            import kombu.transport.pyamqp
        except ImportError as exc:
            raise missing_driver(exc, url) from None
        options = {"connect_timeout": connect_timeout, "heartbeat": heartbeat,
                   "transport_options": dict(transport_options or {})}
        arguments = declare_arguments(max_priority, queue_arguments)
        self._session = AmqpSession(kombu, broker_url, self.url, options, arguments)
        self._max_priority = max_priority or 0
        self._max_lease = check_max_lease(max_lease)
        self.capabilities = amqp_capabilities(priority=bool(max_priority))
        self._ledger = Ledger()
        self._known: set[str] = set()
        self._forget_connection()
        _backends.add(self)

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._channel(name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue with every message in it, unacknowledged ones included."""
        with self._calling("delete_queue"):
            self._session.discard(name)
            self._session.admin().queue_delete(queue=name)
            self._known.discard(name)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        if delay:
            raise UnsupportedOperationError(f"{self.url} cannot delay items (no delay on AMQP)")
        if not 0 <= priority <= self._max_priority:
            raise InvalidArgumentError(
                f"priority must be 0 to {self._max_priority} on queues of {self.url} "
                f"(the max_priority option), not {priority}"
            )
        ids: list[ItemId] = []
        with self._calling("create_items"):
            self._channel(name)
            now = time.time()
            messages = [(uuid.uuid4().hex, payload) for payload in payloads]
            self._session.publish(name, messages, priority, {CREATED_HEADER: now}, int(now),
                                  self._busy())
            ids.extend(message_id for message_id, _ in messages)
        return ids

    def number_of_items(self, name: str) -> int:
        """Ready messages, plus the ones this backend holds; other holders' are invisible."""
        with self._calling("number_of_items"):
            ready = self._session.ready_count(name)
            self._prune()
            return ready + sum(1 for held in self._held.values() if held.queue == name)

    def counts(self, name: str) -> ItemCounts:
        """Ready in the broker plus expired leases here; leased: this backend's claims only."""
        with self._calling("counts"):
            ready = self._session.ready_count(name)
            expired = len(self._expired(name))
            leased = sum(1 for held in self._held.values() if held.queue == name) - expired
            return ItemCounts(ready + expired, leased, 0)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        if self._max_lease is not None and lease_time > self._max_lease:
            raise InvalidArgumentError(
                f"lease_time {lease_time:g} s is longer than max_lease ({self._max_lease:g} s) "
                f"for {self.url}: RabbitMQ's consumer_timeout would requeue the item first"
            )
        with self._calling("claim_items"):
            self._requeue(name, self._expired(name)[:count])
            try:
                return self._fetch(name, count, lease_time)
            except self._session.channel_errors as exc:
                if getattr(exc, "code", None) != 404:
                    raise
                # Deleted by another process since this connection declared it.
                self._session.bury_dead()
                return self._fetch(name, count, lease_time)

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            self._prune()  # once, not once per item: a batch of 100 would scan 100 x 100
            taken = [held for held in (self._take(name, item, prune=False) for item in items)
                     if held]
            for held in taken:
                held.channel.basic_ack(held.fetched.tag)
                self._ledger.forget(held.fetched.message_id)
            return len(taken) if taken and self._session.confirmed(name) else 0

    def release_item(self, name: str, item: QueueItem) -> bool:
        with self._calling("release_item"):
            held = self._take(name, item)
            if held is None:
                return False
            held.channel.basic_reject(held.fetched.tag, requeue=True)
            return self._session.confirmed(name)

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        raise UnsupportedOperationError(f"{self.url} cannot delay items (no delay on AMQP)")

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        """Move the local deadline, once the broker confirms the delivery is still held."""
        with self._calling("extend_lease"):
            held = self._find(name, item)
            if held is None:
                return None
            now = time.time()
            if self._max_lease is not None and now + lease_time > held.delivered + self._max_lease:
                raise InvalidArgumentError(
                    f"the lease would end {now + lease_time - held.delivered:.0f} s after the "
                    f"delivery, past max_lease ({self._max_lease:g} s) for {self.url}: "
                    "RabbitMQ's consumer_timeout would requeue the item first"
                )
            if not self._session.confirmed(name):
                return None
            held.expire = now + lease_time
            return held.expire

    def garbage_collection(self, name: str) -> None:
        """Give every expired lease of this queue held here back to the broker."""
        with self._calling("garbage_collection"):
            self._requeue(name, self._expired(name))

    # -- inspection ----------------------------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Queues this backend has used that hold items: AMQP cannot list a broker's queues."""
        counts = {name: self.number_of_items(name) for name in sorted(self._known)}
        return {name: count for name, count in counts.items() if count}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Expired leases held here, ready messages, then this backend's live leases.

        AMQP cannot look without fetching: ready messages are fetched and
        requeued at once, at their place. That marks them redelivered, and for
        that moment other claimers do not see them.
        """
        with self._calling("peek"):
            expired = [held for _, held in self._expired(name)]
            ready = self._borrow(name, limit - len(expired)) if limit > len(expired) else []
            now = time.time()
            leased = [held for held in self._held.values()
                      if held.queue == name and held.expire > now]
            shown = [held.stored("") for held in expired] + ready
            shown += [held.stored("") for held in sorted(leased, key=lambda held: held.seq)]
            return shown[:limit]

    def release_all(self, name: str) -> int:
        """Give back every lease this backend holds on the queue; others' are out of reach."""
        with self._calling("release_all"):
            self._prune()
            held = sorted(((token, held) for token, held in self._held.items()
                           if held.queue == name), key=lambda pair: pair[1].seq)
            self._requeue(name, held)
            return len(held)

    def close(self) -> None:
        """Close the connection; the broker requeues every message still held."""
        with self._lock:
            self._held.clear()
            self._session.close()

    # -- claims held ---------------------------------------------------------------

    def _receive(
        self, name: str, channel: Any, fetched: Fetched, expire: float, attempts: int
    ) -> tuple[str, Held]:
        """Hold a fetched message under a new token."""
        held = Held(
            queue=name, channel=channel, fetched=fetched,
            item_id=fetched.message_id or uuid.uuid4().hex, attempts=attempts,
            expire=expire, delivered=time.time(), seq=next(self._seq),
        )
        token = new_token(self._owner)
        self._held[token] = held
        return token, held

    def _fetch(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """Up to ``count`` single-message fetches, each held under a new token."""
        channel = self._channel(name)
        expire = time.time() + lease_time
        claimed: list[StoredItem] = []
        while len(claimed) < count:
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            fetched = Fetched.of(message)
            token, held = self._receive(name, channel, fetched, expire,
                                        self._ledger.claim(fetched))
            claimed.append(held.stored(token))
        return claimed

    def _find(self, name: str, item: QueueItem, *, prune: bool = True) -> Held | None:
        """The live delivery ``item`` holds; None if its claim is gone; foreign items raise."""
        if item.token and token_owner(item.token) != self._owner:
            raise UnsupportedOperationError(
                f"item {item.item_id!r} of queue {name!r} was claimed through another "
                f"connection or process; on {self.url} only the connection that received a "
                "message can acknowledge or requeue it (AMQP delivery tags are per channel)"
            )
        if prune:
            self._prune()
        held = self._held.get(item.token)
        return held if held is not None and held.queue == name else None

    def _take(self, name: str, item: QueueItem, *, prune: bool = True) -> Held | None:
        held = self._find(name, item, prune=prune)
        if held is not None:
            del self._held[item.token]
        return held

    def _expired(self, name: str) -> list[tuple[str, Held]]:
        self._prune()
        now = time.time()
        expired = [(t, h) for t, h in self._held.items() if h.queue == name and h.expire <= now]
        return sorted(expired, key=lambda pair: pair[1].seq)

    def _requeue(self, name: str, held: list[tuple[str, Held]]) -> None:
        """Requeue these deliveries; RabbitMQ puts each back at its place in the queue."""
        for token, delivery in held:
            del self._held[token]
            delivery.channel.basic_reject(delivery.fetched.tag, requeue=True)
        if held:
            self._session.confirmed(name)

    def _borrow(self, name: str, limit: int) -> list[StoredItem]:
        """Fetch up to ``limit`` ready messages for a look, then requeue them all."""
        channel = self._channel(name)
        borrowed: list[tuple[str, Held]] = []
        for _ in range(limit):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            fetched = Fetched.of(message)
            borrowed.append(self._receive(name, channel, fetched, 0.0, self._ledger.look(fetched)))
        self._requeue(name, borrowed)
        return [held.stored("") for _, held in borrowed]

    def _prune(self) -> None:
        """Forget deliveries whose channel is gone: the broker requeued them."""
        live = {name: channel for name, channel in self._session.channels.items()
                if channel.is_open}
        dead = [token for token, held in self._held.items()
                if live.get(held.queue) is not held.channel]
        for token in dead:
            del self._held[token]

    def _busy(self) -> set[str]:
        return {held.queue for held in self._held.values()}

    def _channel(self, name: str) -> Any:
        channel = self._session.queue_channel(name, self._busy())
        self._known.add(name)
        return channel

    # -- connection ----------------------------------------------------------------

    def _forget_connection(self) -> None:
        """Start afresh without a word to the broker: at start-up and in a forked child.

        A child gets a new lock (its parent's may have been held by another
        thread at the fork) and a new owner id, so its parent's claims are
        foreign to it.
        """
        self._lock = threading.RLock()
        self._owner = uuid.uuid4().hex[:12]
        self._held: dict[str, Held] = {}
        self._seq = itertools.count()
        self._session.forget()

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Serialize calls; driver errors become bridge errors naming the broker."""
        session = self._session
        with self._lock:
            try:
                session.drain_pending()
                yield
            except BridgeError:
                raise
            except session.channel_errors as exc:
                session.bury_dead()
                raise BackendError(f"{operation} on {self.url} failed: {exc}") from exc
            except session.connection_errors as exc:
                session.lost()
                self._held.clear()  # the broker requeued them: calls with them return False
                raise BackendUnavailableError(
                    f"{operation} on {self.url} failed: the broker connection is lost ({exc}); "
                    "the broker requeued this connection's claims; the next call reconnects"
                ) from exc
