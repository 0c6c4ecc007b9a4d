"""huey on SQLite (``SqliteHuey``) and on Redis (``RedisHuey``).

What is measured is huey's worker hot path. The ``Consumer`` runs until a
signal and cannot stop when the queue is empty, so ``drain`` drives the
consumer's own ``Worker`` object instead: ``Worker.loop()`` is exactly what a
consumer worker thread repeats (``huey.dequeue()`` then ``huey.execute()``:
the revocation check, the task, the revoke-flag cleanup, result handling),
only without the supervising main thread and the scheduler thread, which do
no per-job work. The loop stops once a pass dequeued nothing and huey's own
``pending_count()`` is 0 (a pass can come back empty on a transient storage
error, which the worker logs and backs off from). huey has no bulk enqueue:
``enqueue`` calls the task once per job whatever the batch, and only claim
batch 1 exists.

Semantics differ from a leased queue and the report should say so: huey's
dequeue is destructive (SQLite deletes the row in the claiming transaction,
Redis pops the list), so a job is gone before it runs: at-most-once, with no
ack. ``remaining()`` therefore counts jobs not yet dequeued.

Why the settings are fair:

* ``results=False``: no result store, as for every other system.
* One worker, one job in flight per process (the consumer's ``-w 1``).
* SQLite: huey's defaults (WAL, 5 s busy timeout, ``begin exclusive``
  claims) except ``synchronous``: huey leaves SQLite's ``FULL`` in place and
  only offers ``fsync=False`` (``OFF``). The harness compares every SQLite
  system at WAL + ``synchronous=NORMAL`` (bridge's default), so the adapter
  sets ``NORMAL`` on huey's connection; ``SYNCHRONOUS`` below is the switch
  for the ``FULL`` cell.
* Redis: huey's default blocking ``BRPOP`` dequeue, with ``read_timeout``
  lowered from 1 s to 0.1 s: it only matters once the list is empty, as the
  idle wait before the worker notices it is done.
* The worker's empty-queue back-off keeps the consumer default (0.1 s); it is
  likewise only paid once, after the last job.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import redis
from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Worker

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

# huey's consumer defaults for the worker's back-off when the queue is empty.
INITIAL_DELAY = 0.1
MAX_DELAY = 10.0
BACKOFF = 1.15

logging.getLogger("huey").setLevel(logging.WARNING)


class _Huey(System):
    batches = (1,)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.counter = Counter()
        self.huey = self.make_huey(url)

        def noop(**payload: Any) -> None:
            self.counter()

        # The task's registered name is module + function name, the same in
        # every process, so workers resolve what the control process queued.
        self.task: Any = self.huey.task()(noop)

    def make_huey(self, url: str) -> Huey:
        raise NotImplementedError

    def reset(self) -> None:
        # Storage creates its schema on construction; flush empties queue,
        # schedule, results and counters.
        self.huey.flush()

    def enqueue(self, count: int, batch: int) -> None:
        # No bulk API in huey: one enqueue per job whatever the batch.
        task = self.task
        for _ in range(count):
            task(**PAYLOAD)

    def drain(self, batch: int) -> Drained:
        self.counter = Counter()
        worker = Worker(self.huey, threading.Event(), INITIAL_DELAY, MAX_DELAY, BACKOFF)
        worker.initialize()
        try:
            while True:
                before = worker.task_count
                worker.loop()
                if worker.task_count == before and self.huey.pending_count() == 0:
                    break
        finally:
            worker.shutdown()
        return self.counter.drained()


class HueySqlite(_Huey):
    label = "huey (SqliteHuey)"
    family = "sqlite"
    settings: ClassVar[str] = (
        "consumer Worker.loop() in-process (Consumer cannot stop when empty), 1 worker, "
        "results=False, WAL, synchronous=NORMAL (huey leaves FULL), destructive dequeue "
        "(at-most-once), no bulk enqueue"
    )
    #: NORMAL matches the other SQLite systems; "FULL" is huey's own default.
    SYNCHRONOUS: ClassVar[str] = "NORMAL"

    def make_huey(self, url: str) -> Huey:
        self.path = Path(url.removeprefix("sqlite:///"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(name=QUEUE, filename=str(self.path), results=False)
        # huey keeps one connection per storage and opens it lazily; setting
        # the pragma on it now covers every statement this object runs.
        huey.storage.conn.execute(f"PRAGMA synchronous={self.SYNCHRONOUS}")
        return huey

    def remaining(self) -> int:
        with closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute("SELECT count(*) FROM task WHERE queue = ?", (QUEUE,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self.huey.storage.close()


class HueyRedis(_Huey):
    label = "huey (RedisHuey)"
    family = "redis"
    settings: ClassVar[str] = (
        "consumer Worker.loop() in-process (Consumer cannot stop when empty), 1 worker, "
        "results=False, blocking BRPOP with read_timeout=0.1 s, destructive dequeue "
        "(at-most-once), no bulk enqueue"
    )

    def make_huey(self, url: str) -> Huey:
        huey = RedisHuey(name=QUEUE, url=url, results=False, read_timeout=0.1)
        self.redis = redis.Redis.from_url(url)
        self.queue_key: str = huey.storage.queue_key
        return huey

    def remaining(self) -> int:
        return int(self.redis.llen(self.queue_key))

    def close(self) -> None:
        self.redis.close()
        self.huey.storage.pool.disconnect()
