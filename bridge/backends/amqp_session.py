"""One AMQP connection of the kombu backend and the channels on it.

Kept apart from ``kombu_amqp.py``, which holds the queue semantics (claims,
leases, tokens), so that this module is only about talking to RabbitMQ:

* one channel per queue, which declares, fetches, acknowledges and
  requeues that queue's messages. Delivery tags are numbered per channel,
  and a channel error (a missing queue, RabbitMQ's consumer_timeout) costs
  every delivery on that channel, so queues do not share one;
* one transactional channel that publishes (``tx_commit`` makes a batch
  all-or-nothing) and gets unroutable messages back (``mandatory``);
* one channel for everything else: passive declares, deletes.

A channel the broker closes stays closed. py-amqp would reopen it under the
same number with delivery tags starting again at 1, so an old tag could
acknowledge a new message; here it is dropped instead, and a new one opened
when needed.

Also here, the records the backend keeps of messages: :class:`Fetched` (what
a message says), :class:`Held` (a delivery held under a claim) and
:class:`Ledger` (claims counted per message id).
"""

from __future__ import annotations

import select
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.backends.tokens import CREATED_HEADER
from bridge.errors import BackendError, ConfigurationError, InvalidArgumentError
from bridge.items import StoredItem

CONTENT_TYPE = "application/octet-stream"
_MAX_CHANNELS = 256
"""Queue channels kept open per connection (RabbitMQ allows 2047 by default)."""
_LEDGER_SIZE = 100_000
"""Message ids whose claims a backend remembers."""


class AmqpSession:
    """A lazily opened Kombu connection to RabbitMQ and its channels."""

    def __init__(
        self, kombu: Any, broker_url: str, masked_url: str, options: dict[str, Any],
        arguments: dict[str, Any],
    ) -> None:
        self._kombu = kombu
        self._broker_url = broker_url
        self._url = masked_url
        self._options = options
        self._arguments = arguments
        transport = kombu.transport.pyamqp.Transport
        self.channel_errors: tuple[type[Exception], ...] = tuple(transport.channel_errors)
        self.connection_errors: tuple[type[Exception], ...] = (
            *transport.connection_errors, kombu.exceptions.OperationalError,
        )
        self.forget()

    def forget(self) -> None:
        """Drop the connection without a word to the broker (a forked child's share)."""
        self._conn: Any = None
        self.channels: dict[str, Any] = {}
        self._publisher: Any = None
        self._admin: Any = None
        self._returned: list[str] = []

    def lost(self) -> None:
        """After a connection error: free what is left without waiting on the socket."""
        conn = self._conn
        self.forget()
        if conn is not None:
            conn.collect()

    def close(self) -> None:
        conn = self._conn
        self.forget()
        if conn is not None:
            try:
                conn.release()
            except (*self.connection_errors, *self.channel_errors):
                pass

    # -- channels ------------------------------------------------------------------

    def queue_channel(self, name: str, busy: set[str]) -> Any:
        """The channel of queue ``name``, declaring the queue when it is opened.

        ``busy`` names the queues with deliveries held, whose channels are
        never closed to make room.
        """
        channel = self.channels.get(name)
        if channel is not None and channel.is_open:
            return channel
        if len(name.encode()) > 255 or name.startswith("amq."):
            raise InvalidArgumentError(
                f"RabbitMQ queue names are at most 255 bytes and never start with 'amq.': {name!r}"
            )
        if len(self.channels) >= _MAX_CHANNELS:
            for idle in [queue for queue in self.channels if queue not in busy]:
                self.discard(idle)
        channel = self._open()
        try:
            channel.queue_declare(queue=name, durable=True, auto_delete=False,
                                  arguments=self._arguments)
        except self.channel_errors as exc:
            self.bury_dead()
            if getattr(exc, "code", None) == 406:
                raise ConfigurationError(
                    f"queue {name!r} exists on {self._url} with other arguments than "
                    f"{self._arguments or 'none'} (max_priority, queue_arguments); a queue's "
                    f"arguments never change: delete it or match them ({exc})"
                ) from exc
            raise
        self.channels[name] = channel
        return channel

    def discard(self, name: str) -> None:
        """Close the queue's channel; the broker requeues what it held."""
        channel = self.channels.pop(name, None)
        if channel is not None and channel.is_open:
            channel.close()
        elif channel is not None:
            channel.collect()

    def admin(self) -> Any:
        if self._admin is None or not self._admin.is_open:
            self._admin = self._open()
        return self._admin

    def bury_dead(self) -> None:
        """Forget the channels the broker closed."""
        for name, channel in list(self.channels.items()):
            if not channel.is_open:
                del self.channels[name]
                channel.collect()
        for attribute in ("_publisher", "_admin"):
            channel = getattr(self, attribute)
            if channel is not None and not channel.is_open:
                channel.collect()
                setattr(self, attribute, None)

    def drain_pending(self) -> None:
        """Handle what the broker sent unasked, before a call talks to it.

        A channel the broker closed (consumer_timeout) or a connection it
        closed would otherwise surface in the middle of a later call about
        another queue; a lost connection raises here, before anything is done.
        """
        connection: Any = self._conn.connection if self._conn is not None else None
        sock = getattr(connection, "sock", None)
        while sock is not None and select.select([sock], [], [], 0)[0]:
            try:
                connection.drain_events(timeout=1)
            except self.channel_errors:
                self.bury_dead()
            except TimeoutError:
                return

    def confirmed(self, name: str) -> bool:
        """A round trip on the queue's channel: True if the broker still has it open.

        Acks and rejects get no reply; a channel the broker closed meanwhile
        would swallow them, its messages already requeued.
        """
        for _ in range(2):
            channel = self.channels.get(name)
            if channel is None or not channel.is_open:
                return False
            try:
                channel.basic_qos(0, 0, False)
            except self.channel_errors:
                self.bury_dead()  # the close may have been another channel's: look again
                continue
            return True
        return False

    # -- calls -----------------------------------------------------------------------

    def ready_count(self, name: str) -> int:
        """Ready messages in the queue (RabbitMQ's count leaves unacked ones out); 0 if none."""
        channel = self.channels.get(name)
        if channel is None or not channel.is_open:
            channel = self.admin()
        try:
            return int(channel.queue_declare(queue=name, passive=True).message_count)
        except self.channel_errors as exc:
            self.bury_dead()
            if getattr(exc, "code", None) == 404:
                return 0
            raise

    def publish(
        self, name: str, messages: list[tuple[str, bytes]], priority: int,
        headers: dict[str, Any], timestamp: int, busy: set[str],
    ) -> None:
        """Publish persistent messages in one transaction; unroutable ones are sent again.

        A message comes back unroutable when the queue was deleted after this
        connection declared it; it is declared again and those are resent.
        """
        for _ in range(2):
            publisher = self._publishing_channel()
            self._returned.clear()
            for message_id, body in messages:
                message = publisher.prepare_message(
                    body, priority, CONTENT_TYPE, "binary", headers,
                    {"delivery_mode": 2, "message_id": message_id, "timestamp": timestamp},
                )
                publisher.basic_publish(message, exchange="", routing_key=name, mandatory=True)
            publisher.tx_commit()
            if not self._returned:
                return
            returned = set(self._returned)
            messages = [pair for pair in messages if pair[0] in returned]
            self.discard(name)
            self.queue_channel(name, busy)
        raise BackendError(f"create_items on {self._url}: queue {name!r} keeps disappearing")

    def _publishing_channel(self) -> Any:
        if self._publisher is None or not self._publisher.is_open:
            publisher = self._open()
            publisher.tx_select()
            publisher.events["basic_return"].add(self._on_return)
            self._publisher = publisher
        return self._publisher

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.append(str(message.properties.get("message_id")))

    def _open(self) -> Any:
        if self._conn is None:
            conn = self._kombu.Connection(self._broker_url, **self._options)
            conn.connect()
            self._conn = conn
        channel = self._conn.channel()

        def closed_by_broker() -> None:
            channel.is_open = False  # instead of py-amqp's reopening; see the docstring

        channel._do_revive = closed_by_broker
        return channel


@dataclass(frozen=True, slots=True)
class Fetched:
    """What bridge reads from one message ``basic.get`` returned."""

    tag: int
    message_id: str | None
    body: bytes
    created: float
    priority: int
    redelivered: bool
    delivery_count: int | None
    """Quorum queues' ``x-delivery-count``: earlier deliveries, counted by the broker."""

    @classmethod
    def of(cls, message: Any) -> Fetched:
        properties: dict[str, Any] = message.properties
        headers: dict[str, Any] = properties.get("application_headers") or {}
        body = message.body
        created = headers.get(CREATED_HEADER, properties.get("timestamp"))
        if isinstance(created, datetime):
            created = created.timestamp()
        count = headers.get("x-delivery-count")
        return cls(
            tag=message.delivery_tag,
            message_id=properties.get("message_id") or None,
            body=body if isinstance(body, bytes) else str(body).encode(),
            created=float(created) if isinstance(created, int | float) else time.time(),
            priority=int(properties.get("priority") or 0),
            redelivered=bool(message.delivery_info.get("redelivered")),
            delivery_count=int(count) if isinstance(count, int) else None,
        )


@dataclass(slots=True)
class Held:
    """One unacknowledged delivery a backend holds, under its current token."""

    queue: str
    channel: Any
    fetched: Fetched
    item_id: str
    attempts: int
    expire: float
    delivered: float
    seq: int

    def stored(self, token: str) -> StoredItem:
        f = self.fetched
        return StoredItem(self.item_id, f.body, f.created, self.expire, self.attempts,
                          f.priority, token)


class Ledger:
    """Claims seen per message id, so attempts count the releases RabbitMQ does not."""

    def __init__(self) -> None:
        self._claims: OrderedDict[str, int] = OrderedDict()

    def claim(self, fetched: Fetched) -> int:
        """The attempt number of the claim being made now, remembered.

        Quorum queues count deliveries themselves. On classic queues a message
        this backend has seen counts from what it saw; one it has not counts
        1, or 2 if the broker marks it redelivered (a lower bound).
        """
        if fetched.delivery_count is not None:
            attempts = fetched.delivery_count + 1
        else:
            known = self.known(fetched.message_id)
            attempts = known + 1 if known is not None else 1 + int(fetched.redelivered)
        self.note(fetched.message_id, attempts)
        return attempts

    def look(self, fetched: Fetched) -> int:
        """Claims so far of a message fetched for a look (not a claim), remembered."""
        claims = self.known(fetched.message_id)
        if claims is None:
            claims = fetched.delivery_count or int(fetched.redelivered)
            self.note(fetched.message_id, claims)
        return claims

    def note(self, message_id: str | None, claims: int) -> None:
        if message_id:
            self._claims[message_id] = claims
            self._claims.move_to_end(message_id)
            if len(self._claims) > _LEDGER_SIZE:
                self._claims.popitem(last=False)

    def known(self, message_id: str | None) -> int | None:
        return self._claims.get(message_id) if message_id else None

    def forget(self, message_id: str | None) -> None:
        if message_id:
            self._claims.pop(message_id, None)


def declare_arguments(max_priority: int | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The declare's arguments: ``queue_arguments`` plus ``x-max-priority``, checked."""
    arguments = dict(extra or {})
    if "x-max-priority" in arguments:
        raise ConfigurationError("set priorities with the max_priority option, not x-max-priority")
    if max_priority is not None:
        if isinstance(max_priority, bool) or not isinstance(max_priority, int) or not (
            1 <= max_priority <= 255
        ):
            raise ConfigurationError(
                f"max_priority must be an int from 1 to 255, not {max_priority!r}"
            )
        arguments["x-max-priority"] = max_priority
    return arguments


def check_max_lease(max_lease: float | None) -> float | None:
    if max_lease is None:
        return None
    if isinstance(max_lease, bool) or not isinstance(max_lease, int | float) or max_lease <= 0:
        raise ConfigurationError(
            f"max_lease must be a positive number of seconds or None, not {max_lease!r}"
        )
    return float(max_lease)
