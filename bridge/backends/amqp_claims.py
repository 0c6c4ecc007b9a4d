"""The claims one RabbitMQ backend object holds: unacknowledged deliveries under tokens.

A token names the backend object that issued it (``tokens.py``), so a
claim this object has since lost (the call returns False) is told apart
from one made through another connection or process (which no broker lets
it settle). A forked child starts a new :class:`Claims` with a new owner,
so its parent's claims are foreign to it.

A claim may be *parked*: a message a watcher's wait was pushed
(``amqp_wait.py``), held here until the next claim of its queue hands it
out under a lease of that claim's length.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from typing import Any

from bridge.backends.amqp_records import Fetched, Held
from bridge.backends.tokens import new_token, token_owner


class Claims:
    """Deliveries held by one backend object, by token, in the order they were claimed."""

    def __init__(self) -> None:
        self.owner = uuid.uuid4().hex[:12]
        self._held: dict[str, Held] = {}
        self._seq = itertools.count()
        self._pushed: Counter[str] = Counter()
        """Claims on the messages each consumer pushed, by consumer tag."""
        self._parked: dict[str, str] = {}
        """Parked claims: token -> queue, in the order they were parked."""

    def receive(
        self, queue: str, channel: Any, fetched: Fetched, expire: float, attempts: int
    ) -> tuple[str, Held]:
        """Hold a fetched message under a new token."""
        held = Held(
            queue=queue,
            channel=channel,
            fetched=fetched,
            item_id=fetched.message_id or uuid.uuid4().hex,
            attempts=attempts,
            expire=expire,
            delivered=time.time(),
            seq=next(self._seq),
            error=fetched.error,
        )
        token = new_token(self.owner)
        self._held[token] = held
        if fetched.consumer:
            self._pushed[fetched.consumer] += 1
        return token, held

    def foreign(self, token: str) -> bool:
        """Whether a (non-empty) token was issued by another backend object."""
        return bool(token) and token_owner(token) != self.owner

    def get(self, queue: str, token: str) -> Held | None:
        held = self._held.get(token)
        return held if held is not None and held.queue == queue else None

    def pop(self, token: str) -> None:
        consumer = self._held.pop(token).fetched.consumer
        if consumer:
            self._pushed[consumer] -= 1
        if self._parked:
            self._parked.pop(token, None)

    def park(self, token: str) -> None:
        """Mark a claim parked: held for the next claim of its queue, not leased yet."""
        self._parked[token] = self._held[token].queue

    def any_parked(self) -> bool:
        return bool(self._parked)

    def parked(self, queue: str | None = None) -> list[tuple[str, Held]]:
        """Parked claims (of ``queue``, or of every queue), oldest first."""
        return [
            (token, self._held[token])
            for token, parked_in in self._parked.items()
            if queue is None or parked_in == queue
        ]

    def unpark(self, queue: str, count: int) -> list[tuple[str, Held]]:
        """Up to ``count`` of the queue's parked claims, oldest first, no longer parked."""
        taken = self.parked(queue)[:count]
        for token, _ in taken:
            del self._parked[token]
        return taken

    def of(self, queue: str) -> list[tuple[str, Held]]:
        """The queue's claims, oldest first."""
        held = [(token, h) for token, h in self._held.items() if h.queue == queue]
        return sorted(held, key=lambda pair: pair[1].seq)

    def expired(self, queue: str) -> list[tuple[str, Held]]:
        """The queue's claims whose lease has ended, oldest first."""
        now = time.time()
        ended = [(t, h) for t, h in self._held.items() if h.queue == queue and h.expire <= now]
        return sorted(ended, key=lambda pair: pair[1].seq) if len(ended) > 1 else ended

    def live(self, queue: str) -> list[Held]:
        """The queue's leases still running, parked claims left out."""
        now = time.time()
        return [
            held
            for token, held in self.of(queue)
            if held.expire > now and token not in self._parked
        ]

    def pushed(self, consumer: str) -> int:
        """Claims on messages pushed to ``consumer``: the used places of its window."""
        return self._pushed[consumer]

    def count(self, queue: str) -> int:
        return sum(1 for held in self._held.values() if held.queue == queue)

    def prune(self, channels: dict[str, Any]) -> None:
        """Forget deliveries whose channel is gone: the broker requeued them."""
        live = {name: channel for name, channel in channels.items() if channel.is_open}
        dead = [t for t, held in self._held.items() if live.get(held.queue) is not held.channel]
        for token in dead:
            self.pop(token)

    def busy(self) -> set[str]:
        """Queues with deliveries held, whose channels must stay open."""
        return {held.queue for held in self._held.values()}

    def clear(self) -> None:
        self._held.clear()
        self._pushed.clear()
        self._parked.clear()
