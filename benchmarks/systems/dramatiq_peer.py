"""Dramatiq 2 on its Redis broker, with an in-process ``Worker`` of one thread.

What is measured: a ``dramatiq.Worker`` started in the drain process with
``worker_threads=1``, so one job runs at a time per process, as in bridge's
loop (four drain processes are four such workers). Dramatiq still runs its
consumer thread beside it, which fetches ahead up to its default
``queue_prefetch`` of 2 x threads = 2 messages with one call of its
``dispatch`` Lua script (LPOP + SADD to the worker's ack set + HMGET), and
acks each message with another (SREM + HDEL). The drain ends when
``broker.join`` sees the queue's message hash empty: every message acked by
some worker, nothing in flight anywhere (with a guard: 30 s without a
single ack anywhere raises instead of waiting). Then the worker is stopped.

Why it is fair: dramatiq's own defaults (default middleware: AgeLimit,
TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries; no Results
middleware, so no result is written), its ack-after-run at-least-once
model, and one job executing per process. It has no lease: unacked
messages of a worker whose heartbeat stops come back through the broker's
occasional maintenance. The consumer thread's prefetch of 2 is pipelining
bridge's loop does not get; it is what dramatiq does with one thread. The
other side of it: whenever those 2 are outstanding, the consumer sleeps an
exponential backoff (5-10 ms, doubling) before it fetches again, and that
sleep, not Redis, sets the pace of a one-thread worker. Both are dramatiq's
shipped behaviour and are left alone (a larger ``queue_prefetch`` would
hide the sleep but hold more jobs claimed per process than bridge does).

Enqueue: ``actor.send`` per job. The Redis broker has no bulk enqueue and
no way to put its dispatch script on a pipeline, so batch > 1 is the same
loop of sends.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import QueueJoinTimeout

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

NAMESPACE = "dramatiq"
STALL_MS = 30_000

# The actor's function is looked up by name inside this process; its counter
# is per process.
_counter = Counter()


def run_job(payload: dict[str, Any]) -> None:
    _counter()


class DramatiqRedis(System):
    label = "dramatiq redis"
    family = "redis"
    batches = (1,)
    settings = (
        "dramatiq 2.2 RedisBroker, in-process Worker worker_threads=1 (1 job running per "
        "process), queue_prefetch default 2, worker_timeout default 1000 ms, default "
        "middleware, no Results; stop = broker.join(interval 20 ms) then worker.stop(); "
        "enqueue = actor.send per job (no bulk or pipeline path)"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.broker = RedisBroker(url=url, namespace=NAMESPACE)
        self.actor = dramatiq.actor(actor_name="bench_noop", queue_name=QUEUE, broker=self.broker)(
            run_job
        )
        self.client = redis.Redis.from_url(url)
        # The drain starts on a signal: open the broker's connection now.
        self.broker.client.ping()

    def reset(self) -> None:
        # Queue list, message hash, ack sets, heartbeats, dead letters: all
        # under the namespace; other systems share db 9, so only those go.
        keys = list(self.client.scan_iter(match=f"{NAMESPACE}:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.unlink(*keys[start : start + 1000])

    def enqueue(self, count: int, batch: int) -> None:
        send = self.actor.send
        for _ in range(count):
            send(PAYLOAD)

    def drain(self, batch: int) -> Drained:
        global _counter
        _counter = Counter()
        worker = dramatiq.Worker(self.broker, worker_threads=1)
        worker.start()
        try:
            self._join()
        finally:
            worker.stop()
        return _counter.drained()

    def _join(self) -> None:
        # broker.join returns when the message hash is empty: every message
        # acked, by this process or another. It would wait forever on the
        # messages of a drain process that died, so it runs in slices and
        # gives up when a whole slice passed without one ack anywhere.
        messages = f"{NAMESPACE}:{QUEUE}.msgs"
        before = self.client.hlen(messages)
        while True:
            try:
                self.broker.join(QUEUE, interval=20, timeout=STALL_MS)
                return
            except QueueJoinTimeout:
                now = self.client.hlen(messages)
                if now >= before:
                    raise RuntimeError(
                        f"dramatiq: {now} messages unacked and no ack for {STALL_MS} ms"
                    ) from None
                before = now

    def remaining(self) -> int:
        # Queued ids plus the ids every worker has fetched but not acked.
        client = self.client
        acks = list(client.scan_iter(match=f"{NAMESPACE}:__acks__.*.{QUEUE}", count=1000))
        pipe = client.pipeline(transaction=False)
        pipe.llen(f"{NAMESPACE}:{QUEUE}")
        for key in acks:
            pipe.scard(key)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        self.broker.close()
        self.client.close()
