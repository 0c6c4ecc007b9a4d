"""Topics: Marconi's (Zaqar's) second model, publish and subscribe beside the queues.

A topic keeps every published message until its TTL ends; reading never
removes one. Each subscriber has its own marker, the last message it
acknowledged, and reads the live messages after it::

    topic = bridge.get_topic("prices")
    marker = topic.publish({"sku": "A1", "price": 3}, ttl=600)
    for message in topic.read("billing", limit=10):
        handle(message.data)
        topic.ack("billing", message.marker)   # billing's marker moves; no one else's

Roles, as in :mod:`bridge.contract`:

    TopicStore   the backend side: publish bytes, read after a position,
                 move a subscriber's position forward, stats, delete
    Topic        the facade: names, TTLs, limits and markers checked, payloads
                 encoded with the queue's codec before anything is written

A store is found for a queue backend by its class, in :data:`TOPIC_STORES`
(lazy ``"module:Class"`` strings, as :data:`bridge.backends.BACKENDS`): a
backend with no entry cannot serve topics, and :func:`open_topic_store`
refuses it with :class:`~bridge.errors.UnsupportedOperationError` naming
the backend. :func:`supports_topics` asks without opening anything.

Markers are opaque strings ``<position>@<tag>``: the store's position (a
per-topic sequence number on SQL and memory, a stream id on Redis) and a
short hash of the topic's name, so that a marker of another topic, or any
string this topic never issued, is refused by :meth:`Topic.ack` with an
:class:`~bridge.errors.InvalidArgumentError`. ``docs/topics.md`` has the
guarantees per backend.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bridge.codecs import Codec
from bridge.contract import Backend, Capabilities
from bridge.errors import InvalidArgumentError, PayloadError, UnsupportedOperationError
from bridge.items import Undecodable
from bridge.queue import check_name, check_seconds
from bridge.urls import mask_password

logger = logging.getLogger(__name__)

DEFAULT_TTL = 3600.0
"""A message's TTL when ``publish`` names none: one hour, Zaqar's default."""
MAX_TTL = 1_209_600.0
"""The longest TTL: 14 days, Zaqar's ``max_message_ttl``."""
MAX_READ = 1000
"""The most messages one ``read`` returns."""
MAX_PUBLISH = 1000
"""The most messages one ``publish_many`` writes (one statement or script)."""

Start = Literal["oldest", "latest"]

TOPIC_STORES: dict[str, str] = {
    "bridge.backends.memory:MemoryBackend": "bridge.backends.topics_memory:MemoryTopics",
    "bridge.backends.sql.backend:SqlBackend": "bridge.backends.topics_sql:SqlTopics",
    "bridge.backends.redis:RedisBackend": "bridge.backends.topics_redis:RedisTopics",
}
"""Queue backend class -> the class that keeps its topics, imported on first use."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as a store returns it: its position, payload bytes and times (epoch s)."""

    position: str
    payload: bytes
    published: float
    expire: float


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """A message as a subscriber reads it; ``marker`` is what :meth:`Topic.ack` takes.

    ``data`` is an :class:`~bridge.items.Undecodable` when the stored bytes do
    not decode (written by another program): the subscriber can still ack past it.
    """

    marker: str
    data: Any
    published: float
    expire: float


@dataclass(frozen=True, slots=True)
class TopicStats:
    """Live messages (not yet expired), the oldest and newest publish times, subscribers."""

    messages: int
    oldest: float | None
    newest: float | None
    subscribers: int


class TopicStore(ABC):
    """The backend side of topics: one object serves every topic behind one URL.

    Positions are strings the store issues, increasing in publish order
    within a topic. Every reader sees one order, and a message is never
    skipped because a later one became visible first (each store says how).
    Times are the store's own clock.
    """

    url: str

    @abstractmethod
    def publish(self, topic: str, payloads: Sequence[bytes], ttl: float) -> list[str]:
        """Store every payload, all or none, expiring ``ttl`` s from now; their positions."""

    @abstractmethod
    def read(self, topic: str, subscriber: str, limit: int, start: Start) -> list[StoredMessage]:
        """Up to ``limit`` live messages after the subscriber's position, in order.

        A subscriber with no position starts before the oldest live message
        (``start="oldest"``), or at the newest position issued so far
        (``"latest"``, which is then stored as its position).
        """

    @abstractmethod
    def ack(self, topic: str, subscriber: str, position: str) -> bool | None:
        """Move the subscriber's position to ``position`` if that is forward.

        True when it moved, False when it was already there or past it,
        None when this topic never issued ``position`` (nothing is written).
        """

    @abstractmethod
    def stats(self, topic: str) -> TopicStats:
        """The topic's live messages and subscribers."""

    @abstractmethod
    def delete_topic(self, topic: str) -> None:
        """Delete the topic's messages and every subscriber's position.

        Positions issued before are never issued again, so a marker from
        before the delete never names a message published after it.
        """


def _store_key(cls: type[Backend]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def supports_topics(cls: type[Backend]) -> bool:
    """Whether the backend class ``cls`` serves topics: its ``capabilities.topics``,
    which ``tests/test_topics.py`` keeps in step with :data:`TOPIC_STORES`. A class
    whose capabilities depend on its URL (set per object) serves none."""
    capabilities: Capabilities | None = getattr(cls, "capabilities", None)
    return capabilities is not None and capabilities.topics and _store_key(cls) in TOPIC_STORES


def check_topics(cls: type[Backend], url: str) -> None:
    """Refuse, naming the backend, a class with no topic store; before anything is opened."""
    if not supports_topics(cls):
        raise UnsupportedOperationError(
            f"{cls.__name__} ({mask_password(url)}) cannot keep topics; "
            "topics need the memory, sql or redis backend (see docs/topics.md)"
        )


def open_topic_store(backend: Backend) -> TopicStore:
    """The topic store on ``backend``'s connections, or an error naming the backend."""
    check_topics(type(backend), backend.url)
    target = TOPIC_STORES[_store_key(type(backend))]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    store: TopicStore = cls(backend)
    return store


def _tag(name: str) -> str:
    return hashlib.blake2b(name.encode("utf-8"), digest_size=4).hexdigest()


_MARKER = re.compile(r"^(?P<position>[0-9][0-9-]{0,40})@(?P<tag>[0-9a-f]{8})$")


class Topic:
    """One named topic on one store: publish, read after a marker, ack."""

    def __init__(self, name: str, store: TopicStore, codec: Codec) -> None:
        self.name = check_name(name)
        self.store = store
        self.codec = codec
        self._tag = _tag(name)

    def __repr__(self) -> str:
        return f"<Topic {self.name!r} on {self.store.url}>"

    def publish(self, data: Any, ttl: float | None = None) -> str:
        """Publish one message for ``ttl`` s (default :data:`DEFAULT_TTL`); its marker."""
        return self.publish_many([data], ttl)[0]

    def publish_many(self, datas: Iterable[Any], ttl: float | None = None) -> list[str]:
        """Publish several messages in order, all or none, in one round trip; their markers.

        Every payload is encoded first: data the codec refuses raises
        :class:`~bridge.errors.PayloadError` and nothing is written.
        """
        seconds = _check_ttl(ttl)
        payloads = [self.codec.encode(data) for data in datas]
        if not payloads:
            return []
        if len(payloads) > MAX_PUBLISH:
            raise InvalidArgumentError(
                f"publish_many takes at most {MAX_PUBLISH} messages, not {len(payloads)}"
            )
        positions = self.store.publish(self.name, payloads, seconds)
        return [self._marker(position) for position in positions]

    def read(self, subscriber: str, limit: int = 10, start: Start = "oldest") -> list[TopicMessage]:
        """Up to ``limit`` live messages after ``subscriber``'s marker, oldest first.

        Reading removes nothing and moves no marker: the same messages come
        back until the subscriber acks. ``start`` applies to a subscriber
        seen for the first time: ``"oldest"`` reads from the oldest live
        message, ``"latest"`` only what is published from now on.
        """
        subscriber = _check_subscriber(subscriber)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
            raise InvalidArgumentError(f"limit must be an int from 1 to {MAX_READ}, not {limit!r}")
        if start not in ("oldest", "latest"):
            raise InvalidArgumentError(f"start must be 'oldest' or 'latest', not {start!r}")
        stored = self.store.read(self.name, subscriber, limit, start)
        return [self._message(message) for message in stored]

    def ack(self, subscriber: str, marker: str) -> bool:
        """Move ``subscriber``'s marker forward to ``marker``; never backward.

        True when it moved, False when the subscriber was already there or
        past it. A marker this topic did not issue raises
        :class:`~bridge.errors.InvalidArgumentError` and changes nothing.
        """
        subscriber = _check_subscriber(subscriber)
        found = _MARKER.match(marker) if isinstance(marker, str) else None
        if found is None or found["tag"] != self._tag:
            raise InvalidArgumentError(f"{marker!r} is not a marker of topic {self.name!r}")
        moved = self.store.ack(self.name, subscriber, found["position"])
        if moved is None:
            raise InvalidArgumentError(
                f"{marker!r} is not a marker of topic {self.name!r}: it was never issued"
            )
        return moved

    def stats(self) -> TopicStats:
        """Live messages, their oldest and newest publish times, and subscribers."""
        return self.store.stats(self.name)

    def delete_topic(self) -> None:
        """Delete every message and every subscriber's marker of this topic."""
        self.store.delete_topic(self.name)

    def _marker(self, position: str) -> str:
        return f"{position}@{self._tag}"

    def _message(self, stored: StoredMessage) -> TopicMessage:
        try:
            data = self.codec.decode(stored.payload)
        except PayloadError as exc:
            logger.error(
                "Topic %s on %s: message %s: %s", self.name, self.store.url, stored.position, exc
            )
            data = Undecodable(stored.payload, str(exc))
        return TopicMessage(self._marker(stored.position), data, stored.published, stored.expire)


def _check_ttl(ttl: float | None) -> float:
    if ttl is None:
        return DEFAULT_TTL
    return check_seconds("ttl", ttl, positive=True, most=MAX_TTL, store="topics")


def _check_subscriber(subscriber: object) -> str:
    try:
        return check_name(subscriber)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"subscriber: {exc}".replace("queue name", "name")) from None
