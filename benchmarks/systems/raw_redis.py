"""The ceiling for bridge's Redis backend: the same server-side work, no library around it.

What is measured: bridge's Redis semantics and key layout, driven by the
thinnest Python loop that redis-py allows. Three Lua scripts, loaded once
per process and called with ``EVALSHA``:

* create: one call per batch. It checks and rewrites the producer's
  last-batch record (bridge's retry dedupe), takes ids from the queue's
  counter, writes payload and creation time into the items hash and adds
  the ids to the ready zset with score 0 (priority 0).
* claim: one call per claim of up to ``batch`` items. It reads the server
  clock, moves ended leases and ended delays back to ready (up to
  max(count, 1000) of each, as bridge does), ZPOPMINs ready, reads payload,
  creation time and attempts, writes attempts and the claim's token, adds
  the ids to the leased zset at now + lease, and returns the same reply
  shape as bridge (lease end, then id, payload, created, attempts, priority).
* delete: one call per claim. For each id it checks the token (the fence
  that makes a late delete of a re-leased item a no-op), then HDELs the five
  fields and ZREMs the ids from leased and from ready.

Why this is fair: these are the Redis commands bridge's ``CLAIM``,
``DELETE`` and ``CREATE`` scripts run for a priority-0, undelayed item,
written independently and not imported from bridge, so ``bridge / raw``
measures bridge's Python layers (the facade, codec, item objects, error
mapping, ``secrets`` tokens) and nothing on the server. Unlike a peer, the
loop decodes no payload: the handler only counts. Redis Cluster slicing of
long argument lists is left out because claims here are at most 100 items.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import redis

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

LEASE_MICROS = 30_000_000  # bridge's default lease_time, 30 s
PROMOTE_LIMIT = 1000
BATCH_RECORD_SECONDS = 600

# Numbers go to redis.call as '%d' strings: a bare Lua number is printed
# with %.17g by Redis, which costs more than the rest of a small claim.
_COMMON = """
local function clock()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end
local function str(n) return string.format('%d', n) end
"""

_CREATE = _COMMON + """
-- KEYS ready leased delayed items ids record; ARGV batch-id, payload...
local seen = redis.call('GET', KEYS[6])
if seen then
  local batch, first = string.match(seen, '^(%S+) (%d+)$')
  if batch == ARGV[1] then return tonumber(first) end
end
local n = #ARGV - 1
local first = redis.call('INCRBY', KEYS[5], n) - n + 1
local created = str(clock())
local hash, ready = {}, {}
for i = 1, n do
  local id = string.format('%016d', first + i - 1)
  hash[#hash + 1] = id
  hash[#hash + 1] = ARGV[i + 1]
  hash[#hash + 1] = id .. ':c'
  hash[#hash + 1] = created
  ready[#ready + 1] = '0'
  ready[#ready + 1] = id
end
redis.call('HSET', KEYS[4], unpack(hash))
redis.call('ZADD', KEYS[1], unpack(ready))
redis.call('SET', KEYS[6], ARGV[1] .. ' ' .. str(first), 'EX', '$KEEP')
return first
""".replace("$KEEP", str(BATCH_RECORD_SECONDS))

_CLAIM = _COMMON + """
-- KEYS ready leased delayed items; ARGV count, lease (us), token
local now = clock()
local upto, cap = str(now), str(math.max(tonumber(ARGV[1]), $LIMIT))
-- Lease expiry is what makes the queue at-least-once: a dead claimer's
-- items are put back at their place before anything is taken.
for _, from in ipairs({KEYS[2], KEYS[3]}) do
  local due = redis.call('ZRANGE', from, '-inf', upto, 'BYSCORE', 'LIMIT', '0', cap)
  if #due > 0 then
    local back = {}
    for _, id in ipairs(due) do
      back[#back + 1] = redis.call('HGET', KEYS[4], id .. ':p') or '0'
      back[#back + 1] = id
    end
    redis.call('ZADD', KEYS[1], unpack(back))
    redis.call('ZREM', from, unpack(due))
  end
end
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
if #popped == 0 then return {} end
local until_ = str(now + tonumber(ARGV[2]))
local reply, leased = {until_}, {}
for i = 1, #popped, 2 do
  local id = popped[i]
  local row = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a')
  if row[1] then
    local attempt = (tonumber(row[3]) or 0) + 1
    redis.call('HSET', KEYS[4], id .. ':a', str(attempt), id .. ':t', ARGV[3])
    leased[#leased + 1] = until_
    leased[#leased + 1] = id
    reply[#reply + 1] = id
    reply[#reply + 1] = row[1]
    reply[#reply + 1] = row[2]
    reply[#reply + 1] = attempt
    reply[#reply + 1] = 0 - tonumber(popped[i + 1])
  end
end
if #leased > 0 then redis.call('ZADD', KEYS[2], unpack(leased)) end
return reply
""".replace("$LIMIT", str(PROMOTE_LIMIT))

_DELETE = """
-- KEYS ready leased delayed items; ARGV id, token, id, token...
local ids, fields = {}, {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[4], id .. ':t') == ARGV[i + 1] then
    ids[#ids + 1] = id
    for _, f in ipairs({'', ':c', ':p', ':a', ':t'}) do fields[#fields + 1] = id .. f end
  end
end
if #ids == 0 then return 0 end
redis.call('HDEL', KEYS[4], unpack(fields))
-- A lease that ran out may have been moved back to ready by a claim.
redis.call('ZREM', KEYS[2], unpack(ids))
redis.call('ZREM', KEYS[1], unpack(ids))
return #ids
"""


class RawRedis(System):
    label = "raw Lua loop"
    family = "redis"
    batches = (1, 100)
    settings = (
        "redis-py, no hiredis, EVALSHA of 3 hand-written scripts mirroring bridge's "
        "create/claim/delete (token fence, attempts, lease+delay promotion, batch record); "
        "lease 30 s; claim N + one delete script per claim; enqueue batch = one script call; "
        "payload not decoded"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = redis.Redis.from_url(url)
        base = f"raw:{{{QUEUE}}}"
        self.keys = (f"{base}:ready", f"{base}:leased", f"{base}:delayed", f"{base}:items")
        self.ids_key = f"{base}:ids"
        # One producer record per process, as bridge keys it per producer.
        self.record_key = f"{base}:producer:{secrets.token_hex(6)}"
        self.body = json.dumps(PAYLOAD).encode()
        load = self.client.script_load
        self.create_sha = load(_CREATE)
        self.claim_sha = load(_CLAIM)
        self.delete_sha = load(_DELETE)
        # Tokens need only be unique per claim: a process prefix and a counter
        # do that without a syscall per claim.
        self.token_prefix = secrets.token_hex(4)
        self.serial = itertools.count()

    def reset(self) -> None:
        # Only this system's keys: db 9 is shared by every Redis system.
        doomed = [*self.keys, self.ids_key]
        doomed += self.client.scan_iter(match=f"raw:{{{QUEUE}}}:producer:*", count=1000)
        self.client.unlink(*doomed)

    def enqueue(self, count: int, batch: int) -> None:
        evalsha, sha = self.client.evalsha, self.create_sha
        keys = (*self.keys, self.ids_key, self.record_key)
        body, prefix = self.body, self.token_prefix
        for start in range(0, count, batch):
            n = min(batch, count - start)
            evalsha(sha, 6, *keys, f"{prefix}{next(self.serial):08x}", *([body] * n))

    def drain(self, batch: int) -> Drained:
        counter = Counter()
        evalsha, keys = self.client.evalsha, self.keys
        claim_sha, delete_sha = self.claim_sha, self.delete_sha
        lease, prefix, serial = str(LEASE_MICROS), self.token_prefix, self.serial
        while True:
            token = f"{prefix}{next(serial):08x}"
            reply: list[Any] = evalsha(claim_sha, 4, *keys, batch, lease, token)
            if not reply:
                # Ready is empty; what others still hold they will delete.
                return counter.drained()
            for body in reply[2::5]:
                json.loads(body)  # what a handler is given, as bridge decodes it
            fenced: list[Any] = []
            for item_id in reply[1::5]:
                fenced += (item_id, token)
            deleted = evalsha(delete_sha, 4, *keys, *fenced)
            if deleted:
                counter(int(deleted))

    def remaining(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys[:3]:
            pipe.zcard(key)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        self.client.close()
