"""Delayed items on RabbitMQ: holding queues that dead-letter back when a delay ends.

The layout (buckets, names, arguments, why they bound the number of queues
and how late an item can be) is set out in ``amqp_layout.py``. Here are the
calls: put messages on hold, count them, hand them back early
(``release_all``), and delete them with their queue.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

from bridge.backends.amqp_layout import (
    BUCKETS_MS,
    RENEW_AFTER,
    bucket_for,
    expiration_ms,
    holding_name,
    index_name,
)
from bridge.backends.amqp_records import Fetched, Outgoing
from bridge.backends.amqp_session import AmqpSession


class Delays:
    """The holding queues of every bridge queue on one session."""

    def __init__(self, session: AmqpSession) -> None:
        self._session = session
        self._renewed: dict[str, float] = {}
        """Holding queue -> when this backend last declared it (time.monotonic)."""

    def hold(self, name: str, messages: list[Outgoing], delay: float, timestamp: int) -> None:
        """Publish ``messages`` to come into queue ``name`` ``delay`` s from now, all or none."""
        session = self._session
        bucket = bucket_for(delay)
        holding = holding_name(name, bucket)

        def declare() -> None:
            # The index first: it must outlive every holding queue of the name.
            session.declare_admin(index_name(name), session.layout.index_arguments)
            session.declare_admin(
                holding, lambda version: session.layout.holding_arguments(name, bucket, version)
            )
            self._renewed[holding] = time.monotonic()

        if time.monotonic() - self._renewed.get(holding, -math.inf) >= RENEW_AFTER:
            declare()
        session.publish(holding, messages, timestamp, declare, expiration_ms(delay))

    def count(self, name: str) -> int:
        """Messages waiting in the queue's holding queues."""
        session = self._session
        if session.ready_count(index_name(name)) is None:
            return 0
        return sum(session.ready_count(holding_name(name, bucket)) or 0 for bucket in BUCKETS_MS)

    def cancel(self, name: str, republish: Callable[[list[Outgoing]], None]) -> int:
        """Move every waiting message into the queue now; how many were moved.

        Each holding queue's messages are published into the queue first and
        acknowledged after, so a failure in between leaves an item twice,
        never lost.
        """
        session = self._session
        if session.ready_count(index_name(name)) is None:
            return 0
        moved = 0
        for bucket in BUCKETS_MS:
            holding = holding_name(name, bucket)
            if not session.ready_count(holding):
                continue
            channel, messages = session.take_all(holding)
            if not messages:
                continue
            copies = []
            for message in messages:
                fetched = Fetched.of(message)
                copies.append(
                    fetched.again(fetched.message_id or uuid.uuid4().hex, fetched.earlier)
                )
            republish(copies)
            for message in messages:
                channel.basic_ack(message.delivery_tag)
            channel.basic_qos(0, 0, False)  # acks get no reply: this round trip confirms them
            moved += len(messages)
        return moved

    def delete(self, name: str) -> None:
        """Delete the queue's holding queues with what they hold."""
        session = self._session
        index = index_name(name)
        if session.ready_count(index) is None:
            return
        for bucket in BUCKETS_MS:
            holding = holding_name(name, bucket)
            session.delete(holding)
            self._renewed.pop(holding, None)
        session.delete(index)
