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
        holding, expiration, declare = self.prepare(name, delay)
        self._session.publish(holding, messages, timestamp, declare, expiration)

    def prepare(self, name: str, delay: float) -> tuple[str, int, Callable[[], None]]:
        """Where an item of ``name`` delayed by ``delay`` s waits, ready for a publish.

        Returns the holding queue (declared unless this backend did so
        lately), the message expiration in milliseconds, and what declares
        the holding queue again if a publish finds it gone.
        """
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
        return holding, expiration_ms(delay), declare

    def count(self, name: str) -> int:
        """Messages waiting in the queue's holding queues."""
        session = self._session
        if session.ready_count(index_name(name)) is None:
            return 0
        return sum(session.ready_count(holding_name(name, bucket)) or 0 for bucket in BUCKETS_MS)

    def cancel(self, name: str, redeclare: Callable[[], None]) -> int:
        """Move every waiting message into the queue now; how many were moved.

        Each holding queue's messages are published into the queue and
        acknowledged in one transaction: a failure leaves them where they
        were or where they went. ``redeclare`` declares the queue again if
        another process deleted it meanwhile.
        """
        session = self._session
        if session.ready_count(index_name(name)) is None:
            return 0
        moved = 0
        for bucket in BUCKETS_MS:
            holding = holding_name(name, bucket)
            if not session.ready_count(holding):
                continue
            waiting = [Fetched.of(message) for message in session.take_all(holding)]
            if not waiting:
                continue
            copies = [
                fetched.again(
                    fetched.message_id or uuid.uuid4().hex, fetched.earlier, fetched.error
                )
                for fetched in waiting
            ]
            session.move_held(name, copies, redeclare, ack=[fetched.tag for fetched in waiting])
            moved += len(waiting)
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
