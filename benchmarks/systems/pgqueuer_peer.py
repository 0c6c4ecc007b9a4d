"""pgqueuer on PostgreSQL, driven through its own ``QueueManager``.

What is measured is pgqueuer as an application runs it: ``drain`` registers a
no-op entrypoint and runs ``QueueManager.run`` in ``QueueExecutionMode.drain``,
which claims up to ``batch_size`` jobs per statement (``FOR UPDATE SKIP
LOCKED``), dispatches each as an asyncio task, buffers completions and flushes
them as one ``DELETE`` plus one insert into ``pgqueuer_log`` per flush. A job
is done when that flush commits, so the drain's last completion is the end of
the last flush, not the handler call.

Why the settings are fair:

* The driver is one asyncpg connection per process, what pgqueuer's own
  benchmark uses (``apg``), and the tables are installed with pgqueuer's
  default durability (``durable``: every table logged); the server's
  ``synchronous_commit`` is left alone.
* ``batch_size`` is the harness's claim batch (1 or 100); the completion
  buffer follows it, as pgqueuer sizes it from ``batch_size`` itself.
* ``max_concurrent_tasks`` is left unlimited, pgqueuer's default. Its floor
  is 2 x ``batch_size``, so it cannot express "one job in flight" anyway; a
  cap adds a per-worker budget check to every claim and keeps the worker at
  capacity until the completion buffer flushes (measured here: about 0.6x at
  batch 1, no gain at batch 100). The handler is a no-op, so about one claimed
  batch is in flight at a time either way.
* ``dequeue_timeout`` is lowered from 30 s to 0.1 s: in drain mode it is only
  the wait for a notification once the queue is empty and the last tasks are
  still finishing, pure idle time before the worker notices it is done.
* Completed jobs are deleted from ``pgqueuer`` by design; pgqueuer also keeps
  one ``pgqueuer_log`` row per finished job (folded into
  ``pgqueuer_statistics`` by a periodic task), which is part of its cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import ClassVar

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
from pgqueuer.domain import models, types

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

# In drain mode this only bounds the idle wait once the queue is empty.
DEQUEUE_TIMEOUT = timedelta(seconds=0.1)

logging.getLogger("pgqueuer").setLevel(logging.WARNING)


class _TimedQueries(Queries):
    """pgqueuer's queries, remembering when completions were last committed.

    A job counts as completed when its row is deleted, which pgqueuer does in
    a buffered flush after the handler returned; timing the handler would
    report completions up to one flush interval early.
    """

    flushed_at: float = 0.0

    async def log_jobs(
        self,
        job_status: list[tuple[models.Job, types.JOB_STATUS, models.TracebackRecord | None]],
    ) -> None:
        await super().log_jobs(job_status)
        self.flushed_at = time.monotonic()


class PgQueuer(System):
    label = "pgqueuer"
    family = "postgresql"
    batches = (1, 100)
    settings: ClassVar[str] = (
        "asyncpg (1 connection), QueueManager drain mode, batch_size=B, "
        "max_concurrent_tasks unlimited (default), dequeue_timeout=0.1 s, "
        "durable tables; deletes done jobs but logs each to pgqueuer_log"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.runner = asyncio.Runner()
        # One loop for the object's life: the asyncpg connection is bound to it.
        self.connection: asyncpg.Connection = self.runner.run(asyncpg.connect(url))
        self.queries = _TimedQueries(AsyncpgDriver(self.connection))
        self.payload = json.dumps(PAYLOAD).encode()
        settings = self.queries.qbe.settings
        self.tables = (settings.queue_table, settings.queue_table_log, settings.statistics_table)

    def reset(self) -> None:
        self.runner.run(self._reset())

    async def _reset(self) -> None:
        if not await self.queries.schema_is_installed():
            await self.queries.install()
        await self.connection.execute(f"TRUNCATE {', '.join(self.tables)}")

    def enqueue(self, count: int, batch: int) -> None:
        self.runner.run(self._enqueue(count, batch))

    async def _enqueue(self, count: int, batch: int) -> None:
        queries, payload = self.queries, self.payload
        if batch == 1:
            for _ in range(count):
                await queries.enqueue(QUEUE, payload)
            return
        for start in range(0, count, batch):
            n = min(batch, count - start)
            await queries.enqueue([QUEUE] * n, [payload] * n, [0] * n)

    def drain(self, batch: int) -> Drained:
        return self.runner.run(self._drain(batch))

    async def _drain(self, batch: int) -> Drained:
        counter = Counter()
        manager = QueueManager(self.queries)

        @manager.entrypoint(QUEUE)
        async def noop(job: Job) -> None:
            counter()

        await manager.run(
            batch_size=batch,
            mode=types.QueueExecutionMode.drain,
            dequeue_timeout=DEQUEUE_TIMEOUT,
        )
        drained = counter.drained()
        if drained.count:
            drained.last = self.queries.flushed_at
        return drained

    def remaining(self) -> int:
        # Queued and picked rows alike: a finished job's row is gone.
        query = f"SELECT count(*) FROM {self.tables[0]}"
        count: int = self.runner.run(self.connection.fetchval(query))
        return count

    def close(self) -> None:
        self.runner.run(self.connection.close())
        self.runner.close()
