"""The deliveries one RabbitMQ backend object takes and settles.

``amqp.py`` holds the queue semantics callers see; this module does the
work under them: claims (a ``basic.get``, then pushes to a consumer,
``amqp_stream.py``), and every way a claim ends: acknowledged (delete),
requeued (release, an expired lease, ``release_all``), moved as a new copy
in one transaction (delay, hold, a failed item going back), and the looks
of ``peek``, which fetch and requeue at once.

Each claim is a :class:`~bridge.backends.amqp_records.Held` delivery under
a token (``amqp_claims.py``). Before anything settles a message a consumer
pushed, :meth:`Streams.settling` decides whether that consumer goes (a
settlement outside a claim) or takes the room made (inside one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bridge.backends.amqp_claims import Claims
from bridge.backends.amqp_delays import Delays
from bridge.backends.amqp_held import HeldQueues
from bridge.backends.amqp_records import Fetched, Held, Ledger, Outgoing, held_copy
from bridge.backends.amqp_session import AmqpSession
from bridge.backends.amqp_stream import MAX_WINDOW, Streams
from bridge.errors import UnsupportedOperationError
from bridge.items import QueueItem, Settlement, StoredItem


class Deliveries:
    """What one backend object holds on its connection, and the calls that settle it."""

    def __init__(self, session: AmqpSession, delays: Delays, held: HeldQueues, url: str) -> None:
        self._session = session
        self._delays = delays
        self._held = held
        self._url = url
        self.ledger = Ledger()
        self.known: set[str] = set()
        """Queues this object has used (AMQP cannot list a broker's queues)."""
        self.forget()

    def forget(self) -> None:
        """No claims, no consumers: at start-up, and in a forked child (a new owner id)."""
        self.claims = Claims()
        self.streams = Streams(self._session)

    def lost(self) -> None:
        """The connection is gone: the broker requeued every claim and ended every consumer."""
        self.claims.clear()
        self.streams.clear()

    # -- claims ------------------------------------------------------------------------

    def claim(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """Parked claims first (``amqp_wait.py``), expired leases back, then fetches."""
        taken = self.unpark(name, count, lease_time) if self.claims.any_parked() else []
        count -= len(taken)
        if not count:
            return taken
        self.requeue(name, self.expired(name)[:count])
        return taken + self._retrying(lambda: self._fetch(name, count, lease_time))

    def unpark(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """Hand out the queue's parked claims under ``lease_time``; give back stale ones.

        A parked claim of another queue whose park lease has ended is given
        back to the broker here, so that a watcher busy on one queue does not
        keep what its wait was pushed for another from other processes.
        """
        self.prune()
        now = time.time()
        for queue in {held.queue for _, held in self.claims.parked()} - {name}:
            stale = [pair for pair in self.claims.parked(queue) if pair[1].expire <= now]
            self.requeue(queue, stale)
        expire = now + lease_time
        taken = self.claims.unpark(name, count)
        for _, held in taken:
            held.expire = expire
        return [held.stored(token) for token, held in taken]

    def park(self, name: str, channel: Any, message: Any, until: float) -> None:
        """Hold a message pushed to a wait's consumer, for the next claim of ``name``.

        Received as any claim is (the ledger counts the attempt once), under
        a park lease ending at ``until``: an expired lease, should no claim
        of the queue take it by then.
        """
        fetched = Fetched.of(message)
        attempts = self.ledger.claim(fetched)
        token, _ = self.claims.receive(name, channel, fetched, until, attempts)
        self.claims.park(token)

    def _fetch(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        """One ``basic.get``; the rest of ``count`` pushed to a consumer of that many less one.

        The fetch says at once whether the queue is empty, and how many
        messages are ready behind the first: how many pushes to wait for.
        """
        channel = self.channel(name)
        message = channel.basic_get(queue=name, no_ack=False)
        if message is None:
            return []
        ready = int(message.delivery_info.get("message_count") or 0)
        first = self._receive(name, channel, message, time.time() + lease_time)
        window = min(count - 1, MAX_WINDOW)
        if window <= 0 or ready <= 0:
            return [first]
        consumer = self.streams.start(name, channel, window)
        pushed = self.streams.collect(consumer, window, expect=ready, sure=min(ready, window))
        expire = time.time() + lease_time
        claimed = [first] + [self._receive(name, channel, m, expire) for m in pushed]
        # A quorum queue whose pushes come later than the wait for them never
        # sends them: the cancel that ended the wait got there first. What the
        # fetch counted ready is then fetched, not left for the next claim.
        late = 0
        for _ in range(min(ready, window) - len(pushed)):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break  # other claimers took them
            claimed.append(self._receive(name, channel, message, expire))
            late += 1
        if late:
            self.streams.missed()
        return claimed

    def settle_and_claim(
        self, name: str, token: str, held: Held, settlement: Settlement, count: int, lease: float
    ) -> tuple[bool, list[StoredItem]]:
        """Settle inside a claim: the queue's consumer takes the room the settlement makes.

        The consumer is kept when its window is ``count``, full, and the
        settlement frees one of its places; otherwise a new one starts:
        before the settlement's commit when the item leaves the queue, after
        it when the item (or an expired lease) goes back, so that it comes first.
        """
        channel = self.channel(name)
        window = min(count, MAX_WINDOW)
        # Pruned by the find of ``held``; the item settled here is settled, not handed back.
        expired = [pair for pair in self.claims.expired(name) if pair[0] != token][:count]
        action, delay = settlement.action, settlement.delay
        leaves = action != "fail" or delay is not None
        freed = [h for _, h in expired] + ([held] if leaves else [])
        consumer = self.streams.current(name, channel)
        used = mine = 0
        if consumer is not None:
            used = self.claims.pushed(consumer.tag)
            mine = sum(1 for h in freed if h.fetched.consumer == consumer.tag)
            if consumer.window != window or used != window or not mine:
                self.streams.stop(name)
                consumer = None
        item_back = action == "release" or (action == "delay" and (delay or 0.0) <= 0)
        item_back = item_back or (action == "fail" and delay is not None and delay <= 0)
        back = bool(expired) or item_back
        if consumer is None and not back:
            consumer = self.streams.start(name, channel, window)
            used = mine = 0
        with self.streams.keeping(name):
            self.requeue(name, expired)
            settled = self.settle(name, token, held, settlement, visibly=False)
        if not settled:
            mine = 0  # nothing of the window was settled after all
        room = window - used + mine if consumer is not None else window
        # What went back is ready: its pushes are slow, not missing (``Streams.collect``).
        coming = len(expired) + int(settled and item_back)
        return settled, self._retrying(
            lambda: self._take(name, channel, count, lease, room, coming)
        )

    def _take(
        self, name: str, channel: Any, count: int, lease: float, room: int, coming: int
    ) -> list[StoredItem]:
        """What the broker pushes into the ``room`` made (``coming`` of them surely);
        a fetch when nothing came."""
        live = self.channel(name)
        consumer = self.streams.current(name, live)
        if consumer is None and live is not channel:
            return self._fetch(name, count, lease)  # the channel was lost meanwhile
        if consumer is None:
            consumer = self.streams.start(name, live, min(count, MAX_WINDOW))
            room = consumer.window
        pushed = self.streams.collect(consumer, room, sure=coming)
        if not pushed:
            # A quorum queue may apply the acknowledgement after the cancel
            # that ended the wait, so no push says nothing: ask the queue.
            return self._fetch(name, count, lease)
        expire = time.time() + lease
        return [self._receive(name, live, message, expire) for message in pushed]

    def _receive(self, name: str, channel: Any, message: Any, expire: float) -> StoredItem:
        """Hold a message received on the queue's channel under a new claim token."""
        fetched = Fetched.of(message)
        attempts = self.ledger.claim(fetched)
        token, held = self.claims.receive(name, channel, fetched, expire, attempts)
        return held.stored(token)

    def _retrying(self, claim: Callable[[], list[StoredItem]]) -> list[StoredItem]:
        """``claim()``, once more if the queue was deleted by another process meanwhile."""
        try:
            return claim()
        except self._session.channel_errors as exc:
            if getattr(exc, "code", None) != 404:
                raise
            self._session.bury_dead()  # the next claim declares it again on a new channel
            return claim()

    def find(self, name: str, item: QueueItem, *, prune: bool = True) -> Held | None:
        """The live delivery ``item`` holds; None if its claim is gone; foreign items raise."""
        if self.claims.foreign(item.token):
            raise UnsupportedOperationError(
                f"item {item.item_id!r} of queue {name!r} was claimed through another "
                f"connection or process; on {self._url} only the connection that received a "
                "message can acknowledge or requeue it (AMQP delivery tags are per channel)"
            )
        if prune:
            self.prune()
        return self.claims.get(name, item.token)

    def expired(self, name: str) -> list[tuple[str, Held]]:
        self.prune()
        return self.claims.expired(name)

    def idle(self, name: str) -> list[Held]:
        """The queue's claims nobody works on: expired leases, then parked claims.

        ``counts`` and ``peek`` show them as ready, not leased: no worker has them.
        """
        expired = self.expired(name)
        now = time.time()
        parked = [held for _, held in self.claims.parked(name) if held.expire > now]
        return [held for _, held in expired] + parked

    def prune(self) -> None:
        self.claims.prune(self._session.channels)

    # -- settlements -------------------------------------------------------------------

    def settle(
        self, name: str, token: str, held: Held, settlement: Settlement, *, visibly: bool
    ) -> bool:
        """What the single-purpose call of ``settlement.action`` does to a claim held here."""
        action, delay, error = settlement.action, settlement.delay, settlement.error
        if action == "delete":
            return self.delete(name, {token: held}) == 1
        if action == "release":
            return self.requeue(name, [(token, held)], visibly=visibly)
        if action == "hold":
            return self.hold(name, token, held, settlement.reason, error)
        if action == "delay" or (action == "fail" and delay is not None):
            error = held.error if action == "delay" else error
            return self.delay(name, token, held, delay or 0.0, error, visibly=visibly) is not None
        if action == "fail":
            if not self._session.confirmed(name):
                return False
            held.error = error
            return True
        raise ValueError(f"unknown settlement action {action!r}")

    def delete(self, name: str, taken: dict[str, Held]) -> int:
        """Acknowledge these claims, and commit: how many, once the broker confirmed."""
        if not taken:
            return 0
        with self._session.corked():  # the acknowledgements and the commit in one write
            self.streams.settling(name, taken.values())
            for token, held in taken.items():
                self.claims.pop(token)
                held.channel.basic_ack(held.fetched.tag)
                self.ledger.forget(held.fetched.key)
            return len(taken) if self._session.confirmed(name) else 0

    def delay(
        self,
        name: str,
        token: str,
        held: Held,
        delay: float,
        error: str | None,
        *,
        visibly: bool = True,
    ) -> float | None:
        """Move a claim to its holding queue: a copy published, the original acknowledged."""
        now = time.time()
        held.error = error
        if delay <= 0:
            return now if self.requeue(name, [(token, held)], visibly=visibly) else None
        holding, expiration, redeclare = self._delays.prepare(name, delay)
        copy = held.fetched.again(held.item_id, held.attempts, error)
        self.claims.pop(token)
        with self._session.corked():
            self.streams.settling(name, [held])
            moved = self._session.move(
                name,
                holding,
                [copy],
                int(now),
                redeclare,
                ack=[held.fetched.tag],
                expiration_ms=expiration,
            )
        if not moved:
            return None
        self.ledger.forget(held.fetched.key)
        return now + delay

    def hold(self, name: str, token: str, held: Held, reason: str, error: str | None) -> bool:
        """Move a claim to the held queue: a copy published, the original acknowledged."""
        now = time.time()
        last_error = held.error if error is None else error
        copy = held.fetched.again(held.item_id, held.attempts, last_error)
        target, redeclare = self._held.target(name)
        self.claims.pop(token)
        with self._session.corked():
            self.streams.settling(name, [held])
            moved = self._session.move(
                name,
                target,
                [held_copy(copy, now, reason)],
                int(now),
                redeclare,
                ack=[held.fetched.tag],
            )
        if moved:
            self.ledger.forget(held.fetched.key)
        return moved

    def requeue(self, name: str, held: list[tuple[str, Held]], *, visibly: bool = False) -> bool:
        """Requeue these deliveries: back at their place (classic) or ahead of the ready ones.

        A delivery whose item failed under this claim goes back as a copy
        carrying the error instead, at the back of the queue, in the same
        transaction. True once the broker committed it. ``visibly`` waits
        for the queue's count to show the items back
        (:meth:`AmqpSession.await_ready`), so that the caller's next count,
        and other connections' claims, see them.
        """
        if not held:
            return False
        before = (self._session.ready_count(name) or 0) if visibly else 0
        copies: list[Outgoing] = []
        acks: list[int] = []
        requeues: list[int] = []
        for token, delivery in held:
            self.claims.pop(token)
            if delivery.changed:
                fetched = delivery.fetched
                copies.append(fetched.again(delivery.item_id, delivery.attempts, delivery.error))
                acks.append(fetched.tag)
                self.ledger.forget(fetched.key)
            else:
                requeues.append(delivery.fetched.tag)
        redeclare = self.redeclarer(name)
        with self._session.corked():
            self.streams.settling(name, [delivery for _, delivery in held])
            confirmed = self._session.move(
                name, name, copies, int(time.time()), redeclare, ack=acks, requeue=requeues
            )
        if visibly and confirmed:
            self._session.await_ready(name, before + len(held))
        return confirmed

    def borrow(self, name: str, limit: int) -> list[StoredItem]:
        """Fetch up to ``limit`` ready messages for a look, then requeue them all.

        A quorum queue puts requeued messages behind those requeued before,
        so on one every earlier-requeued message is borrowed too (they come
        first, marked redelivered), and all go back in the order they came.
        It applies requeues a moment after confirming them, so the look ends
        once the queue's count shows them back (see :meth:`AmqpSession.await_ready`).
        """
        channel = self.channel(name)
        borrowed: list[tuple[str, Held]] = []
        ready: int | None = None
        while len(borrowed) < limit or (borrowed and borrowed[-1][1].fetched.returned):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            if ready is None:
                ready = int(message.delivery_info.get("message_count") or 0) + 1
            fetched = Fetched.of(message)
            looked = self.ledger.look(fetched)
            borrowed.append(self.claims.receive(name, channel, fetched, 0.0, looked))
        self.requeue(name, borrowed)
        if ready is not None:
            self._session.await_ready(name, ready)
        return [held.stored("") for _, held in borrowed[:limit]]

    # -- channels ----------------------------------------------------------------------

    def channel(self, name: str) -> Any:
        """The queue's channel, the queue declared when the channel is new."""
        channel = self._session.channels.get(name)
        if channel is not None and channel.is_open:
            return channel
        channel = self._session.queue_channel(name, self.claims.busy())
        self.known.add(name)
        return channel

    def redeclarer(self, name: str) -> Callable[[], None]:
        """What brings back a queue another process deleted: a new channel declares it."""

        def redeclare() -> None:
            self.streams.forget(name)
            self._session.discard(name)
            self.channel(name)

        return redeclare
