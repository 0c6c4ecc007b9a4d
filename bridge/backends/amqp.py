"""RabbitMQ (AMQP 0-9-1) queues, through Kombu's py-amqp transport.

The queue semantics live here: claims, the emulated lease, delays, failures,
who may settle a claim. ``amqp_deliveries.py`` takes and settles the
messages this object holds, ``amqp_stream.py`` runs the consumers claims
stream through, ``amqp_wait.py`` the waits of ``bridge queue watch``,
``amqp_session.py`` talks to the broker (the connection and
its channels), ``amqp_layout.py`` decides queue types, arguments and the
names of holding and held queues, ``amqp_delays.py`` runs the holding
queues, ``amqp_held.py`` the held queues, ``amqp_claims.py`` and
``amqp_records.py`` keep what this object holds and has seen.
``docs/rabbitmq.md`` explains the choices and the measurements.

Features:
    Quorum queues where the server has them (RabbitMQ 3.10 and later): an
    acknowledged message stays acknowledged across a crash of the broker.
    Classic queues with ``max_priority``, with ``queue_type="classic"`` and
    on older servers. Messages are persistent (``application/octet-stream``,
    the codec's bytes as the body), published in an AMQP transaction, so
    ``create_items`` writes all or none.

    Claims stream. ``claim_items(n)`` fetches one message (``basic.get``:
    an empty queue answers at once) and has the rest pushed to a consumer
    whose prefetch is what is left of ``n``; ``settle_and_claim`` keeps the
    queue's consumer, and the broker pushes the next message in answer to
    the commit that settles the last: one round trip for both. A consumer's
    window is always the claim's count, so between calls every message
    pushed to this object is claimed by it: nothing is prefetched and left
    unclaimed, hidden from other connections (``amqp_stream.py``).
    ``settle_and_claim`` is not all or nothing: the settlement commits
    first (``capabilities.settle_and_claim`` is False).

    Waiting (``wait_for_items``, the :class:`~bridge.contract.Waiting`
    role of ``bridge queue watch``): a consumer with a window of one on
    each queue, until one is pushed a message; that message is parked, a
    claim of this object that the next claim of its queue hands out, so it
    is delivered once and counted once. The other consumers are cancelled,
    their reply awaited; a parked claim no claim takes is an expired lease
    after 1 s (``amqp_wait.py``). A delayed item ends the wait when it
    comes back to its queue.

    The lease is emulated: a claim is an unacknowledged delivery on this
    object's connection, which RabbitMQ gives to nobody else while the
    connection lives. An expired one is requeued when this object next
    claims from the queue, garbage-collects, releases all or closes; a
    claimer that dies or loses its connection has its claims requeued by the
    broker at once. RabbitMQ's ``consumer_timeout`` counts from the delivery,
    hence ``max_lease``.

    Moves are transactions. A message never changes, so an item that moves
    (delayed, held, kicked, given back after a failure) moves as a new copy:
    the copy is published and the original acknowledged in one AMQP
    transaction on the channel that holds the original. A process killed
    at any instant leaves the item where it was or where it went, once
    (``tests/test_amqp_holding.py`` kills holders, kickers and delayers).
    A broker that crashes during the commit is another matter: RabbitMQ
    makes a transaction atomic only within one queue, so the copy and the
    acknowledgement could part (``docs/rabbitmq.md``).

    Delays are real: a delayed item waits in a holding queue and is
    dead-lettered back when its delay ends, whatever the processes do;
    ``counts`` reports it ``delayed``, ``release_all`` hands it back early.

    Held items (``hold_item``) wait in the queue's held queue, in the order
    they were held, with why, when and the last error in their headers;
    ``counts`` reports them ``held``, ``kick`` moves them back with attempts
    from 0, ``held_items`` looks at them by fetching and requeueing them in
    one transaction (their order is kept; for that moment other processes do
    not see them). ``fail_item`` with a delay sends the error with the
    delayed copy; without one, the claim keeps it until the lease ends, and
    the item then goes back as a copy carrying it, at the back of the queue.
    A claimer that dies first loses that error: the broker requeues the
    message it had, as it was. ``oldest_ready_age`` is None: AMQP cannot see
    a message without fetching it, which counts as a delivery.

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
    epoch seconds, the creating process's clock) and, on a copy made when
    the item moved, ``bridge-attempts`` (claims before it; 0 once kicked),
    ``bridge-copy`` (the copy's id) and ``bridge-last-error``; on a held
    copy, ``bridge-held-at`` and ``bridge-hold-reason``. Holding queues
    ``bridge.delay.<2**k>ms.<name>`` and an index queue
    ``bridge.delay.index.<name>``, which delete themselves when unused; a
    held queue ``bridge.held.<name>``, declared at the first hold (the
    name's SHA-256 in place of the name when the whole would pass 255
    bytes). Messages from other producers are claimed too; without a
    message id, they get a new id at each claim.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, final

from bridge.backends import missing_driver
from bridge.backends.amqp_delays import Delays
from bridge.backends.amqp_deliveries import Deliveries
from bridge.backends.amqp_held import HeldQueues
from bridge.backends.amqp_layout import MAX_DELAY, Layout
from bridge.backends.amqp_records import (
    Held,
    Outgoing,
    check_max_lease,
    longest_lease,
)
from bridge.backends.amqp_session import AmqpSession
from bridge.backends.amqp_wait import Waiter
from bridge.backends.tokens import CREATED_HEADER
from bridge.contract import Backend, Capabilities, Waiting
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    InvalidArgumentError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, Settlement, StoredItem


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
        hold=True,
    )


@final
class AmqpBackend(Backend, Waiting):
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
        self._held = HeldQueues(self._session)
        self._max_lease = check_max_lease(max_lease)
        self.capabilities = amqp_capabilities(
            max_priority=max_priority,
            max_lease=self._max_lease,
            ordered=layout.queue_type == "classic" or max_priority is not None,
        )
        self._deliveries = Deliveries(self._session, self._delays, self._held, self.url)
        self._waiter = Waiter(self._session, self._deliveries)
        self.forget_connections()

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._deliveries.channel(name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue with its holding and held queues, unacknowledged messages included."""
        with self._calling("delete_queue"):
            self._deliveries.streams.forget(name)
            self._session.discard(name)
            self._delays.delete(name)  # first: their messages would dead-letter into it
            self._session.delete(name)
            self._held.drop(name)
            self._deliveries.known.discard(name)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        with self._calling("create_items"):
            self._deliveries.channel(name)  # delayed ones dead-letter into it: it must exist
            now = time.time()
            headers = {CREATED_HEADER: now}
            messages = [
                Outgoing(uuid.uuid4().hex, payload, priority, headers) for payload in payloads
            ]
            if delay > 0:
                self._delays.hold(name, messages, delay, int(now))
            else:
                self._session.publish(name, messages, int(now), self._deliveries.redeclarer(name))
            return [message.message_id for message in messages]

    def counts(self, name: str) -> ItemCounts:
        """Ready: the broker's count, expired and parked claims here; leased: this backend's."""
        with self._calling("counts"):
            ready = self._session.ready_count(name) or 0
            idle = len(self._deliveries.idle(name))
            leased = self._deliveries.claims.count(name) - idle
            delayed = self._delays.count(name)
            return ItemCounts(ready + idle, leased, delayed, self._held.count(name))

    def oldest_ready_age(self, name: str) -> float | None:
        """None: RabbitMQ cannot tell without fetching, and a fetch is not harmless.

        AMQP shows a queue's messages only by fetching them. A fetch for a
        look counts as a delivery on a quorum queue (``attempts`` of the item
        at the head would grow with every metrics scrape, in every other
        process, towards ``max_attempts``), marks the message redelivered on
        a classic one, and hides it from claimers meanwhile.
        """
        return None

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """The first item by ``basic.get``, the rest pushed to a consumer (``amqp_stream.py``).

        The fetch says at once whether the queue is empty, and how many
        messages are ready behind the first, which is how many pushes to wait for.
        """
        with self._calling("claim_items"):
            return self._deliveries.claim(name, count, lease_time)

    def settle_and_claim(
        self, name: str, settlement: Settlement, count: int, lease_time: float
    ) -> tuple[bool, list[StoredItem]]:
        """Settle, and claim what the broker pushes into the room the settlement makes.

        The queue's consumer, its window ``count``, holds the item; its
        acknowledgement (or the commit that moves it) makes room, and the
        broker pushes the next message in answer: one round trip for both.
        Not all or nothing (``capabilities.settle_and_claim`` is False): the
        settlement commits first, and a call that fails after that leaves it
        done, as the two calls would.
        """
        with self._calling("settle_and_claim"):
            deliveries, item = self._deliveries, settlement.item
            held = deliveries.find(name, item)
            parked = deliveries.claims.any_parked() and deliveries.claims.parked(name)
            if held is not None and count > 0 and not parked:
                return deliveries.settle_and_claim(
                    name, item.token, held, settlement, count, lease_time
                )
            settled = held is not None and deliveries.settle(
                name, item.token, held, settlement, visibly=True
            )
            return settled, deliveries.claim(name, count, lease_time) if count else []

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            self._deliveries.prune()  # once, not once per item: a batch of 100 would scan 100 x 100
            taken: dict[str, Held] = {}  # by token: an item listed twice counts once
            for item in items:
                held = self._deliveries.find(name, item, prune=False)
                if held is not None:
                    taken[item.token] = held
            return self._deliveries.delete(name, taken)

    def release_item(self, name: str, item: QueueItem) -> bool:
        with self._calling("release_item"):
            held = self._deliveries.find(name, item)
            return held is not None and self._deliveries.requeue(
                name, [(item.token, held)], visibly=True
            )

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        """Move the item to its holding queue: a copy published, the original acknowledged."""
        with self._calling("delay_item"):
            held = self._deliveries.find(name, item)
            if held is None:
                return None
            return self._deliveries.delay(name, item.token, held, delay, held.error)

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        """Keep ``error`` for the next claimer: on the delayed copy, or with the claim.

        Without a delay the claim keeps the error (one round trip confirms the
        claim is still this backend's); when the lease ends, the item goes
        back as a copy carrying it. A process that dies first loses the
        error: the broker requeues the message it had, without it.
        """
        with self._calling("fail_item"):
            held = self._deliveries.find(name, item)
            if held is None:
                return None
            if delay is not None:
                return self._deliveries.delay(name, item.token, held, delay, error)
            if not self._session.confirmed(name):
                return None
            held.error = error
            return held.expire

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        """Move the local deadline, once the broker confirms the delivery is still held."""
        with self._calling("extend_lease"):
            held = self._deliveries.find(name, item)
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
            self._deliveries.requeue(name, self._deliveries.expired(name))

    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """A consumer on each queue until one is pushed a message, parked for the next
        claim of its queue (``amqp_wait.py``)."""
        with self._calling("wait_for_items"):
            return self._waiter.wait(names, timeout)

    # -- inspection and administration -----------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Queues this backend has used that hold items: AMQP cannot list a broker's queues."""
        totals = {name: self.counts(name).total for name in sorted(self._deliveries.known)}
        return {name: total for name, total in totals.items() if total}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Expired leases and parked claims held here, ready messages, then live leases.

        AMQP cannot look without fetching: ready messages are fetched and
        requeued at once, at their place. That marks them redelivered, and for
        that moment other claimers do not see them. Delayed items are left
        out: fetching from a holding queue would reorder its expiries.
        """
        with self._calling("peek"):
            idle = self._deliveries.idle(name)
            ready = self._deliveries.borrow(name, limit - len(idle)) if limit > len(idle) else []
            shown = [held.stored("") for held in idle] + ready
            shown += [held.stored("") for held in self._deliveries.claims.live(name)]
            return shown[:limit]

    def release_all(self, name: str) -> int:
        """Requeue this backend's claims and every delayed item; others' claims are out of reach."""
        with self._calling("release_all"):
            self._deliveries.prune()
            held = self._deliveries.claims.of(name)
            self._deliveries.requeue(name, held, visibly=True)
            cancelled = self._delays.cancel(name, self._deliveries.redeclarer(name))
            return len(held) + cancelled

    # -- held items ------------------------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        """Move the item to the held queue: a copy published, the original acknowledged."""
        with self._calling("hold_item"):
            held = self._deliveries.find(name, item)
            return held is not None and self._deliveries.hold(name, item.token, held, reason, error)

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        with self._calling("held_items"):
            return self._held.look(name, limit)

    def kick(self, name: str, limit: int | None) -> int:
        with self._calling("kick"):
            self._deliveries.channel(name)  # the copies go there: it must exist
            return self._held.kick(name, limit, self._deliveries.redeclarer(name))

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        with self._calling("kick_item"):
            self._deliveries.channel(name)
            return self._held.kick_item(name, item_id, self._deliveries.redeclarer(name))

    def delete_held(self, name: str, limit: int | None) -> int:
        with self._calling("delete_held"):
            return self._held.delete(name, limit)

    def close(self) -> None:
        """Requeue every claim still held, then close the connection.

        As ``release_all`` does, and waiting as it waits for the queue's
        count to show them (up to half a second), so that when ``close``
        returns other connections can claim them and a count sees them:
        the broker's own requeue at the connection's close comes a moment
        after the close, and a count right after it missed them. Claims that
        failed (``fail_item`` without a delay) go back as copies carrying
        their error. Where the connection no longer allows it, the broker
        requeues them as they were when it sees the connection go.
        """
        with self._lock:
            session = self._session
            try:
                self._deliveries.prune()
                for name in list(self._deliveries.claims.busy()):
                    held = self._deliveries.claims.of(name)
                    self._deliveries.requeue(name, held, visibly=True)
            except (*session.channel_errors, *session.connection_errors, *session.other_errors):
                pass  # the broker requeues them as they were
            self._deliveries.lost()
            session.close()

    def forget_connections(self) -> None:
        """Start afresh without a word to the broker: at start-up and in a forked child.

        A child gets a new lock (its parent's may have been held by another
        thread at the fork) and a new owner id, so its parent's claims are
        foreign to it.
        """
        self._lock = threading.RLock()
        self._waiter.forget()
        self._deliveries.forget()
        self._session.forget()

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
                self._deliveries.lost()  # the broker requeued them: calls with them return False
                raise BackendUnavailableError(
                    f"{operation} on {self.url} failed: the broker connection is lost ({exc}); "
                    "the broker requeued this connection's claims; the next call reconnects"
                ) from exc
            except session.other_errors as exc:
                session.bury_dead()
                raise BackendError(f"{operation} on {self.url} failed: {exc!r}") from exc
