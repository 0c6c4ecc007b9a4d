"""Streaming claims on RabbitMQ: one consumer per queue, its window the claim's count.

``basic.get`` costs a round trip per message. A consumer (``basic.consume``
after ``basic.qos(prefetch_count=n)``) has the broker push up to ``n``
unacknowledged messages, and one more whenever one of them is settled. So
when a finished item is acknowledged and the next one claimed in one call
(``settle_and_claim``), the broker pushes the next message in answer to the
commit that acknowledges the last: one round trip serves both, and a batch
(``claim_items(n)``) arrives in one burst instead of ``n`` round trips.

A consumer must never hide messages: a message pushed to it is
unacknowledged, so no other connection can claim it, and nobody here has
asked for it yet. So the window is the claim:

* The prefetch count is the number of items the claim asked for, and the
  claim takes every message it made room for. Once they are all claimed the
  window is full, and the broker pushes nothing more until one is settled.
* A settlement made inside a claim (``settle_and_claim``) keeps the
  consumer: the claim takes the room it makes, in the same call.
* Any other settlement of a pushed message (``delete_items``, a release, a
  delay, a hold, an expired lease handed back) first cancels the consumer,
  in the same transaction (``basic.cancel`` without waiting for the reply:
  the window is full, so nothing is on its way), so it makes no room.
* A claim that receives fewer messages than it made room for within a
  short wait cancels the consumer and waits for ``basic.cancel-ok``, which
  the broker sends after every message it pushed to that consumer: the
  claim hands all of them out (never more than it asked for, the window
  being its count). A quorum queue may not have pushed yet when the cancel
  comes, and then pushes nothing (it takes back what it had given the
  consumer, counting a delivery): so a claim that got fewer than its first
  fetch counted ready fetches the rest (``amqp_deliveries.py``).

Between calls a queue has either no consumer, or one whose every pushed
message is claimed. Nothing is prefetched and left unclaimed, so nothing is
hidden past the call that asked for it, ``counts`` never sees a prefetched
message (``leased`` is this backend's claims, as with ``basic.get``), and no
message goes back unclaimed (a quorum queue would count that as a delivery:
one more ``attempts`` in every process).

How long a claim waits for pushes before it concludes they are all in is
learnt from the pushes seen, as TCP learns its retransmission timeout: their
smoothed latency plus four times its spread, plus 2 ms, at most 250 ms (a
classic queue pushes within tens of microseconds of the commit; a quorum
queue once its log has the acknowledgement, milliseconds).
Pushes the claim's first fetch counted ready (``claim_items(n)``) are
waited for up to the ceiling once the learnt wait is out: they are coming,
unless other claimers took them. Waiting too little costs one more round
trip (the cancel) and, on a quorum queue, a delivery counted for each
message it was about to push and a fetch for it, never a lost item; waiting
too long costs that time once per claim that finds the queue empty.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bridge.backends.amqp_records import Held
from bridge.backends.amqp_session import AmqpSession

MAX_WINDOW = 65_535
"""AMQP's prefetch count is 16 bits: a claim of more is served this many at most."""
_WAIT_FLOOR = 0.002
_WAIT_CEILING = 0.25
_FIRST_LATENCY = 0.005
"""The push latency assumed before any was seen (a first wait of 17 ms)."""


@dataclass(eq=False)
class Consumer:
    """One ``basic.consume`` of a queue, on that queue's channel."""

    tag: str
    queue: str
    channel: Any
    window: int
    """Its prefetch count: how many unsettled messages the broker may push to it."""
    inbox: list[Any] = field(default_factory=list)
    """Messages pushed to it during the call now running, in the order they came."""
    cancelled: bool = False
    """Cancelled by the broker (its queue was deleted)."""

    def on_cancel(self, tag: str) -> None:
        self.cancelled = True


class Streams:
    """The consumers of one backend object: at most one per queue."""

    def __init__(self, session: AmqpSession) -> None:
        self._session = session
        self._consumers: dict[str, Consumer] = {}
        self._prefetch: dict[str, tuple[Any, int]] = {}
        """Queue -> (its channel, the prefetch count last set on it)."""
        self._keep: str | None = None
        self._owner = uuid.uuid4().hex[:8]
        self._seq = itertools.count()
        self._latency = _FIRST_LATENCY
        self._spread = _FIRST_LATENCY / 2

    def current(self, queue: str, channel: Any) -> Consumer | None:
        """The queue's consumer, if it is still consuming on ``channel``."""
        consumer = self._consumers.get(queue)
        if consumer is None:
            return None
        if consumer.cancelled or consumer.channel is not channel or not channel.is_open:
            del self._consumers[queue]
            return None
        return consumer

    def start(self, queue: str, channel: Any, window: int) -> Consumer:
        """Consume ``queue`` with room for ``window`` messages (no reply awaited).

        ``basic.qos`` is a round trip, sent only when the channel's prefetch
        count changes; per-consumer, it applies to consumers started after it.
        """
        self.stop(queue)
        known = self._prefetch.get(queue)
        if known is None or known[0] is not channel or known[1] != window:
            channel.basic_qos(0, window, False)
            self._prefetch[queue] = (channel, window)
        consumer = Consumer(f"bridge.{self._owner}.{next(self._seq)}", queue, channel, window)
        channel.basic_consume(
            queue=queue,
            consumer_tag=consumer.tag,
            nowait=True,
            callback=consumer.inbox.append,
            on_cancel=consumer.on_cancel,
        )
        self._consumers[queue] = consumer
        return consumer

    def stop(self, queue: str) -> None:
        """Cancel the queue's consumer without waiting: only while its window is full.

        The broker handles the cancel before anything sent after it on the
        channel, so a settlement that follows makes no room for a push.
        """
        consumer = self._consumers.pop(queue, None)
        if consumer is None or consumer.cancelled or not consumer.channel.is_open:
            return
        consumer.channel.basic_cancel(consumer.tag, nowait=True)
        # Nothing more comes for it (py-amqp requeues a stray of an unknown tag).
        consumer.channel.callbacks.pop(consumer.tag, None)
        consumer.channel.cancel_callbacks.pop(consumer.tag, None)

    def settling(self, queue: str, delivered: Iterable[Held]) -> None:
        """Before settling ``delivered`` outside a claim: stop the consumer they came from.

        Settling a pushed message makes room in its consumer's window; with
        nobody claiming, what the broker pushed into it would be hidden.
        """
        consumer = self._consumers.get(queue)
        if consumer is None or self._keep == queue:
            return
        if any(held.fetched.consumer == consumer.tag for held in delivered):
            self.stop(queue)

    @contextmanager
    def keeping(self, queue: str) -> Iterator[None]:
        """Settlements inside a claim of ``queue``: the claim takes the room they make."""
        self._keep = queue
        try:
            yield
        finally:
            self._keep = None

    def collect(
        self, consumer: Consumer, room: int, expect: int | None = None, sure: int = 0
    ) -> list[Any]:
        """The messages the broker pushes into ``room`` free places of the window.

        Waits for ``expect`` of them (all ``room`` when None), as long as
        pushes keep coming within the learnt wait; for the first ``sure``
        ones, which are ready in the queue, up to the ceiling once the learnt
        wait is out (a slow push, not a missing one: a quorum queue whose
        pushes the cancel overtakes takes them back, counting a delivery
        each). When fewer than ``room`` came, the consumer is cancelled and
        the broker's reply awaited: every message it pushed arrives before
        that reply.
        """
        inbox = consumer.inbox
        wanted = room if expect is None else min(expect, room)
        learnt_wait = wait = self._wait()
        started = time.monotonic()
        learnt = bool(inbox)
        if learnt:
            self._learn(0.0)
        next_method = self._session.next_method
        while len(inbox) < wanted and not consumer.cancelled:
            if next_method(wait):
                if inbox and not learnt:
                    learnt = True
                    self._learn(time.monotonic() - started)
                if len(inbox) >= sure:
                    wait = learnt_wait
            elif len(inbox) < sure and wait < _WAIT_CEILING:
                wait = _WAIT_CEILING
            else:
                break
        if len(inbox) < room:
            self._flush(consumer, started, learnt)
        messages = list(inbox)
        inbox.clear()
        return messages

    def end_wait(self, consumer: Consumer) -> list[Any]:
        """The messages pushed to a consumer that waited for one (``amqp_wait.py``).

        A consumer whose window is full stays, as after a claim: what it got
        is about to be claimed. One with room is cancelled and the reply
        awaited, so that everything pushed to it is in hand.
        """
        if len(consumer.inbox) < consumer.window:
            self._flush(consumer, 0.0, learnt=True)
        messages = list(consumer.inbox)
        consumer.inbox.clear()
        return messages

    def _flush(self, consumer: Consumer, started: float, learnt: bool) -> None:
        """Cancel and wait for the reply, which comes after every message pushed to it."""
        self._consumers.pop(consumer.queue, None)
        if consumer.cancelled or not consumer.channel.is_open:
            return
        before = len(consumer.inbox)
        consumer.channel.basic_cancel(consumer.tag)
        if len(consumer.inbox) > before and not learnt:
            self._learn(time.monotonic() - started)  # the wait was too short

    def missed(self) -> None:
        """A claim's wait ended before pushes that then never came (a quorum queue
        cancelled first): learn a push as late as twice that wait, so the wait grows."""
        self._learn(2 * self._wait())

    def _wait(self) -> float:
        return min(_WAIT_CEILING, _WAIT_FLOOR + self._latency + 4 * self._spread)

    def _learn(self, seconds: float) -> None:
        """A push latency seen: its smoothed mean and spread, as TCP learns a round trip."""
        error = seconds - self._latency
        self._latency += error / 8
        self._spread += (abs(error) - self._spread) / 4

    def forget(self, queue: str) -> None:
        """The queue's channel is going away, and its consumer with it."""
        self._consumers.pop(queue, None)
        self._prefetch.pop(queue, None)

    def clear(self) -> None:
        """The connection is gone, and every consumer with it."""
        self._consumers.clear()
        self._prefetch.clear()
