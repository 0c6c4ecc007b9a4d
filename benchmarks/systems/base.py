"""What every system under test provides to the harness.

A *system* is one queue implementation on one service: bridge on PostgreSQL,
pgqueuer, Celery on ``sqla+sqlite``, a raw Lua loop on Redis. The harness
never imports one: it starts ``python -m benchmarks.child`` for every role
(reset, enqueue, drain, remaining), so each system runs in processes of its
own, with its own event loop, threads or worker model, and a peer's import
side effects never touch another's numbers.

The contract is deliberately the smallest that supports the scenarios:

* ``reset()`` empties the system's queue (and creates its schema).
* ``enqueue(count, batch)`` adds ``count`` no-op jobs, ``batch`` per call
  (``batch == 1`` means one call per job: the system's single-enqueue path).
* ``drain(batch)`` claims and completes jobs until the queue is empty and
  returns how many this process completed and the ``time.monotonic()`` of
  the last completion (monotonic time is one clock for every process on
  Linux). Completion means what the system calls done: deleted, acked, or
  marked finished, with the system's at-least-once settings on.
* ``remaining()`` counts the jobs still queued, leased or unfinished, read
  with the system's own storage but not through its worker machinery; the
  harness checks it is 0 after every drain.

A job's payload is ``PAYLOAD`` (about 100 bytes of JSON), and the handler
does nothing but count. Systems declare the claim batch sizes they support;
the harness runs a batched cell only for systems that have one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

PAYLOAD = {"kind": "noop", "customer": 4711, "note": "x" * 48, "tags": ["bench", "bridge"]}
QUEUE = "bench"


@dataclass
class Drained:
    count: int
    last: float  # time.monotonic() of the last completion; 0.0 when none


class System:
    """Base class for an adapter; subclasses override the four operations."""

    #: Label in the tables, e.g. "pgqueuer" or "celery sqla+sqlite".
    label: ClassVar[str]
    #: The service: postgresql, sqlite, mariadb, redis or rabbitmq.
    family: ClassVar[str]
    #: Claim batch sizes ``drain`` honours; 1 means one job per claim.
    batches: ClassVar[tuple[int, ...]] = (1,)
    #: How the system was set up, one line for the report (pool, prefetch, ...).
    settings: ClassVar[str] = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        raise NotImplementedError

    def enqueue(self, count: int, batch: int) -> None:
        raise NotImplementedError

    def drain(self, batch: int) -> Drained:
        raise NotImplementedError

    def remaining(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called once at the end of every role."""


class Counter:
    """The handler's only work: count completions and remember the last one."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    def __call__(self, n: int = 1) -> None:
        self.count += n
        self.last = time.monotonic()

    def drained(self) -> Drained:
        return Drained(self.count, self.last)
