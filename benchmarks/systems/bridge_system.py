"""bridge itself, through the public facade, on each backend.

The drain loop is what an application writes against the API: claim under a
60 s lease, run the (no-op) handler, delete. Batch 1 is what bridge's runner
does: the delete of each finished item and the claim of the next go as one
``settle_and_claim`` call (one round trip, one commit, where the store can);
a larger batch uses ``claim_items(n)`` / ``delete_items``.
Enqueue uses ``create_item`` per job or ``create_items`` per batch.
Every backend runs with its defaults: the SQL table is durable (PostgreSQL
and MariaDB commit each call, SQLite in WAL with ``synchronous=NORMAL``),
RabbitMQ queues are durable with persistent messages.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import bridge
from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System
from bridge import Settlement

LEASE = 60.0
RABBITMQ_QUEUE_TYPE = os.environ.get("BRIDGE_BENCH_RABBITMQ_QUEUE_TYPE", "classic")


class _Bridge(System):
    batches = (1, 100)
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, url: str) -> None:
        super().__init__(url)
        factory = bridge.QueueFactory(
            default={"url": self.bridge_url(url), "options": self.options}
        )
        self.queue = factory.get(QUEUE)
        self.queue.number_of_items()  # connect now, before the harness starts the clock

    def bridge_url(self, url: str) -> str:
        return url

    def reset(self) -> None:
        self.queue.create_queue()
        self.queue.delete_queue()
        self.queue.create_queue()

    def enqueue(self, count: int, batch: int) -> None:
        queue = self.queue
        if batch == 1:
            for _ in range(count):
                queue.create_item(PAYLOAD)
            return
        for start in range(0, count, batch):
            queue.create_items([PAYLOAD] * min(batch, count - start))

    def drain(self, batch: int) -> Drained:
        queue, done = self.queue, Counter()
        if batch == 1:
            claimed = queue.claim_items(1, LEASE)
            while claimed:
                _, claimed = queue.settle_and_claim(Settlement.delete(claimed[0]), 1, LEASE)
                done()
        else:
            while items := queue.claim_items(batch, LEASE):
                queue.delete_items(items)
                done(len(items))
        return done.drained()

    def remaining(self) -> int:
        return self.queue.number_of_items()

    def close(self) -> None:
        self.queue.backend.close()


class BridgePostgres(_Bridge):
    label = "bridge"
    family = "postgresql"
    settings = "psycopg 3, autocommit, durable commits"
    options: ClassVar[dict[str, Any]] = {"table": "bridge_bench"}


class BridgeSqlite(_Bridge):
    label = "bridge"
    family = "sqlite"
    settings = "WAL, synchronous=NORMAL (the default)"


class BridgeMariadb(_Bridge):
    label = "bridge"
    family = "mariadb"
    settings = "PyMySQL, READ COMMITTED, InnoDB durable commits"
    options: ClassVar[dict[str, Any]] = {"table": "bridge_bench"}


class BridgeRedis(_Bridge):
    label = "bridge"
    family = "redis"
    settings = "redis-py, one Lua script per call"
    options: ClassVar[dict[str, Any]] = {"key_prefix": "bridge_bench"}


class BridgeRabbitmq(_Bridge):
    label = "bridge"
    family = "rabbitmq"
    # Classic, as the raw loops and Celery declare theirs, so that the ratios
    # compare like with like; bridge's default quorum queue costs several
    # times as much per claim and delete (docs/rabbitmq.md).
    # BRIDGE_BENCH_RABBITMQ_QUEUE_TYPE=quorum runs bridge and the raw Kombu
    # loops on quorum queues instead (Celery's stay classic).
    settings = (
        f"amqp, {RABBITMQ_QUEUE_TYPE} durable queue (queue_type={RABBITMQ_QUEUE_TYPE!r}), "
        "persistent messages; a claim fetches one message (basic.get) and a consumer "
        "(basic.consume, prefetch = the claim's count) takes the rest and the next "
        "after each settle_and_claim"
    )
    options: ClassVar[dict[str, Any]] = {"queue_type": RABBITMQ_QUEUE_TYPE}

    def reset(self) -> None:
        self.queue.delete_queue()
        self.queue.create_queue()
