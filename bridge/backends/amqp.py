"""RabbitMQ (AMQP 0-9-1) queues, through Kombu's py-amqp transport.

The queue semantics live here: claims, the emulated lease, delays, who may
settle a claim. ``amqp_session.py`` talks to the broker (the connection and
its channels), ``amqp_layout.py`` decides queue types, arguments and
holding queues, ``amqp_delays.py`` runs the holding queues,
``amqp_claims.py`` and ``amqp_records.py`` keep what this object holds and
has seen. ``docs/rabbitmq.md`` explains the choices and the measurements.

Features:
    Quorum queues where the server has them (RabbitMQ 3.10 and later): an
    acknowledged message stays acknowledged across a crash of the broker.
    Classic queues with ``max_priority``, with ``queue_type="classic"`` and
    on older servers. Messages are persistent (``application/octet-stream``,
    the codec's bytes as the body), published in an AMQP transaction, so
    ``create_items`` writes all or none. ``claim_items(n)`` is up to ``n``
    ``basic.get`` calls, never a consumer (which would take every ready
    message).

    The lease is emulated: a claim is an unacknowledged delivery on this
    object's connection, which RabbitMQ gives to nobody else while the
    connection lives. An expired one is requeued when this object next
    claims from the queue, garbage-collects, releases all or closes; a
    claimer that dies or loses its connection has its claims requeued by the
    broker at once. RabbitMQ's ``consumer_timeout`` counts from the delivery,
    hence ``max_lease``.

    Delays are real: a delayed item waits in a holding queue and is
    dead-lettered back when its delay ends, whatever the processes do;
    ``counts`` reports it ``delayed``, ``release_all`` hands it back early.
    A delay publishes a copy, then acknowledges the original: a failure in
    between leaves the item twice, never lost.

    Who may settle: AMQP acknowledges a delivery by its tag, numbered per
    channel, so only the object that claimed an item can delete, release,
    delay or extend it; another gets
    :class:`~bridge.errors.UnsupportedOperationError`. A holder's release or
    delay ends its claim (``settle_after_release=False``): the message is
    back in a queue, and AMQP cannot take one chosen message out of a queue,
    so the holder's later calls return False rather than claim an effect
    they cannot have. So do calls on a claim that another claimer,
    ``release_all`` or a lost connection took.

    Attempts are exact on quorum queues (the broker's ``x-delivery-count``,
    less this object's own looks) and through one object on classic ones (a
    lower bound across processes). ``peek`` fetches ready messages and
    requeues them at once (AMQP cannot look without fetching) and leaves
    delayed items out. ``queue_names`` lists the queues this object has used
    (AMQP cannot list a broker's queues). A forked child drops its parent's
    connection unused and opens its own.

URL format:
    ``amqp://user:password@host:5672/vhost`` (``amqps://`` for TLS; a
    trailing ``//`` is the default vhost ``/``). ``kombu+amqp://`` and
    ``kombu+pyamqp://`` are aliases.

Options:
    ``queue_type``: ``"quorum"`` or ``"classic"``; unset, quorum where the
    server has it and classic with ``max_priority``, and an existing queue
    of another type is used as it is, with a warning (set, it is a
    :class:`~bridge.errors.ConfigurationError`). ``max_priority``: classic
    queues with ``x-max-priority`` (1-255), priorities 0 to that, higher
    first. ``queue_arguments``: more declare arguments. ``max_lease``: the
    latest a lease may end, in seconds after the delivery (default 1800,
    RabbitMQ's default ``consumer_timeout``; None: no limit); a claim may
    ask for a minute less (``capabilities.max_lease``), so that a full lease
    can be extended in its first minute. ``connect_timeout`` (default 5 s);
    ``heartbeat`` (default 0: nothing services heartbeats while a worker
    runs an item); ``transport_options`` (passed to Kombu).

Storage layout:
    One durable queue per bridge queue, named as it, on the default
    exchange. Message: body = the payload; ``message_id`` = the item id (32
    hex digits); ``priority``; headers ``bridge-created`` (creation time,
    epoch seconds, the creating process's clock) and, on a delayed copy,
    ``bridge-attempts`` (claims before it). Holding queues
    ``bridge.delay.<2**k>ms.<name>`` and an index queue
    ``bridge.delay.index.<name>`` (the name's SHA-256 in place of the name
    when the whole would pass 255 bytes), which delete themselves when
    unused. Messages from other producers are claimed too; without a
    message id, they get a new id at each claim.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, final

from bridge.backends import missing_driver
from bridge.backends.amqp_claims import Claims
from bridge.backends.amqp_delays import Delays
from bridge.backends.amqp_layout import MAX_DELAY, Layout
from bridge.backends.amqp_records import (
    Fetched,
    Held,
    Ledger,
    Outgoing,
    check_max_lease,
    longest_lease,
)
from bridge.backends.amqp_session import AmqpSession
from bridge.backends.tokens import CREATED_HEADER
from bridge.contract import Backend, Capabilities
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    InvalidArgumentError,
    UnsupportedOperationError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem

log = logging.getLogger(__name__)


def amqp_capabilities(
    *, max_priority: int | None = None, ordered: bool = False, max_lease: float | None = 1800.0
) -> Capabilities:
    """Reliable and shared, with an emulated lease (see the module docstring).

    ``ordered`` only on classic queues: a quorum queue puts requeued items
    back ahead of the ready ones in the order they came back, not the order
    they were created.
    """
    return Capabilities(
        reliable=True,
        shared=True,
        lease="emulated",
        extend_lease=True,
        delay=True,
        priority=max_priority is not None,
        counts_leased=False,
        crash_recovery="disconnect",
        settle_anywhere=False,
        ordered=ordered,
        cancel_delays=True,
        settle_after_release=False,
        max_delay=MAX_DELAY,
        max_lease=longest_lease(max_lease),
        max_priority=max_priority,
    )


def _requeued_on_quorum(fetched: Fetched) -> bool:
    return fetched.redelivered and fetched.delivery_count is not None


@final
class AmqpBackend(Backend):
    """Queues on RabbitMQ through Kombu's py-amqp transport; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        queue_type: str | None = None,
        max_priority: int | None = None,
        queue_arguments: dict[str, Any] | None = None,
        max_lease: float | None = 1800.0,
        connect_timeout: float = 5.0,
        heartbeat: float = 0,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(url)
        try:
            import kombu
            import kombu.transport.pyamqp
        except ImportError as exc:
            raise missing_driver(exc, url) from None
        layout = Layout.of(queue_type, max_priority, queue_arguments)
        options = {
            "connect_timeout": connect_timeout,
            "heartbeat": heartbeat,
            "transport_options": dict(transport_options or {}),
        }
        self._session = AmqpSession(kombu, url, self.url, options, layout)
        self._delays = Delays(self._session)
        self._max_lease = check_max_lease(max_lease)
        self.capabilities = amqp_capabilities(
            max_priority=max_priority,
            max_lease=self._max_lease,
            ordered=layout.queue_type == "classic" or max_priority is not None,
        )
        self._ledger = Ledger()
        self._known: set[str] = set()
        self.forget_connections()

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._channel(name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue and its holding queues, unacknowledged messages included."""
        with self._calling("delete_queue"):
            self._session.discard(name)
            self._delays.delete(name)  # first: their messages would dead-letter into it
            self._session.delete(name)
            self._known.discard(name)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        with self._calling("create_items"):
            self._channel(name)  # delayed ones dead-letter into it: it must exist
            now = time.time()
            headers = {CREATED_HEADER: now}
            messages = [
                Outgoing(uuid.uuid4().hex, payload, priority, headers) for payload in payloads
            ]
            if delay > 0:
                self._delays.hold(name, messages, delay, int(now))
            else:
                self._session.publish(name, messages, int(now), self._redeclarer(name))
            return [message.message_id for message in messages]

    def counts(self, name: str) -> ItemCounts:
        """Ready in the broker plus expired leases here; leased: this backend's claims only."""
        with self._calling("counts"):
            ready = self._session.ready_count(name) or 0
            expired = len(self._expired(name))
            held = self._claims.count(name)
            return ItemCounts(ready + expired, held - expired, self._delays.count(name))

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
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
            taken: list[Held] = []
            for item in items:
                held = self._find(name, item, prune=False)
                if held is not None:
                    self._claims.pop(item.token)  # at once: an item listed twice counts once
                    taken.append(held)
            for held in taken:
                held.channel.basic_ack(held.fetched.tag)
                self._ledger.forget(held.fetched.message_id)
            return len(taken) if taken and self._session.confirmed(name) else 0

    def release_item(self, name: str, item: QueueItem) -> bool:
        with self._calling("release_item"):
            held = self._find(name, item)
            return held is not None and self._requeue(name, [(item.token, held)], visibly=True)

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        """Move the item to its holding queue: a copy first, then the original acknowledged."""
        with self._calling("delay_item"):
            held = self._find(name, item)
            if held is None:
                return None
            now = time.time()
            if delay <= 0:
                return now if self._requeue(name, [(item.token, held)], visibly=True) else None
            if not self._session.confirmed(name):  # the broker took it back meanwhile
                self._claims.pop(item.token)
                return None
            copy = held.fetched.again(held.item_id, held.attempts)
            self._delays.hold(name, [copy], delay, int(now))
            self._claims.pop(item.token)
            self._ledger.note(held.item_id, held.attempts, looks=0)
            held.channel.basic_ack(held.fetched.tag)
            if not self._session.confirmed(name):
                log.warning(
                    "item %s of queue %r on %s is now there twice, delayed and ready: the broker "
                    "requeued it between the delay and its acknowledgement",
                    held.item_id,
                    name,
                    self.url,
                )
                return None
            return now + delay

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

    # -- inspection and administration -----------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Queues this backend has used that hold items: AMQP cannot list a broker's queues."""
        totals = {name: self.counts(name).total for name in sorted(self._known)}
        return {name: total for name, total in totals.items() if total}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Expired leases held here, ready messages, then this backend's live leases.

        AMQP cannot look without fetching: ready messages are fetched and
        requeued at once, at their place. That marks them redelivered, and for
        that moment other claimers do not see them. Delayed items are left
        out: fetching from a holding queue would reorder its expiries.
        """
        with self._calling("peek"):
            expired = [held for _, held in self._expired(name)]
            ready = self._borrow(name, limit - len(expired)) if limit > len(expired) else []
            shown = [held.stored("") for held in expired] + ready
            shown += [held.stored("") for held in self._claims.live(name)]
            return shown[:limit]

    def release_all(self, name: str) -> int:
        """Requeue this backend's claims and every delayed item; others' claims are out of reach."""
        with self._calling("release_all"):
            self._prune()
            held = self._claims.of(name)
            self._requeue(name, held, visibly=True)
            redeclare = self._redeclarer(name)
            cancelled = self._delays.cancel(
                name,
                lambda copies: self._session.publish(name, copies, int(time.time()), redeclare),
            )
            return len(held) + cancelled

    def close(self) -> None:
        """Close the connection; the broker requeues every message still held."""
        with self._lock:
            self._claims.clear()
            self._session.close()

    def forget_connections(self) -> None:
        """Start afresh without a word to the broker: at start-up and in a forked child.

        A child gets a new lock (its parent's may have been held by another
        thread at the fork) and a new owner id, so its parent's claims are
        foreign to it.
        """
        self._lock = threading.RLock()
        self._claims = Claims()
        self._session.forget()

    # -- claims held ---------------------------------------------------------------

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
            attempts = self._ledger.claim(fetched)
            token, held = self._claims.receive(name, channel, fetched, expire, attempts)
            claimed.append(held.stored(token))
        return claimed

    def _find(self, name: str, item: QueueItem, *, prune: bool = True) -> Held | None:
        """The live delivery ``item`` holds; None if its claim is gone; foreign items raise."""
        if self._claims.foreign(item.token):
            raise UnsupportedOperationError(
                f"item {item.item_id!r} of queue {name!r} was claimed through another "
                f"connection or process; on {self.url} only the connection that received a "
                "message can acknowledge or requeue it (AMQP delivery tags are per channel)"
            )
        if prune:
            self._prune()
        return self._claims.get(name, item.token)

    def _expired(self, name: str) -> list[tuple[str, Held]]:
        self._prune()
        return self._claims.expired(name)

    def _requeue(self, name: str, held: list[tuple[str, Held]], *, visibly: bool = False) -> bool:
        """Requeue these deliveries: back at their place (classic) or ahead of the ready ones.

        True once the broker confirmed. The queue's count shows a requeue a
        moment after the broker confirms it (a quorum queue once its log has
        it; a classic queue too, seen here in about one look in six);
        ``visibly`` waits for the count to show the items back, so that the
        caller's next count, and other connections' claims, see them.
        """
        before = (self._session.ready_count(name) or 0) if visibly else 0
        for token, delivery in held:
            self._claims.pop(token)
            delivery.channel.basic_reject(delivery.fetched.tag, requeue=True)
        confirmed = bool(held) and self._session.confirmed(name)
        if visibly and confirmed:
            self._await_ready(name, before + len(held))
        return confirmed

    def _await_ready(self, name: str, ready: int) -> None:
        """Wait until the queue counts ``ready`` messages, or half a second has passed.

        Other claimers may keep the count lower; the wait ends then anyway.
        """
        deadline = time.monotonic() + 0.5
        while (self._session.ready_count(name) or 0) < ready and time.monotonic() < deadline:
            time.sleep(0.002)

    def _borrow(self, name: str, limit: int) -> list[StoredItem]:
        """Fetch up to ``limit`` ready messages for a look, then requeue them all.

        A quorum queue puts requeued messages behind those requeued before,
        so on one every earlier-requeued message is borrowed too (they come
        first, marked redelivered), and all go back in the order they came.
        It applies requeues a moment after confirming them, so the look ends
        once the queue's count shows them back (see :meth:`_await_ready`).
        """
        channel = self._channel(name)
        borrowed: list[tuple[str, Held]] = []
        ready: int | None = None
        while len(borrowed) < limit or (borrowed and _requeued_on_quorum(borrowed[-1][1].fetched)):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            if ready is None:
                ready = int(message.delivery_info.get("message_count") or 0) + 1
            fetched = Fetched.of(message)
            looked = self._ledger.look(fetched)
            borrowed.append(self._claims.receive(name, channel, fetched, 0.0, looked))
        self._requeue(name, borrowed)
        if ready is not None:
            self._await_ready(name, ready)
        return [held.stored("") for _, held in borrowed[:limit]]

    def _prune(self) -> None:
        self._claims.prune(self._session.channels)

    def _channel(self, name: str) -> Any:
        channel = self._session.queue_channel(name, self._claims.busy())
        self._known.add(name)
        return channel

    def _redeclarer(self, name: str) -> Callable[[], None]:
        """What brings back a queue another process deleted: a new channel declares it."""

        def redeclare() -> None:
            self._session.discard(name)
            self._channel(name)

        return redeclare

    # -- connection ----------------------------------------------------------------

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
                self._claims.clear()  # the broker requeued them: calls with them return False
                raise BackendUnavailableError(
                    f"{operation} on {self.url} failed: the broker connection is lost ({exc}); "
                    "the broker requeued this connection's claims; the next call reconnects"
                ) from exc
