"""Waiting for items on RabbitMQ (``bridge queue watch``): a consumer on each queue.

AMQP tells a connection nothing about a publish. A consumer is the broker's
only way to say a message is there, and it says so by handing the message
over. So ``wait_for_items(names, timeout)`` starts a consumer with a window
of one message on each named queue's channel (:meth:`Streams.start`, no
reply awaited) and waits on the connection, up to ``timeout``, for a push.

A pushed message is *parked*: received as a claim of this backend object
(the ledger counts the attempt once, as for any delivery) under a park
lease of :data:`PARK_LEASE`. The next ``claim_items`` (or the claim of
``settle_and_claim``) of its queue hands it out first, under the lease it
asks for, from then on: no fetch, and no second delivery. Its consumer,
window full, stays as a claim's consumer would, so the watcher's
``settle_and_claim`` after the item keeps it and has the next message
pushed in answer to the settlement (``amqp_stream.py``). Giving the
message back instead (``basic.reject`` with requeue) would count a
delivery on a quorum queue (one more attempt for whoever claims it,
towards ``max_attempts``) and mark it redelivered on a classic one.

The consumers that got nothing are cancelled and the broker's
``basic.cancel-ok`` awaited: it comes after every message pushed to them,
and those are parked too. So between calls the stream's rule holds: every
message pushed to this object is one of its claims, and nothing is hidden
from other connections that the next claim here does not hand out.

A delayed item comes back to its queue (dead-lettered from its holding
queue) as a push like any other: the wait ends when the delay does.

A parked claim that no claim takes becomes an expired lease when its park
lease ends: given back to the broker by this object's next claim of any
queue, its ``garbage_collection`` of that queue, ``release_all`` or
``close``; a wait that does not name its queue (a queue the watcher rests)
gives it back at once; a process that dies or loses its connection has it
requeued by the broker. On a quorum queue its next claimer sees one attempt
more, as after any claim that ended unsettled. A watcher of several queues
on one store that was pushed an item of queue B while an item arrived in A
passes A first: B's parked item waits for that pass's next claim (given
back then, if the park lease has ended) or its end.

The cost, on a quorum queue: a wait that ends without a push cancels its
consumers, and a quorum queue that has just given one a message when the
cancel comes takes it back itself, counting a delivery. An item created
within a millisecond or two of that cancel (once per ``timeout`` per idle
queue, and at each wake-up for the other queues) is seen with one attempt
more (``docs/rabbitmq.md``). Keeping the consumers between waits would avoid
the cancels but hide what they are pushed while the watcher works.

The first wait on a queue returns True at once (the contract: the caller
claims first), and so does a wait while a named queue has a parked claim.
An interrupt in the wait (the watcher's second signal), which may cut a
frame in half, drops the connection: the broker requeues what it held.

Cost: idle, a wait is one consume per queue (no reply awaited) and a
cancel (one round trip) per queue, once per ``timeout`` (1 s in the
watcher), where the watcher's sleep made four fetches a second. The wait
holds the backend's lock, as every call does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bridge.backends.amqp_deliveries import Deliveries
from bridge.backends.amqp_session import AmqpSession
from bridge.backends.amqp_stream import Consumer

PARK_LEASE = 1.0
"""Seconds a parked claim waits for a claim of its queue before it is an expired lease.

The watcher claims within milliseconds of its wait; a claim of its own queue
takes a parked claim at any age, so this bounds only how long another
queue's pass, or a caller that never claims, may keep it from others.
"""


class Waiter:
    """The waits of one backend object: its consumers come and go with each wait."""

    def __init__(self, session: AmqpSession, deliveries: Deliveries) -> None:
        self._session = session
        self._deliveries = deliveries
        self.forget()

    def forget(self) -> None:
        """No queue waited on yet: at start-up, and in a forked child."""
        self._waited: set[str] = set()

    def wait(self, names: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` s until a message of ``names`` is pushed (and parked)."""
        queues = list(dict.fromkeys(names))
        if not self._waited.issuperset(queues):
            self._waited.update(queues)
            return True
        if self._parked_kept(set(queues)):
            return True
        deliveries = self._deliveries
        consumers = [deliveries.streams.start(q, deliveries.channel(q), 1) for q in queues]
        try:
            self._block(consumers, timeout)
        except BaseException as exc:
            self._abandon(consumers, exc)
            raise
        return self._end(consumers)

    def _parked_kept(self, queues: set[str]) -> bool:
        """Give back parked claims of queues not waited on; whether any are left."""
        claims = self._deliveries.claims
        if not claims.any_parked():
            return False
        self._deliveries.prune()
        for queue in {held.queue for _, held in claims.parked()} - queues:
            self._deliveries.requeue(queue, claims.parked(queue))
        return claims.any_parked()

    def _block(self, consumers: list[Consumer], timeout: float) -> None:
        """Handle what the broker sends until a consumer got a message or was cancelled."""
        deadline = time.monotonic() + timeout
        next_method = self._session.next_method
        while not any(consumer.inbox or consumer.cancelled for consumer in consumers):
            left = deadline - time.monotonic()
            if left <= 0 or not next_method(left):
                return

    def _end(self, consumers: list[Consumer]) -> bool:
        """Park what was pushed, cancel the rest; whether the caller should claim.

        True also for a consumer the broker cancelled (its queue was deleted):
        the claim that follows declares the queue again.
        """
        deliveries = self._deliveries
        until = time.time() + PARK_LEASE
        woke = False
        for consumer in consumers:
            woke = woke or consumer.cancelled
            for message in deliveries.streams.end_wait(consumer):
                if consumer.channel.is_open:  # else the broker requeued it with the channel
                    deliveries.park(consumer.queue, consumer.channel, message, until)
                    woke = True
        return woke

    def _abandon(self, consumers: list[Consumer], exc: BaseException) -> None:
        """After a failed wait: end the consumers, or drop the connection if that cannot be."""
        if isinstance(exc, Exception) and not isinstance(exc, self._session.connection_errors):
            try:
                self._end(consumers)
                return
            except Exception:  # dropping the connection below settles it all
                pass
        # An interrupt may have cut a frame in half, and a consumer left with
        # room would hide what is pushed to it: the broker requeues it all.
        self._session.lost()
        self._deliveries.lost()
