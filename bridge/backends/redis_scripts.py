"""The Redis backend's keys and Lua scripts: every public call is one of these.

Kept apart from ``redis.py`` so that a reader sees every script at once, and
so that the benchmark's raw loop (``benchmarks/systems/raw_redis.py``) runs
these very scripts rather than copies. Each script runs atomically on the
server, reads the server's clock with ``TIME`` (scripts replicate their
effects, so a clock read before a write is allowed and replicas get the
resulting writes, not the script), and takes the queue's keys in the same
order (:func:`queue_keys` builds them):

    KEYS[1] ready    zset  id -> -priority (ties sort by member: the lowest id first)
    KEYS[2] leased   zset  id -> lease end
    KEYS[3] delayed  zset  id -> delay end
    KEYS[4] items    hash  "<id>" payload, "<id>:c" created, "<id>:p" -priority,
                           "<id>:a" attempts, "<id>:t" token of the latest claim

An id is a zero-padded decimal (``%016d``), so that ids of one priority sort
by number. An item is in exactly one of the three zsets, and that zset alone
is its state. Absent ``:p`` and ``:a`` mean 0; an absent ``:t`` means no
claim holds the item.

Who holds an item: ``:t`` is the token of the claim that last took it. The
holder's own release, delay and extend only move the item between the
zsets and keep ``:t``, so (as in Drupal) the holder may go on settling it;
the next claim writes its own token, which fences the old holder out, and
``RELEASE_ALL`` clears every ``:t``.

Times are integer microseconds since the epoch (exact in a Lua number,
which is a double, until the year 2255; with the longest lease added, until
2187), and every number handed to ``redis.call`` is a string made with
``%d``: Redis would otherwise print each Lua number with ``%.17g``, which
costs several microseconds apiece, more than the rest of a claim.
"""

from __future__ import annotations

from bridge.contract import MAX_SECONDS

BATCH_RECORD_SECONDS = 600
"""How long a producer's last batch is remembered, for a retried create_items."""

PROMOTE_LIMIT = 1000
"""Most items a claim moves from leased and from delayed back to ready (at least its count)."""

MAX_MICROS = MAX_SECONDS * 1_000_000
"""The longest lease or delay a script accepts, in the microseconds it counts."""

QueueKeys = tuple[str, str, str, str]
"""ready, leased, delayed, items: every script's first four keys."""


def queue_keys(prefix: str, name: str) -> tuple[QueueKeys, str]:
    """The queue's four script keys and their common base ``prefix:{name}``.

    The name is written with ``%`` as ``%25`` and ``}`` as ``%7D``, so the
    braces enclose all of it: the name is the Redis Cluster hash tag, and
    every key of a queue is in one slot.
    """
    base = f"{prefix}:{{{escape_name(name)}}}"
    return (f"{base}:ready", f"{base}:leased", f"{base}:delayed", f"{base}:items"), base


def escape_name(name: str) -> str:
    """The name as its hash tag: no ``}`` may end the tag early."""
    return name.replace("%", "%25").replace("}", "%7D")


def unescape_name(tag: str) -> str:
    return tag.replace("%7D", "}").replace("%25", "%")


_PRELUDE = """
local function server_now()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end

local function int(x)
  return string.format('%d', x)
end

-- now + a lease or delay. The facade allows at most 2**31-1 s; refusing more
-- here too keeps every deadline an exact integer that '%d' can print (a
-- lease of 9.2e12 s once wrapped around to a deadline in the past).
local function deadline(now, micros)
  local us = tonumber(micros)
  if not us or us < 0 or us > $MAX_MICROS then
    error({err = 'ERR bridge: a lease or delay is 0 to $MAX_MICROS us, not ' .. tostring(micros)})
  end
  return int(now + us)
end

-- Lua's unpack fails beyond about 8000 values: long argument lists go in
-- slices. Returns the sum of the replies (how many were added or removed).
local function call_in_slices(command, key, args)
  local done = 0
  for i = 1, #args, 4000 do
    done = done + redis.call(command, key, unpack(args, i, math.min(i + 3999, #args)))
  end
  return done
end

-- Move up to `limit` items whose lease or delay ended at `upto` or before
-- from `zset` back into ready, at their original place: score -priority.
local function promote(zset, upto, limit)
  local due = redis.call('ZRANGE', zset, '-inf', upto, 'BYSCORE', 'LIMIT', '0', limit)
  if #due == 0 then return end
  local scored = {}
  for _, id in ipairs(due) do
    scored[#scored + 1] = redis.call('HGET', KEYS[4], id .. ':p') or '0'
    scored[#scored + 1] = id
  end
  call_in_slices('ZADD', KEYS[1], scored)
  call_in_slices('ZREM', zset, due)
end

-- Put a held item into `zset` at `score` and out of the other two: its
-- holder's release, delay and extend may follow one another in any order.
local function place(id, zset, score)
  for i = 1, 3 do
    if KEYS[i] ~= zset then redis.call('ZREM', KEYS[i], id) end
  end
  redis.call('ZADD', zset, score, id)
end
"""


def _script(body: str) -> str:
    return (
        (_PRELUDE + body)
        .replace("$LIMIT", str(PROMOTE_LIMIT))
        .replace("$KEEP", str(BATCH_RECORD_SECONDS))
        .replace("$MAX_MICROS", str(MAX_MICROS))
    )


CREATE = _script("""
-- KEYS[5] the queue's id counter, KEYS[6] this producer's last batch.
-- ARGV: delay (us), -priority, batch id, payload... Returns the first id.
-- A batch the producer already wrote (a retry after a lost reply) is
-- answered from the record instead of being written twice.
local batch = ARGV[3]
local record = redis.call('GET', KEYS[6])
if record then
  local seen, first = string.match(record, '^(%S+) (%d+)$')
  if seen == batch then return tonumber(first) end
end
-- The deadline first: a script that fails after a write keeps that write.
local now, score = server_now(), ARGV[2]
local created, zset = int(now), KEYS[1]
if ARGV[1] ~= '0' then zset, score = KEYS[3], deadline(now, ARGV[1]) end
local n = #ARGV - 3
local first = redis.call('INCRBY', KEYS[5], n) - n + 1
local fields, scored = {}, {}
for i = 1, n do
  local id = string.format('%016d', first + i - 1)
  fields[#fields + 1] = id
  fields[#fields + 1] = ARGV[3 + i]
  fields[#fields + 1] = id .. ':c'
  fields[#fields + 1] = created
  if ARGV[2] ~= '0' then
    fields[#fields + 1] = id .. ':p'
    fields[#fields + 1] = ARGV[2]
  end
  scored[#scored + 1] = score
  scored[#scored + 1] = id
end
call_in_slices('HSET', KEYS[4], fields)
call_in_slices('ZADD', zset, scored)
redis.call('SET', KEYS[6], batch .. ' ' .. int(first), 'EX', '$KEEP')
return first
""")

CLAIM = _script("""
-- ARGV: count, lease time (us), token. Returns the lease end, then per item:
-- id, payload, created, attempts, priority.
local count = tonumber(ARGV[1])
local now = server_now()
local expire = deadline(now, ARGV[2])
local limit = int(math.max(count, $LIMIT))
promote(KEYS[2], int(now), limit)
promote(KEYS[3], int(now), limit)
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
if #popped == 0 then return {} end
local out, held = {expire}, {}
for i = 1, #popped, 2 do
  local id = popped[i]
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a')
  if f[1] then
    local attempts = (tonumber(f[3]) or 0) + 1
    -- The new token fences out whoever held the item before.
    redis.call('HSET', KEYS[4], id .. ':a', int(attempts), id .. ':t', ARGV[3])
    held[#held + 1] = expire
    held[#held + 1] = id
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
    out[#out + 1] = attempts
    out[#out + 1] = 0 - tonumber(popped[i + 1])
  end
end
if #held > 0 then call_in_slices('ZADD', KEYS[2], held) end
return out
""")

DELETE = _script("""
-- ARGV: id, token, id, token, ... Deletes the items these claims still hold.
local gone, fields, seen = {}, {}, {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if not seen[id] and redis.call('HGET', KEYS[4], id .. ':t') == ARGV[i + 1] then
    seen[id] = true
    gone[#gone + 1] = id
    for _, suffix in ipairs({'', ':c', ':p', ':a', ':t'}) do
      fields[#fields + 1] = id .. suffix
    end
  end
end
if #gone == 0 then return 0 end
call_in_slices('HDEL', KEYS[4], fields)
-- A held item is mostly leased, so ready and delayed are searched only for
-- the rest: released or delayed by its holder, or moved to ready by a claim
-- after its lease ran out.
local left = #gone
for _, zset in ipairs({KEYS[2], KEYS[1], KEYS[3]}) do
  left = left - call_in_slices('ZREM', zset, gone)
  if left <= 0 then break end
end
return #gone
""")

RELEASE = _script("""
-- ARGV: id, token, delay (us; 0 releases). The claim stays the holder's.
-- Returns the time the item is claimable from, or nil when the claim does
-- not hold the item.
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[4], id .. ':t', id .. ':p')
if f[1] ~= ARGV[2] then return nil end
local now = server_now()
if ARGV[3] == '0' then
  place(id, KEYS[1], f[2] or '0')
  return int(now)
end
local until_ = deadline(now, ARGV[3])
place(id, KEYS[3], until_)
return until_
""")

EXTEND = _script("""
-- ARGV: id, token, lease time (us). Returns the new lease end, or nil if not
-- held. The item may be ready (released, or its lease ran out and a claim
-- moved it) or delayed by its holder: either way it is leased again.
local id = ARGV[1]
if redis.call('HGET', KEYS[4], id .. ':t') ~= ARGV[2] then return nil end
local expire = deadline(server_now(), ARGV[3])
place(id, KEYS[2], expire)
return expire
""")

COUNTS = _script("""
-- Returns ready, leased, delayed at one instant: a lease or delay that has
-- ended counts as ready even before a claim moves the item.
local after = '(' .. int(server_now())
local leased = redis.call('ZCOUNT', KEYS[2], after, '+inf')
local delayed = redis.call('ZCOUNT', KEYS[3], after, '+inf')
local total = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
  + redis.call('ZCARD', KEYS[3])
return {total - leased - delayed, leased, delayed}
""")

PEEK = _script("""
-- ARGV: limit (1 or more). Claimable items in claim order, then the others,
-- soonest claimable first. Per item: id, payload, created, attempts, -priority, expire.
local limit = tonumber(ARGV[1])
local now = int(server_now())
promote(KEYS[2], now, int(math.max(limit, $LIMIT)))
promote(KEYS[3], now, int(math.max(limit, $LIMIT)))
local out = {}
local function add(id, expire)
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a', id .. ':p')
  if f[1] then
    for _, v in ipairs({id, f[1], f[2], f[3] or '0', f[4] or '0', expire}) do
      out[#out + 1] = v
    end
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '0', int(limit - 1))) do add(id, '0') end
for _, zset in ipairs({KEYS[2], KEYS[3]}) do
  local left = limit - #out / 6
  if left > 0 then
    local rest = redis.call('ZRANGE', zset, '0', int(left - 1), 'WITHSCORES')
    for i = 1, #rest, 2 do add(rest[i], rest[i + 1]) end
  end
end
return out
""")

RELEASE_ALL = _script("""
-- Every lease and delay dropped and every claim ended, so that no holder can
-- take an item back; returns how many leases and delays had not ended yet.
local after = '(' .. int(server_now())
local freed = redis.call('ZCOUNT', KEYS[2], after, '+inf')
  + redis.call('ZCOUNT', KEYS[3], after, '+inf')
promote(KEYS[2], '+inf', '-1')
promote(KEYS[3], '+inf', '-1')
-- Everything is ready now. Items released by their holder kept a token too,
-- so every item's is cleared, a slice of ready at a time.
local size = redis.call('ZCARD', KEYS[1])
for start = 0, size - 1, 4000 do
  local fields = redis.call('ZRANGE', KEYS[1], int(start), int(start + 3999))
  for i, id in ipairs(fields) do fields[i] = id .. ':t' end
  redis.call('HDEL', KEYS[4], unpack(fields))
end
return freed
""")

DELETE_QUEUE = _script("""
-- KEYS[5] the queue's id counter. Ids may start over afterwards: a stale
-- item object cannot act on a new item of the same id, its token differs.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 0
""")

COLLECT = _script("""
-- Moves every ended lease and delay back to ready.
local now = int(server_now())
promote(KEYS[2], now, '-1')
promote(KEYS[3], now, '-1')
return 0
""")
