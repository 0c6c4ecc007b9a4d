"""Held items on RabbitMQ: a held queue per bridge queue, and the moves in and out of it.

The held queue's name, type and arguments are set out in ``amqp_layout.py``.
Here are the calls that read and empty it: look at held items in order,
kick them back into their bridge queue, delete them, count them.

Every move out of a held queue happens in a transaction on the session's
:meth:`~bridge.backends.amqp_session.AmqpSession.mover` channel: the copies
published into the bridge queue and the acknowledgements of the held
messages take effect at one commit, or not at all. A process killed before
the commit reached the broker leaves the held messages held (the broker
requeues what it had fetched) and publishes nothing.

AMQP can only fetch from the head of a queue, so looking at held items, or
kicking one chosen item, fetches messages and requeues the others in the
same transaction. On a quorum queue, requeued messages are served before
the others, in the order they were requeued: a look that stopped among
them would put the ones it took behind the ones it left. So a look takes
every earlier-requeued message before it stops, and gives them all back
in the order it took them; held items stay in the order they were held.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from bridge.backends.amqp_layout import held_name
from bridge.backends.amqp_records import Fetched, Outgoing
from bridge.backends.amqp_session import AmqpSession
from bridge.items import ItemId, StoredItem

BATCH = 100
"""Held messages kicked or deleted per transaction."""


class HeldQueues:
    """The held queues of every bridge queue on one session."""

    def __init__(self, session: AmqpSession) -> None:
        self._session = session
        self._declared: set[str] = set()
        """Held queues this backend declared. Nothing expires them: a held queue
        deleted since (by ``delete_queue`` elsewhere) returns what is published to
        it as unroutable, and is declared again then."""

    def target(self, name: str) -> tuple[str, Callable[[], None]]:
        """The held queue of ``name``, declared if this backend has not yet, and its declare."""
        held = held_name(name)
        session = self._session

        def declare() -> None:
            session.declare_admin(held, session.layout.held_arguments)
            self._declared.add(held)

        if held not in self._declared:
            declare()
        return held, declare

    def count(self, name: str) -> int:
        """Held messages, fetched ones aside (a look in progress elsewhere)."""
        return self._session.ready_count(held_name(name)) or 0

    def look(self, name: str, limit: int) -> list[StoredItem]:
        """The first ``limit`` held items, left where they were, in the order they were held."""
        held = held_name(name)
        if limit <= 0 or not self._session.ready_count(held):
            return []
        counter = itertools.count(1)
        taken, ready = self._take(held, lambda fetched: next(counter) >= limit)
        self._session.move_held(held, [], self._no_return, requeue=[f.tag for f in taken])
        self._session.await_ready(held, ready)
        return [fetched.held() for fetched in taken[:limit]]

    def kick(self, name: str, limit: int | None, redeclare: Callable[[], None]) -> int:
        """Move up to ``limit`` (None: every) held item into queue ``name``, oldest held first.

        A batch at a time: a failure leaves the batches before it kicked and
        the rest held.
        """
        held = held_name(name)
        if not self._session.ready_count(held):
            return 0
        kicked = 0
        while limit is None or kicked < limit:
            size = BATCH if limit is None else min(BATCH, limit - kicked)
            taken = self._fetch(held, size)
            if taken:
                copies = [_kicked(fetched) for fetched in taken]
                acks = [fetched.tag for fetched in taken]
                self._session.move_held(name, copies, redeclare, ack=acks)
            kicked += len(taken)
            if len(taken) < size:
                break
        return kicked

    def kick_item(self, name: str, item_id: ItemId, redeclare: Callable[[], None]) -> bool:
        """Move the held item ``item_id`` into queue ``name``; the others stay in order.

        The held queue is fetched from its head until the item turns up, so
        this takes as long as the held items before it (all of them when it
        is not held).
        """
        held = held_name(name)
        if not self._session.ready_count(held):
            return False
        wanted = str(item_id)
        taken, ready = self._take(held, lambda fetched: fetched.message_id == wanted)
        found = next((fetched for fetched in taken if fetched.message_id == wanted), None)
        others = [fetched.tag for fetched in taken if fetched is not found]
        if found is None:
            self._session.move_held(held, [], self._no_return, requeue=others)
        else:
            self._session.move_held(
                name, [_kicked(found)], redeclare, ack=[found.tag], requeue=others
            )
        self._session.await_ready(held, ready - (found is not None))
        return found is not None

    def delete(self, name: str, limit: int | None) -> int:
        """Delete up to ``limit`` (None: every) held item, oldest held first."""
        held = held_name(name)
        if not self._session.ready_count(held):
            return 0
        deleted = 0
        while limit is None or deleted < limit:
            size = BATCH if limit is None else min(BATCH, limit - deleted)
            taken = self._fetch(held, size)
            if taken:
                self._session.move_held(held, [], self._no_return, ack=[f.tag for f in taken])
            deleted += len(taken)
            if len(taken) < size:
                break
        return deleted

    def drop(self, name: str) -> None:
        """Delete the held queue with what it holds."""
        held = held_name(name)
        self._session.delete(held)
        self._declared.discard(held)

    def _fetch(self, held: str, most: int) -> list[Fetched]:
        mover = self._session.mover()
        taken: list[Fetched] = []
        while len(taken) < most:
            message = mover.basic_get(queue=held, no_ack=False)
            if message is None:
                break
            taken.append(Fetched.of(message))
        return taken

    def _take(self, held: str, done: Callable[[Fetched], bool]) -> tuple[list[Fetched], int]:
        """Fetch from the head until ``done`` says so and no earlier-requeued message is left.

        Also returns how many messages were ready at the first fetch, which
        the queue counts again once the requeues are applied.
        """
        mover = self._session.mover()
        taken: list[Fetched] = []
        ready = 0
        finished = False
        while not finished or (taken and taken[-1].returned):
            message = mover.basic_get(queue=held, no_ack=False)
            if message is None:
                break
            if not taken:
                ready = int(message.delivery_info.get("message_count") or 0) + 1
            fetched = Fetched.of(message)
            taken.append(fetched)
            finished = finished or done(fetched)
        return taken, ready

    @staticmethod
    def _no_return() -> None:
        """Nothing is published by a look or a delete, so nothing can come back."""


def _kicked(fetched: Fetched) -> Outgoing:
    """A held message as the ready item it becomes: attempts from 0, its last error kept."""
    return fetched.again(fetched.message_id or "", 0, fetched.error)
