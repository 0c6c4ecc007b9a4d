"""The ceiling for bridge's Redis backend: bridge's own scripts, no library around them.

What is measured: the very Lua scripts bridge runs (``CREATE``, ``CLAIM``
and ``DELETE``, imported from :mod:`bridge.backends.redis_scripts`, never
copied) on bridge's key layout (:func:`~bridge.backends.redis_scripts.queue_keys`),
driven by the thinnest Python loop that redis-py allows: each script
loaded once per process and called with ``EVALSHA``.

* create: one call per batch, priority 0 and no delay: the producer's
  last-batch record (bridge's retry dedupe), ids from the queue's counter,
  payload and creation time into the items hash, the ids into ready.
* claim: one call per claim of up to ``batch`` items: the server clock,
  ended leases and delays moved back to ready, ``ZPOPMIN``, each item's
  fields read (its last error among them) and checked, attempts and the
  claim's token written, the ids leased at now + lease.
* delete: one call per claim, every id fenced by its token.

Why this is fair: the server does exactly what it does for bridge, so
``bridge / raw`` measures bridge's Python layers (the facade, item objects,
error mapping, ``secrets`` tokens) and nothing on the server. Both use
redis-py with the hiredis reply parser when it is installed. The loop
decodes each payload with ``json.loads``, as bridge's codec does before a
handler sees it, and then only counts.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import redis

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System
from bridge.backends import redis_scripts

LEASE_MICROS = 30_000_000  # bridge's default lease_time, 30 s
KEY_PREFIX = "raw"  # apart from bridge:redis's keys in the shared database


class RawRedis(System):
    label = "raw Lua loop"
    family = "redis"
    batches = (1, 100)
    settings = (
        "redis-py (hiredis parser, as bridge), EVALSHA of bridge's own create/claim/delete "
        "scripts imported from bridge.backends.redis_scripts; lease 30 s; claim N + one "
        "delete script per claim; enqueue batch = one script call; payload json-decoded"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = redis.Redis.from_url(url)
        self.keys, base = redis_scripts.queue_keys(KEY_PREFIX, QUEUE)
        self.ids_key = f"{base}:ids"
        # One producer record per process, as bridge keys it per producer.
        self.record_key = f"{base}:producer:{secrets.token_hex(6)}"
        self.producer_pattern = f"{base}:producer:*"  # braces are literal in a SCAN glob
        self.body = json.dumps(PAYLOAD).encode()
        load = self.client.script_load
        self.create_sha = load(redis_scripts.CREATE)
        self.claim_sha = load(redis_scripts.CLAIM)
        self.delete_sha = load(redis_scripts.DELETE)
        # Tokens need only be unique per claim: a process prefix and a counter
        # do that without a syscall per claim.
        self.token_prefix = secrets.token_hex(4)
        self.serial = itertools.count()

    def reset(self) -> None:
        # Only this system's keys: db 9 is shared by every Redis system.
        doomed = [*self.keys, self.ids_key]
        doomed += self.client.scan_iter(match=self.producer_pattern, count=1000)
        self.client.unlink(*doomed)

    def enqueue(self, count: int, batch: int) -> None:
        evalsha, sha = self.client.evalsha, self.create_sha
        keys = (*self.keys, self.ids_key, self.record_key)
        body, prefix = self.body, self.token_prefix
        for start in range(0, count, batch):
            n = min(batch, count - start)
            # ARGV: delay (us), -priority, batch id, payloads.
            batch_id = f"{prefix}{next(self.serial):08x}"
            evalsha(sha, len(keys), *keys, "0", "0", batch_id, *([body] * n))

    def drain(self, batch: int) -> Drained:
        counter = Counter()
        evalsha, keys, nkeys = self.client.evalsha, self.keys, len(self.keys)
        claim_sha, delete_sha = self.claim_sha, self.delete_sha
        lease, prefix, serial = str(LEASE_MICROS), self.token_prefix, self.serial
        while True:
            token = f"{prefix}{next(serial):08x}"
            # The reply: the lease end, the notes (of damaged items set aside),
            # then id, created, attempts, priority, payload, last error.
            reply: list[Any] = evalsha(claim_sha, nkeys, *keys, batch, lease, token)
            if not reply:
                # Ready is empty; what others still hold they will delete.
                return counter.drained()
            for body in reply[6::6]:
                json.loads(body)  # what a handler is given, as bridge decodes it
            fenced: list[Any] = []
            for item_id in reply[2::6]:
                # Ids come back as numbers; the scripts store them zero-padded.
                fenced += (f"{item_id:016d}", token)
            deleted = evalsha(delete_sha, nkeys, *keys, *fenced)
            if deleted:
                counter(int(deleted))

    def remaining(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key in (*self.keys[:3], self.keys[4]):
            pipe.zcard(key)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        self.client.close()
