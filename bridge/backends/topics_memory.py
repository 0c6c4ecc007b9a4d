"""Topics in this process's memory: the executable specification of topics.

Features:
    One lock serves every call, so publishes are totally ordered and a
    reader sees each message once it sees any later one. Positions are a
    per-topic counter from 1. Expired messages are dropped on every call
    (the list is in publish order, but TTLs differ, so the sweep looks at
    every message; a memory topic is small by nature). Nothing survives the
    process, and other processes see nothing (as the memory queues).

Storage layout:
    Per topic: the last position issued, the messages in publish order
    (position, payload, published, expire), and each subscriber's position.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import final

from bridge.contract import Backend
from bridge.topics import Start, StoredMessage, TopicStats, TopicStore

_POSITION = re.compile(r"^[1-9][0-9]{0,18}$")


@dataclass
class _Topic:
    last: int = 0
    messages: list[tuple[int, bytes, float, float]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)

    def sweep(self, now: float) -> None:
        if any(expire <= now for *_, expire in self.messages):
            self.messages = [m for m in self.messages if m[3] > now]


@final
class MemoryTopics(TopicStore):
    """Topics in a dict of this process, one per memory backend object."""

    def __init__(self, backend: Backend) -> None:
        self.url = backend.url
        self._topics: dict[str, _Topic] = {}
        self._lock = threading.Lock()

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic()
        topic.sweep(time.time())
        return topic

    def publish(self, topic: str, payloads: Sequence[bytes], ttl: float) -> list[str]:
        with self._lock:
            kept = self._topic(topic)
            now = time.time()
            positions = []
            for payload in payloads:
                kept.last += 1
                kept.messages.append((kept.last, payload, now, now + ttl))
                positions.append(str(kept.last))
            return positions

    def read(self, topic: str, subscriber: str, limit: int, start: Start) -> list[StoredMessage]:
        with self._lock:
            kept = self._topic(topic)
            after = kept.positions.get(subscriber)
            if after is None:
                after = 0
                if start == "latest":
                    after = kept.positions[subscriber] = kept.last
            found = [m for m in kept.messages if m[0] > after][:limit]
            return [StoredMessage(str(p), payload, pub, exp) for p, payload, pub, exp in found]

    def ack(self, topic: str, subscriber: str, position: str) -> bool | None:
        with self._lock:
            kept = self._topic(topic)
            if not _POSITION.match(position) or int(position) > kept.last:
                return None
            if kept.positions.get(subscriber, 0) >= int(position):
                return False
            kept.positions[subscriber] = int(position)
            return True

    def stats(self, topic: str) -> TopicStats:
        with self._lock:
            kept = self._topic(topic)
            times = [published for _, _, published, _ in kept.messages]
            return TopicStats(
                len(times), min(times, default=None), max(times, default=None), len(kept.positions)
            )

    def delete_topic(self, topic: str) -> None:
        with self._lock:
            kept = self._topics.get(topic)
            if kept is not None:
                # ``last`` stays: a position is never issued twice (as on SQL).
                kept.messages.clear()
                kept.positions.clear()
