"""Waiting for new items without polling: what ``bridge queue watch`` blocks on.

:func:`wait_for_items` asks a store that has the :class:`~bridge.contract.Waiting`
role, and sleeps :data:`SLEEP_INTERVAL` on any other. The listeners the
waiting backends use live here, so the backend modules add only a few lines:

- :class:`PostgresListener`: ``LISTEN`` on the table's channel, on a
  connection of its own (the pool's connections run statements; a listening
  connection must stay idle and in autocommit). The INSERT of ready items
  calls ``pg_notify(table, queue)`` (see ``statements.py``).
- :class:`RedisListener`: a pub/sub subscription to each queue's
  ``P:{N}:wake`` channel, which the create script publishes to. Pub/sub, not
  a list that BLPOP pops: every watcher wakes (any of them may claim), and
  nothing piles up in Redis while no watcher runs. It also reads the
  earliest delay and lease end of the queues, so a delayed item wakes the
  watcher when it becomes claimable.

A notification sent while nobody listened is lost; the watcher covers that
with a claim after each wake-up and a bounded wait (:data:`MAX_WAIT`). Both
listeners stay subscribed between waits, so notifications that arrive
while the watcher works are read by its next wait.

Three backends wait in their own modules, the store's own way of handing
work to a waiting worker: RabbitMQ with a consumer (``amqp_wait.py``),
beanstalkd with a blocking ``reserve-with-timeout`` (``beanstalk_parked.py``),
both keeping what they were handed as a parked claim for the next claim of
its queue; Gearman as a sleeping worker, ``PRE_SLEEP`` until gearmand's
``NOOP`` (``gearman_wait.py``), which hands over nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from bridge.contract import QueueStore, Waiting
from bridge.errors import BackendUnavailableError

logger = logging.getLogger(__name__)

SLEEP_INTERVAL = 0.25
"""How long a watcher sleeps between claims on a store that cannot wake it (SQLite,
MariaDB, SQS, Redis Cluster): a pick-up latency of about 0.13 s on average,
four claims a second while idle."""
MAX_WAIT = 1.0
"""The longest a watcher blocks on a store that can wake it before claiming anyway:
the bound on how late an item is seen when its notification was lost, its
delay ended where the store cannot tell when, or another process released it."""


def wait_for_items(store: QueueStore, names: Sequence[str], timeout: float) -> bool:
    """Block up to ``timeout`` s until items of ``names`` may be claimable on ``store``.

    True if the store said so; False when the time (or the short sleep of a
    store that cannot tell) ran out. See :meth:`bridge.contract.Waiting.wait_for_items`.
    """
    if isinstance(store, Waiting):
        return store.wait_for_items(names, timeout)
    return sleep_for_items(timeout)


def sleep_for_items(timeout: float) -> bool:
    """The wait of a store that cannot be told about new items: a short sleep."""
    time.sleep(max(0.0, min(timeout, SLEEP_INTERVAL)))
    return False


class PostgresListener:
    """``LISTEN`` on one channel, on a connection of its own, opened on first use."""

    def __init__(self, url: str, channel: str, connect: Callable[[], Any]) -> None:
        self.url = url
        self.channel = channel
        self._connect = connect
        self._conn: Any = None

    def wait(self, names: Sequence[str], timeout: float) -> bool:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                conn = self._connect()
                conn.autocommit = True  # LISTEN takes effect now, not at a commit
                conn.execute(f'LISTEN "{self.channel}"')
                self._conn = conn
                return True  # not listening until now: items may have come meanwhile
            wanted = set(names)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                for note in self._conn.notifies(timeout=left, stop_after=1):
                    if note.payload in wanted:
                        return True
            return False
        except psycopg.Error as exc:
            self.close()
            raise BackendUnavailableError(f"wait_for_items on {self.url} failed: {exc}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing left to release
                logger.debug("closing the listening connection failed", exc_info=True)

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without touching its socket."""
        self._conn = None


class RedisListener:
    """A pub/sub subscription to queues' wake channels, kept between waits.

    ``due`` returns the seconds until the earliest delayed or leased item of
    the named queues becomes claimable (None: none), read on the server's clock.
    """

    def __init__(
        self,
        url: str,
        pubsub: Callable[[], Any],
        channel: Callable[[str], str],
        due: Callable[[Sequence[str]], float | None],
    ) -> None:
        self.url = url
        self._new_pubsub = pubsub
        self._channel = channel
        self._due = due
        self._pubsub: Any = None
        self._subscribed: set[str] = set()

    def wait(self, names: Sequence[str], timeout: float) -> bool:
        import redis

        try:
            channels = {self._channel(name) for name in names}
            if self._pubsub is None or not channels <= self._subscribed:
                if self._pubsub is None:
                    self._pubsub = self._new_pubsub()
                self._pubsub.subscribe(*channels)
                self._subscribed |= channels
                return True  # not listening until now: items may have come meanwhile
            due = self._due(names)
            if due is not None:
                if due <= 0:
                    return True
                timeout = min(timeout, due)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
                if message is not None and _text(message.get("channel")) in channels:
                    return True
            return due is not None and due <= timeout
        except redis.RedisError as exc:
            self.close()
            raise BackendUnavailableError(f"wait_for_items on {self.url} failed: {exc}") from exc

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = set()
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # already broken: nothing left to release
                logger.debug("closing the subscription failed", exc_info=True)

    def forget(self) -> None:
        """In a forked child: drop the parent's subscription without touching its socket."""
        self._pubsub = None
        self._subscribed = set()


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else None
