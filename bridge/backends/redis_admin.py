"""The Redis backend's Lua scripts for operators: counts, listings, held items, whole queues.

The keys, the shared functions and the rules on damaged data are those of
:mod:`bridge.backends.redis_scripts`, whose docstring draws the layout;
these scripts are kept here so that each module stays readable. Listings
(``COUNTS``, ``AGE``, ``HELD``) write nothing; ``PEEK`` moves ended leases
and delays back to ready first, as a claim would.

Held items (``KEYS[5]``, scored by the time they were held) are touched only
by the scripts of that name: no claim, peek or ``RELEASE_ALL`` reaches them,
``COUNTS`` counts them, ``DELETE_QUEUE`` deletes them. ``KICK`` puts an
item back into ready at its place (its ``-priority``, or priority 0's when
that field is damaged, until a lease end or a release would place it by
that field and holds it again), with ``:a`` and ``:r`` deleted and ``:e``
kept for the next worker to see.
"""

from __future__ import annotations

from bridge.backends.redis_scripts import build_script

COUNTS = build_script("""
-- Returns ready, leased, delayed, held at one instant: a lease or delay that
-- has ended counts as ready even before a claim moves the item.
local after = '(' .. int(server_now())
local leased = redis.call('ZCOUNT', KEYS[2], after, '+inf')
local delayed = redis.call('ZCOUNT', KEYS[3], after, '+inf')
local total = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
  + redis.call('ZCARD', KEYS[3])
return {total - leased - delayed, leased, delayed, redis.call('ZCARD', KEYS[5])}
""")

AGE = build_script("""
-- Microseconds since the oldest ready item was created, or nil when nothing
-- is ready. Ids count up as items are created, so the lowest id of each
-- priority in ready is that priority's oldest: one step per priority
-- present (at most $LIMIT), never a pass over the items. Ended leases and
-- delays are ready too (COUNTS counts them so); the lowest id among the
-- first $LIMIT of each joins in.
local now = server_now()
local oldest
local function consider(id)
  local created = whole(redis.call('HGET', KEYS[4], id .. ':c'))
  if created and (not oldest or created < oldest) then oldest = created end
end
local head = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
local steps = 0
while #head > 0 and steps < $LIMIT do
  consider(head[1])
  steps = steps + 1
  head = redis.call('ZRANGE', KEYS[1], '(' .. head[2], '+inf', 'BYSCORE', 'LIMIT', '0', '1',
    'WITHSCORES')
end
for _, zset in ipairs({KEYS[2], KEYS[3]}) do
  local low
  for _, id in ipairs(redis.call('ZRANGE', zset, '-inf', int(now), 'BYSCORE', 'LIMIT', '0',
      '$LIMIT')) do
    if not low or id < low then low = id end
  end
  if low then consider(low) end
end
if not oldest then return nil end
return int(math.max(0, now - oldest))
""")

PEEK = build_script("""
-- ARGV: limit (1 or more). Returns the notes, then claimable items in claim
-- order and then the others, soonest claimable first. Per item: id,
-- created, attempts, priority (numbers), expire (us, '0' when ready),
-- payload, last error. Shows what is stored: a field that is not a number
-- as 0, a missing payload as empty (a claim holds such an item, naming the
-- field); a member with nothing of its item left is not listed.
local limit = tonumber(ARGV[1])
local now = server_now()
promote(KEYS[2], int(now), int(math.max(limit, $LIMIT)), now)
promote(KEYS[3], int(now), int(math.max(limit, $LIMIT)), now)
local out, listed = {notes}, 0
local function add(id, expire)
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a', id .. ':p', id .. ':e')
  if not (f[1] or f[2]) then return end
  local fields = {id_of(id) or id, whole(f[2]) or 0, whole(f[3] or 0) or 0,
    0 - (signed(f[4] or 0) or 0), expire, f[1] or '', f[5]}
  for i = 1, 7 do out[#out + 1] = fields[i] end
  listed = listed + 1
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '0', int(limit - 1))) do add(id, '0') end
for _, zset in ipairs({KEYS[2], KEYS[3]}) do
  local left = limit - listed
  if left > 0 then
    local rest = redis.call('ZRANGE', zset, '0', int(left - 1), 'WITHSCORES')
    for i = 1, #rest, 2 do add(rest[i], rest[i + 1]) end
  end
end
return out
""")

HELD = build_script("""
-- ARGV: limit (1 or more). Held items, oldest held first. Per item: id,
-- created, attempts, priority (numbers), held at (us), payload, last error,
-- reason; damaged fields shown as PEEK shows them.
local out = {}
local rows = redis.call('ZRANGE', KEYS[5], '0', int(tonumber(ARGV[1]) - 1), 'WITHSCORES')
for i = 1, #rows, 2 do
  local id = rows[i]
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a', id .. ':p', id .. ':e',
    id .. ':r')
  local fields = {id_of(id) or id, whole(f[2]) or 0, whole(f[3] or 0) or 0,
    0 - (signed(f[4] or 0) or 0), rows[i + 1], f[1] or '', f[5], f[6]}
  for j = 1, 8 do out[#out + 1] = fields[j] end
end
return out
""")

_UNHOLD = """
-- Held items back to ready at their place, attempts reset, reason dropped,
-- last error kept. Returns how many.
local function unhold(ids)
  if #ids == 0 then return 0 end
  local scored, fields = {}, {}
  for _, id in ipairs(ids) do
    local score = signed(redis.call('HGET', KEYS[4], id .. ':p') or 0)
    scored[#scored + 1] = score and int(score) or '0'
    scored[#scored + 1] = id
    fields[#fields + 1] = id .. ':a'
    fields[#fields + 1] = id .. ':r'
  end
  call_in_slices('ZADD', KEYS[1], scored)
  call_in_slices('HDEL', KEYS[4], fields)
  call_in_slices('ZREM', KEYS[5], ids)
  return #ids
end
"""

KICK = build_script(
    _UNHOLD
    + """
-- ARGV: the last rank to kick (-1: every held item), oldest held first.
return unhold(redis.call('ZRANGE', KEYS[5], '0', ARGV[1]))
"""
)

KICK_ITEM = build_script(
    _UNHOLD
    + """
-- ARGV: id. Returns 1 if it was held (and is ready now), else 0.
if not redis.call('ZSCORE', KEYS[5], ARGV[1]) then return 0 end
return unhold({ARGV[1]})
"""
)

DELETE_HELD = build_script("""
-- ARGV: the last rank to delete (-1: every held item), oldest held first.
local ids = redis.call('ZRANGE', KEYS[5], '0', ARGV[1])
if #ids == 0 then return 0 end
call_in_slices('HDEL', KEYS[4], fields_of(ids))
call_in_slices('ZREM', KEYS[5], ids)
return #ids
""")

RELEASE_ALL = build_script("""
-- Every lease and delay dropped and every claim ended, so that no holder can
-- take an item back. Returns how many leases and delays had not ended yet,
-- then the notes. Held items are not touched.
local now = server_now()
local after = '(' .. int(now)
local freed = redis.call('ZCOUNT', KEYS[2], after, '+inf')
  + redis.call('ZCOUNT', KEYS[3], after, '+inf')
promote(KEYS[2], '+inf', '-1', now)
promote(KEYS[3], '+inf', '-1', now)
-- Everything is ready now. Items released by their holder kept a token too,
-- so every item's is cleared, a slice of ready at a time.
local size = redis.call('ZCARD', KEYS[1])
for start = 0, size - 1, 4000 do
  local fields = redis.call('ZRANGE', KEYS[1], int(start), int(start + 3999))
  for i, id in ipairs(fields) do fields[i] = id .. ':t' end
  redis.call('HDEL', KEYS[4], unpack(fields))
end
return {freed, notes}
""")

DELETE_QUEUE = build_script("""
-- KEYS[6] the queue's id counter. Ids may start over afterwards: a stale
-- item object cannot act on a new item of the same id, its token differs.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 0
""")

COLLECT = build_script("""
-- Moves every ended lease and delay back to ready; returns the notes.
local now = server_now()
promote(KEYS[2], int(now), '-1', now)
promote(KEYS[3], int(now), '-1', now)
return notes
""")
