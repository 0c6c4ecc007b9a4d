"""RQ 3 with its in-process ``SimpleWorker``, the fastest worker RQ ships.

What is measured: ``SimpleWorker(...).work(burst=True)`` in the drain
process. It runs each job in that process (the default ``Worker`` forks a
work horse per job: 53 against 240 jobs/s in performance.md's local run)
and returns when its queue is empty, so four drain processes are four RQ
workers racing on one list. A job is ``run_job(PAYLOAD)``: it only counts.

Why it is fair: one job in flight per process, as in bridge's loop; no
result kept (``result_ttl=0``, RQ deletes the job hash on success, the
closest it has to bridge's delete), so RQ does its own bookkeeping (worker
registration and heartbeats, the started registry, the intermediate list,
the job's status writes) and nothing more. ``failure_ttl`` is RQ's default;
no job fails. RQ logs at WARNING, so no per-job log line is formatted.
RQ's nearest thing to a lease is the started registry: an entry's score is
its deadline (job timeout + 60 s, 240 s by default), after which RQ's periodic
cleanup treats a dead worker's job as abandoned.

The counter is called inside the job, so a process's last completion time is
taken just before RQ's end-of-job writes for that job.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.registry import StartedJobRegistry

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

# RQ resolves a job's function by import path, so the handler and its counter
# live at module level; each drain process has its own.
_counter = Counter()


def run_job(payload: dict[str, Any]) -> None:
    _counter()


class RqSimpleWorker(System):
    label = "rq (SimpleWorker)"
    family = "redis"
    batches = (1,)
    settings = (
        "rq 3.0 SimpleWorker.work(burst=True) in-process, 1 job in flight per process, "
        "result_ttl=0, failure_ttl default, logging WARNING, no scheduler; "
        "enqueue batch>1 = enqueue_many on one pipeline per batch"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = redis.Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.client)

    def reset(self) -> None:
        # RQ spreads jobs, registries and worker records over many keys, all
        # under "rq:"; other systems share db 9, so only those go.
        keys = list(self.client.scan_iter(match="rq:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.unlink(*keys[start : start + 1000])

    def enqueue(self, count: int, batch: int) -> None:
        queue = self.queue
        if batch == 1:
            for _ in range(count):
                queue.enqueue(run_job, PAYLOAD, result_ttl=0)
            return
        for start in range(0, count, batch):
            n = min(batch, count - start)
            jobs = [Queue.prepare_data(run_job, (PAYLOAD,), result_ttl=0) for _ in range(n)]
            with self.client.pipeline() as pipe:
                queue.enqueue_many(jobs, pipeline=pipe)
                pipe.execute()

    def drain(self, batch: int) -> Drained:
        global _counter
        _counter = Counter()
        worker = SimpleWorker([self.queue], connection=self.client)
        worker.work(burst=True, logging_level="WARNING")
        return _counter.drained()

    def remaining(self) -> int:
        # Queued, moved to the intermediate list by a dequeue, or started.
        queue = self.queue
        started = StartedJobRegistry(queue=queue).key
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(queue.key)
        pipe.llen(queue.intermediate_queue_key)
        pipe.zcard(started)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        self.client.close()
