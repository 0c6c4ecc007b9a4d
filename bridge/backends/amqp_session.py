"""One AMQP connection of the RabbitMQ backend and the channels on it.

Kept apart from ``amqp.py``, which holds the queue semantics (claims,
leases, tokens), so that this module is only about talking to RabbitMQ:

* one channel per queue, which declares, fetches, consumes (a claim's
  consumer, ``amqp_stream.py``), acknowledges and requeues that queue's
  messages. Delivery tags are numbered per channel, and a channel error (a
  missing queue, RabbitMQ's consumer_timeout) costs every delivery on that
  channel, so queues do not share one. It is
  transactional: what a call does to a claimed message (acknowledge it,
  requeue it, publish its new copy elsewhere) takes effect at one commit,
  all of it or none, so a process killed at any instant leaves the item
  where it was or where it went (:meth:`AmqpSession.move`);
* one transactional channel that publishes (``tx_commit`` makes a batch
  all-or-nothing); every channel gets unroutable messages back
  (``mandatory``);
* one transactional channel that takes messages out of held and holding
  queues, and puts back the ones it only looked at (:meth:`AmqpSession.mover`);
* one channel for everything else: passive declares, holding queues,
  deletes.

A channel the broker closes stays closed. py-amqp would reopen it under the
same number with delivery tags starting again at 1, so an old tag could
acknowledge a new message; here it is dropped instead, and a new one opened
when needed.

Declaring. The arguments come from :class:`~bridge.backends.amqp_layout.Layout`,
which needs the server's version, known once connected. A queue that
already exists with other arguments (a classic queue made before quorum
queues were the default) is refused with a :class:`ConfigurationError`
when the options asked for its type; otherwise it is used as it is, with a
warning once per queue.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Sequence
from typing import Any

from bridge.backends.amqp_layout import RESERVED_PREFIXES, Layout, parse_version
from bridge.backends.amqp_records import Outgoing
from bridge.errors import BackendError, ConfigurationError, InvalidArgumentError

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/octet-stream"
_MAX_CHANNELS = 256
"""Queue channels kept open per connection (RabbitMQ allows 2047 by default)."""
_READ_AHEAD = 4096
"""Bytes asked of the socket at least per read (see :func:`_read_ahead`)."""


class AmqpSession:
    """A lazily opened Kombu connection to RabbitMQ and its channels."""

    def __init__(
        self,
        kombu: Any,
        broker_url: str,
        masked_url: str,
        options: dict[str, Any],
        layout: Layout,
    ) -> None:
        self._kombu = kombu
        self._broker_url = broker_url
        self._url = masked_url
        self._options = options
        self.layout = layout
        self.version: tuple[int, ...] | None = None
        """The server's RabbitMQ version, once connected."""
        self._as_is: set[str] = set()
        """Queues found declared with other arguments, used as they are."""
        transport = kombu.transport.pyamqp.Transport
        self.channel_errors: tuple[type[Exception], ...] = tuple(transport.channel_errors)
        self.connection_errors: tuple[type[Exception], ...] = (
            *transport.connection_errors,
            kombu.exceptions.OperationalError,
        )
        amqp = kombu.transport.pyamqp.amqp
        self._tcp_transport: type[Any] = amqp.transport.TCPTransport
        self._commit, self._commit_ok = amqp.spec.Tx.Commit, amqp.spec.Tx.CommitOk
        self.other_errors: tuple[type[Exception], ...] = (
            amqp.exceptions.AMQPError,
            amqp.exceptions.MessageNacked,
            kombu.exceptions.KombuError,
        )
        """Every other error of the drivers: a failure of the call, not of the connection."""
        self.forget()

    def forget(self) -> None:
        """Drop the connection without a word to the broker (a forked child's share)."""
        self._conn: Any = None
        self.channels: dict[str, Any] = {}
        self._publisher: Any = None
        self._mover: Any = None
        self._admin: Any = None
        self._returned: list[str] = []
        self._corked: tuple[Any, Any, list[bytes]] | None = None

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
            except (*self.connection_errors, *self.channel_errors, *self.other_errors):
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
        if name.startswith(RESERVED_PREFIXES) or len(name.encode()) > 255:
            raise InvalidArgumentError(
                f"RabbitMQ queue names are at most 255 bytes and never start with 'amq.'; "
                f"bridge keeps names starting with {RESERVED_PREFIXES[1]!r} and "
                f"{RESERVED_PREFIXES[2]!r} for its holding and held queues: {name[:40]!r}"
            )
        if len(self.channels) >= _MAX_CHANNELS:
            for idle in [queue for queue in self.channels if queue not in busy]:
                self.discard(idle)
        channel = self._open()
        channel = self.declare(
            channel, name, self.layout.main_arguments(self.version), strict=self.layout.strict
        )
        channel.tx_select()
        self.channels[name] = channel
        return channel

    def declare(self, channel: Any, name: str, arguments: dict[str, Any], *, strict: bool) -> Any:
        """Declare a durable queue on ``channel``; the channel to go on with.

        A queue declared elsewhere with other arguments closes the channel
        (406); then it is an error when ``strict``, else the queue is used as
        it is, on a new channel.
        """
        if name not in self._as_is:
            try:
                channel.queue_declare(
                    queue=name, durable=True, auto_delete=False, arguments=arguments
                )
                return channel
            except self.channel_errors as exc:
                self.bury_dead()
                if getattr(exc, "code", None) != 406:
                    raise
                if strict:
                    raise ConfigurationError(
                        f"queue {name!r} exists on {self._url} with other arguments than "
                        f"{arguments} (queue_type, max_priority, queue_arguments); a queue's "
                        f"arguments never change: delete it or match them ({exc})"
                    ) from exc
                log.warning(
                    "queue %r exists on %s with other arguments than %s, probably a classic "
                    "queue declared before bridge made quorum queues its default; bridge uses "
                    "it as it is, with what its type gives up (docs/rabbitmq.md). To convert "
                    "it, drain and delete it; to keep it, set queue_type='classic' (%s)",
                    name,
                    self._url,
                    arguments,
                    exc,
                )
                self._as_is.add(name)
                channel = self._open()
        try:
            channel.queue_declare(queue=name, passive=True)
        except self.channel_errors as exc:
            self.bury_dead()
            if getattr(exc, "code", None) != 404:
                raise
            self._as_is.discard(name)  # deleted since: declare it as bridge would
            return self.declare(self._open(), name, arguments, strict=strict)
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

    def mover(self) -> Any:
        """The transactional channel that takes messages out of held and holding queues."""
        if self._mover is None or not self._mover.is_open:
            mover = self._open()
            mover.tx_select()
            self._mover = mover
        return self._mover

    def declare_admin(
        self, name: str, arguments: Callable[[tuple[int, ...] | None], dict[str, Any]]
    ) -> None:
        """Declare a queue of bridge's own (a holding queue) on the admin channel.

        ``arguments`` is given the server's version, known once connected.
        """
        channel = self.admin()
        self._admin = self.declare(channel, name, arguments(self.version), strict=False)

    def bury_dead(self) -> None:
        """Forget the channels the broker closed."""
        for name, channel in list(self.channels.items()):
            if not channel.is_open:
                del self.channels[name]
                channel.collect()
        for attribute in ("_publisher", "_mover", "_admin"):
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
        transport: Any = getattr(connection, "transport", None)
        while sock is not None and (
            bool(getattr(transport, "_read_buffer", b"")) or select.select([sock], [], [], 0)[0]
        ):
            try:
                connection.drain_events(timeout=1)
            except self.channel_errors:
                self.bury_dead()
            except TimeoutError:
                return

    def next_method(self, seconds: float) -> bool:
        """Handle the next method the broker sends, if it begins within ``seconds``.

        False when nothing came. A consumer's delivery goes to its callback;
        a channel the broker closed raises its channel error. The wait is one
        ``select``; the method's frames, which follow its first byte, are
        then read without a timeout (py-amqp would set and reset the
        socket's timeout around every frame, and poll before every read).
        """
        connection = self._conn.connection
        transport = connection.transport
        sock = transport.sock
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
        ready = (
            getattr(transport, "_read_buffer", b"")  # read ahead (:func:`_read_ahead`)
            or (pending is not None and pending())
            or select.select([sock], [], [], seconds)[0]
        )
        if not ready:
            return False
        connection.drain_events()
        return True

    def corked(self) -> _Cork:
        """Hold the frames written meanwhile; they go in one write with the next commit.

        An acknowledgement and its commit then reach the broker as one
        segment, not one write each. Nothing inside may wait for a reply
        (its request would still be held). What is left at the end goes then.
        """
        return _Cork(self)

    def _cork(self) -> None:
        transport = getattr(self._conn.connection, "transport", None) if self._conn else None
        if self._corked is not None or transport is None or not hasattr(transport, "_write"):
            return
        chunks: list[bytes] = []
        self._corked = (transport, transport._write, chunks)
        transport._write = lambda data: chunks.append(bytes(data))  # the frame buffer is reused

    def _uncork(self) -> None:
        if self._corked is None:
            return
        transport, write, chunks = self._corked
        self._corked = None
        transport._write = write
        if chunks:
            write(b"".join(chunks))

    def confirmed(self, name: str) -> bool:
        """Commit the queue channel's transaction: True if the broker still has the channel open.

        What was done on the channel since its last commit (acknowledgements,
        requeues, publishes) takes effect now. The commit is also the round
        trip that tells whether it did: acknowledgements get no reply, and a
        channel the broker closed meanwhile (its consumer_timeout) has its
        messages already requeued and its transaction void.
        """
        for _ in range(2):
            channel = self.channels.get(name)
            if channel is None or not channel.is_open:
                return False
            try:
                channel.send_method(self._commit)
                self._uncork()  # with what was staged (:meth:`corked`), in one write
                channel.wait(self._commit_ok)
            except self.channel_errors:
                self.bury_dead()  # the close may have been another channel's: look again
                continue
            return True
        self._uncork()
        return False

    def await_ready(self, name: str, ready: int) -> None:
        """Wait until the queue counts ``ready`` messages, or half a second has passed.

        The queue's count shows a requeue a moment after the broker confirms
        it (a quorum queue once its log has it; a classic queue too, seen in
        about one look in six); waiting for it lets the caller's next count,
        and other connections' fetches, see the messages back. Other
        claimers may keep the count lower; the wait ends then anyway.
        """
        deadline = time.monotonic() + 0.5
        while (self.ready_count(name) or 0) < ready and time.monotonic() < deadline:
            time.sleep(0.002)

    # -- calls -----------------------------------------------------------------------

    def ready_count(self, name: str) -> int | None:
        """Ready messages in the queue (RabbitMQ's count leaves unacked ones out); None if none."""
        channel = self.channels.get(name)
        if channel is None or not channel.is_open:
            channel = self.admin()
        try:
            return int(channel.queue_declare(queue=name, passive=True).message_count)
        except self.channel_errors as exc:
            self.bury_dead()
            if getattr(exc, "code", None) == 404:
                return None
            raise

    def take_all(self, name: str) -> list[Any]:
        """Every ready message of a queue of bridge's own, fetched unacknowledged on the mover."""
        mover = self.mover()
        messages = []
        while (message := mover.basic_get(queue=name, no_ack=False)) is not None:
            messages.append(message)
        return messages

    def delete(self, name: str) -> None:
        """Delete a queue with every message in it; a missing queue is no error."""
        self.admin().queue_delete(queue=name)

    def publish(
        self,
        routing_key: str,
        messages: list[Outgoing],
        timestamp: int,
        redeclare: Callable[[], None],
        expiration_ms: int | None = None,
    ) -> None:
        """Publish persistent messages in one transaction; unroutable ones are sent again.

        A message comes back unroutable when its queue was deleted after this
        connection declared it; ``redeclare`` declares it again and those are
        resent.
        """
        for _ in range(2):
            publisher = self._publishing_channel()
            self._returned.clear()
            self._stage(publisher, routing_key, messages, timestamp, expiration_ms)
            publisher.tx_commit()
            if not self._returned:
                return
            returned = set(self._returned)
            messages = [message for message in messages if message.message_id in returned]
            redeclare()
        raise BackendError(f"publishing on {self._url}: queue {routing_key!r} keeps disappearing")

    def move(
        self,
        queue: str,
        routing_key: str,
        messages: list[Outgoing],
        timestamp: int,
        redeclare: Callable[[], None],
        *,
        ack: Sequence[int] = (),
        requeue: Sequence[int] = (),
        expiration_ms: int | None = None,
    ) -> bool:
        """In one transaction on ``queue``'s channel: publish, acknowledge, requeue.

        All of it takes effect at the commit, or none of it: a process killed
        before the commit reached the broker leaves every delivery unsettled
        (the broker requeues them) and nothing published. False when the
        channel is gone (its deliveries already requeued by the broker).

        Once committed, a message that came back unroutable (its queue deleted
        by another process since it was declared here) is published again
        after ``redeclare``: from then until that publish, it lives only in
        this process.
        """
        channel = self.channels.get(queue)
        if channel is None or not channel.is_open:
            return False
        self._returned.clear()
        with self.corked():
            self._stage(channel, routing_key, messages, timestamp, expiration_ms)
            for tag in ack:
                channel.basic_ack(tag)
            for tag in requeue:
                channel.basic_reject(tag, requeue=True)
            if not self.confirmed(queue):
                return False
        self._resend(routing_key, messages, timestamp, redeclare, expiration_ms)
        return True

    def move_held(
        self,
        routing_key: str,
        messages: list[Outgoing],
        redeclare: Callable[[], None],
        *,
        ack: Sequence[int] = (),
        requeue: Sequence[int] = (),
    ) -> None:
        """:meth:`move` for messages fetched on the :meth:`mover` channel.

        The mover is transactional for the same reason as the queue channels:
        a message taken out of a held or holding queue is acknowledged there
        in the transaction that publishes its copy.
        """
        mover = self.mover()
        self._returned.clear()
        timestamp = int(time.time())
        self._stage(mover, routing_key, messages, timestamp, None)
        for tag in ack:
            mover.basic_ack(tag)
        for tag in requeue:
            mover.basic_reject(tag, requeue=True)
        mover.tx_commit()
        self._resend(routing_key, messages, timestamp, redeclare, None)

    def _resend(
        self,
        routing_key: str,
        messages: list[Outgoing],
        timestamp: int,
        redeclare: Callable[[], None],
        expiration_ms: int | None,
    ) -> None:
        if not self._returned:
            return
        returned = set(self._returned)
        redeclare()
        again = [message for message in messages if message.message_id in returned]
        self.publish(routing_key, again, timestamp, redeclare, expiration_ms)

    def _stage(
        self,
        channel: Any,
        routing_key: str,
        messages: list[Outgoing],
        timestamp: int,
        expiration_ms: int | None,
    ) -> None:
        """Publish persistent messages on a transactional channel: sent at its commit."""
        extra = {"expiration": str(expiration_ms)} if expiration_ms is not None else {}
        for message_id, body, priority, headers in messages:
            message = channel.prepare_message(
                body,
                priority,
                CONTENT_TYPE,
                "binary",
                headers,
                {"delivery_mode": 2, "message_id": message_id, "timestamp": timestamp, **extra},
            )
            channel.basic_publish(message, exchange="", routing_key=routing_key, mandatory=True)

    def _publishing_channel(self) -> Any:
        if self._publisher is None or not self._publisher.is_open:
            publisher = self._open()
            publisher.tx_select()
            self._publisher = publisher
        return self._publisher

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.append(str(message.properties.get("message_id")))

    def _open(self) -> Any:
        if self._conn is None:
            conn = self._kombu.Connection(self._broker_url, **self._options)
            conn.connect()
            self._conn = conn
            _read_ahead(conn.connection.transport, self._tcp_transport)
            properties = getattr(conn.connection, "server_properties", None) or {}
            self.version = parse_version(properties.get("version"))
        channel = self._conn.channel()

        def closed_by_broker() -> None:
            channel.is_open = False  # instead of py-amqp's reopening; see the docstring

        channel._do_revive = closed_by_broker
        # Every publish is mandatory; py-amqp raises a return nobody listens for.
        channel.events["basic_return"].add(self._on_return)
        return channel


class _Cork:
    """:meth:`AmqpSession.corked` (a class: it is entered once an item, a generator costs more)."""

    __slots__ = ("_session",)

    def __init__(self, session: AmqpSession) -> None:
        self._session = session

    def __enter__(self) -> None:
        self._session._cork()

    def __exit__(self, *exc: object) -> None:
        self._session._uncork()


def _read_ahead(transport: Any, tcp_transport: type[Any]) -> None:
    """Have py-amqp's TCP transport ask the socket for 4 KiB a read, not a frame's part.

    py-amqp reads a frame in three exact reads (header, payload, end byte),
    so a pushed message (three frames) and the commit's answer cost twelve
    system calls. It keeps what a read brings beyond what it asked for in
    ``_read_buffer`` (its TLS transport works that way), so asking for more
    makes that one or two. :meth:`AmqpSession.drain_pending` and
    :meth:`AmqpSession.next_method` look in that buffer before they ask
    ``select``, which cannot see it. Only the plain TCP transport, whose
    reads are ``sock.recv``.
    """
    if type(transport) is not tcp_transport or not hasattr(transport, "_quick_recv"):
        return
    recv = transport.sock.recv
    transport._quick_recv = lambda wanted: recv(max(wanted, _READ_AHEAD))
