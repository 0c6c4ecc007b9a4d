"""procrastinate on PostgreSQL, drained by its own worker.

What is measured is procrastinate as an application runs it: ``drain`` calls
``App.run_worker_async(wait=False)``, the worker procrastinate's CI benchmark
uses, which fetches one job per call to ``procrastinate_fetch_job_v2`` (a
PL/pgSQL function with ``FOR UPDATE SKIP LOCKED``), runs the task and ends it
with ``procrastinate_finish_job_v1``, then stops once a fetch comes back
empty. procrastinate has no batched fetch, so only claim batch 1 is offered.
Enqueue is ``defer_async`` per job or ``batch_defer_async`` per chunk. A job
is done when ``finish_job`` has deleted it, so the drain's last completion is
timed there, one round trip after the handler returned.

Why the settings are fair:

* The connector is procrastinate's ``PsycopgConnector`` (psycopg 3 async
  pool, its defaults), on the server's durable commit settings.
* ``concurrency=1`` (its default): one job in flight per process, the same
  budget as a plain claim-run-delete loop. The task is ``async def`` so the
  no-op does not pay a thread hop that a sync task would.
* ``delete_jobs="always"``: procrastinate keeps finished jobs by default
  (``never``); deleting them is its own option and matches a queue that
  deletes on ack. Each job still writes ``procrastinate_events`` rows from
  triggers (deferred, started, succeeded) until the job row is deleted.
* ``listen_notify=False``: with ``wait=False`` the worker never waits for a
  notification, so the LISTEN connection would be opened for nothing. The
  fetch polling interval does not apply for the same reason.
* Signal handlers are not installed: the harness owns the process's signals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, cast

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate.jobs import Job, Status
from procrastinate.manager import JobManager
from procrastinate.types import JSONDict

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)

logging.getLogger("procrastinate").setLevel(logging.WARNING)


class _TimedJobManager(JobManager):
    """procrastinate's job manager, remembering when a job was last finished."""

    finished_at: float = 0.0

    async def finish_job(self, job: Job, status: Status, delete_job: bool) -> None:
        await super().finish_job(job, status, delete_job)
        self.finished_at = time.monotonic()


class Procrastinate(System):
    label = "procrastinate"
    family = "postgresql"
    batches = (1,)
    settings: ClassVar[str] = (
        "psycopg 3 async pool, run_worker_async(wait=False), concurrency 1, "
        'async task, delete_jobs="always", listen_notify off, batch_defer_async for bulk'
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.counter = Counter()
        self.app = App(connector=PsycopgConnector(conninfo=url))
        self.jobs = _TimedJobManager(connector=self.app.connector)
        self.app.job_manager = self.jobs

        @self.app.task(name="noop", queue=QUEUE)
        async def noop(**payload: Any) -> None:
            self.counter()

        self.task = noop
        self.runner = asyncio.Runner()
        # The pool lives on this one loop for the object's life.
        self.runner.run(self._open())
        self._sql: psycopg.Connection[Any] | None = None

    async def _open(self) -> None:
        await self.app.open_async()

    @property
    def sql(self) -> psycopg.Connection[Any]:
        """A plain connection of our own, for schema, cleanup and counting."""
        if self._sql is None:
            self._sql = psycopg.connect(self.url, autocommit=True)
        return self._sql

    def reset(self) -> None:
        exists = self.sql.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if exists is None or exists[0] is None:
            self.runner.run(self.app.schema_manager.apply_schema_async())
        self.sql.execute(f"TRUNCATE {', '.join(TABLES)}")

    def enqueue(self, count: int, batch: int) -> None:
        self.runner.run(self._enqueue(count, batch))

    async def _enqueue(self, count: int, batch: int) -> None:
        task, payload = self.task, cast(JSONDict, PAYLOAD)
        if batch == 1:
            for _ in range(count):
                await task.defer_async(**payload)
            return
        for start in range(0, count, batch):
            await task.batch_defer_async(*[payload] * min(batch, count - start))

    def drain(self, batch: int) -> Drained:
        self.counter = Counter()
        self.runner.run(
            self.app.run_worker_async(
                queues=[QUEUE],
                wait=False,
                concurrency=1,
                delete_jobs="always",
                listen_notify=False,
                install_signal_handlers=False,
            )
        )
        drained = self.counter.drained()
        if drained.count:
            drained.last = self.jobs.finished_at
        return drained

    def remaining(self) -> int:
        row = self.sql.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.runner.run(self.app.close_async())
        self.runner.close()
        if self._sql is not None:
            self._sql.close()
