"""The Redis backend's Lua scripts for operators: counts, listings, held items, whole queues.

The keys, the shared functions and the rules on damaged data are those of
:mod:`bridge.backends.redis_scripts`, whose docstring draws the layout;
these scripts are kept here so that each module stays readable. Listings
(``COUNTS``, ``AGE``, ``HELD``, ``BROWSE``, ``FIND``) write nothing; ``PEEK``
moves ended leases and delays back to ready first, as a claim would.
``BROWSE`` and ``FIND`` tell an ended lease or delay as ready, as ``COUNTS``
counts it, without moving it. ``REMOVE`` deletes one item in any state.

Held items (``KEYS[5]``, scored by the time they were held) are touched only
by the scripts of that name: no claim, peek or ``RELEASE_ALL`` reaches them,
``COUNTS`` counts them, ``DELETE_QUEUE`` deletes them. ``KICK`` puts an
item back into ready at its place (its ``-priority``, or priority 0's when
that field is damaged, until a lease end or a release would place it by
that field and holds it again), with ``:a`` and ``:r`` deleted and ``:e``
kept for the next worker to see.

TTLs (``KEYS[6]`` ttl, ``KEYS[7]`` expired; see ``redis_scripts``): an item
past its deadline that no lease holds (and not held) is expired wherever
it stands. ``COUNTS`` finds those through the ttl zset's entries past their
deadline, one look at each, and counts them, with the expired zset, as
``expired``; ``PEEK``, ``AGE`` and ``BROWSE`` pass them over (``FIND`` too:
an expired item is gone but for garbage collection); ``COLLECT`` deletes
them and every item of the expired zset; ``REMOVE`` and ``DELETE_QUEUE``
reach both zsets.
"""

from __future__ import annotations

from bridge.backends.redis_scripts import build_script

_LAPSED = """
-- Where each item of the ttl zset whose deadline has passed by `now` stands:
-- calls `found(id, where)` with 'ready' (an ended lease or delay included)
-- or 'delayed' for an expired one; a leased (lease still running) or held
-- item is alive, and an entry whose item is gone is passed over.
local function lapsed(now, found)
  for _, id in ipairs(redis.call('ZRANGE', KEYS[6], '-inf', int(now), 'BYSCORE')) do
    local delay_end = redis.call('ZSCORE', KEYS[3], id)
    if delay_end then
      found(id, tonumber(delay_end) > now and 'delayed' or 'ready')
    elseif redis.call('ZSCORE', KEYS[1], id) then
      found(id, 'ready')
    else
      local lease_end = redis.call('ZSCORE', KEYS[2], id)
      if lease_end and tonumber(lease_end) <= now then found(id, 'ready') end
    end
  end
end

-- Whether a stored deadline `dies` (false: a field not there) has passed.
local function dead(dies, now)
  local n = dies and tonumber(dies)
  return n and n <= now or false
end
"""

COUNTS = build_script(
    """
-- Returns ready, leased, delayed, held, expired at one instant: a lease or
-- delay that has ended counts as ready even before a claim moves the item,
-- and an item past its TTL as expired, not ready or delayed.
local now = server_now()
local after = '(' .. int(now)
local leased = redis.call('ZCOUNT', KEYS[2], after, '+inf')
local delayed = redis.call('ZCOUNT', KEYS[3], after, '+inf')
local total = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
  + redis.call('ZCARD', KEYS[3])
local gone = {ready = 0, delayed = 0}
lapsed(now, function(_, where) gone[where] = gone[where] + 1 end)
return {total - leased - delayed - gone.ready, leased, delayed - gone.delayed,
  redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[7]) + gone.ready + gone.delayed}
""",
    library=_LAPSED,
)

AGE = build_script(
    """
-- Microseconds since the oldest ready item was created, or nil when nothing
-- is ready. Ids count up as items are created, so the lowest id of each
-- priority in ready is that priority's oldest: one step per priority
-- present (at most $LIMIT), never a pass over the items. Ended leases and
-- delays are ready too (COUNTS counts them so); the lowest id among the
-- first $LIMIT of each joins in.
local now = server_now()
local oldest
local function consider(id)
  local f = redis.call('HMGET', KEYS[4], id .. ':c', id .. ':x')
  local created = whole(f[1])
  if dead(f[2], now) then return end
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
""",
    library=_LAPSED,
)

PEEK = build_script(
    """
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
local function add(id, expire, leased)
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a', id .. ':p', id .. ':e',
    id .. ':x')
  if not (f[1] or f[2]) then return end
  if not leased and dead(f[6], now) then return end
  local fields = {id_of(id) or id, whole(f[2]) or 0, whole(f[3] or 0) or 0,
    0 - (signed(f[4] or 0) or 0), expire, f[1] or '', f[5]}
  for i = 1, 7 do out[#out + 1] = fields[i] end
  listed = listed + 1
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '0', int(limit - 1))) do
  add(id, '0', false)
end
-- Ended leases were moved to ready above: every lease left is running.
for _, zset in ipairs({KEYS[2], KEYS[3]}) do
  local left = limit - listed
  if left > 0 then
    local rest = redis.call('ZRANGE', zset, '0', int(left - 1), 'WITHSCORES')
    for i = 1, #rest, 2 do add(rest[i], rest[i + 1], zset == KEYS[2]) end
  end
end
return out
""",
    library=_LAPSED,
)

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
    """
-- ARGV: the last rank to kick (-1: every held item), oldest held first.
return unhold(redis.call('ZRANGE', KEYS[5], '0', ARGV[1]))
""",
    library=_UNHOLD,
)

KICK_ITEM = build_script(
    """
-- ARGV: id. Returns 1 if it was held (and is ready now), else 0.
if not redis.call('ZSCORE', KEYS[5], ARGV[1]) then return 0 end
return unhold({ARGV[1]})
""",
    library=_UNHOLD,
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
-- KEYS[6] the ttl zset, KEYS[7] the expired zset, KEYS[8] the queue's id
-- counter. Ids may start over afterwards: a stale item object cannot act
-- on a new item of the same id, its token differs.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return 0
""")

COLLECT = build_script(
    """
-- Moves every ended lease and delay back to ready, deletes every expired
-- item (those of the expired zset, and those past their TTL that no lease
-- holds) and the ttl entries of items gone; returns the notes.
local now = server_now()
promote(KEYS[2], int(now), '-1', now)
promote(KEYS[3], int(now), '-1', now)
local doomed = {}
lapsed(now, function(id) doomed[#doomed + 1] = id end)
for _, id in ipairs(doomed) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[3], id)
end
local expired = redis.call('ZRANGE', KEYS[7], '0', '-1')
for _, id in ipairs(expired) do doomed[#doomed + 1] = id end
if #doomed > 0 then
  call_in_slices('HDEL', KEYS[4], fields_of(doomed))
  call_in_slices('ZREM', KEYS[6], doomed)
end
redis.call('UNLINK', KEYS[7])
-- Entries past their deadline whose item is gone (deleted with its TTL);
-- held and leased items keep theirs.
local stale = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], '-inf', int(now), 'BYSCORE')) do
  if redis.call('HEXISTS', KEYS[4], id .. ':c') == 0 then stale[#stale + 1] = id end
end
if #stale > 0 then call_in_slices('ZREM', KEYS[6], stale) end
return notes
""",
    library=_LAPSED,
)

_LISTING = """
-- One listed entry: {id, created, attempts, priority, score, payload, last
-- error, state, hold reason}, or nil for a member with nothing of its item
-- left. `score` is the member's score in its zset (the lease or delay end,
-- or when it was held; '0' in ready); damaged fields are shown as PEEK shows
-- them. A lease or delay that has ended is ready, as COUNTS counts it.
local STATES = {'ready', 'leased', 'delayed', 'held'}
local ZSETS = {KEYS[1], KEYS[2], KEYS[3], KEYS[5]}
local function entry(id, zset, score, now)
  local f = redis.call('HMGET', KEYS[4], id, id .. ':c', id .. ':a', id .. ':p', id .. ':e',
    id .. ':r', id .. ':x')
  if not (f[1] or f[2]) then return nil end
  -- Past its TTL with no lease holding it (a held item never expires): gone.
  local running = zset == 2 and tonumber(score) > now
  if f[7] and zset ~= 4 and not running and tonumber(f[7]) <= now then return nil end
  local state = STATES[zset]
  if (zset == 2 or zset == 3) and tonumber(score) <= now then state = 'ready' end
  if zset == 1 then score = '0' end
  return {id_of(id) or id, whole(f[2]) or 0, whole(f[3] or 0) or 0,
    0 - (signed(f[4] or 0) or 0), score, f[1] or '', f[5], state, f[6]}
end
"""

BROWSE = build_script(
    """
-- ARGV: state ('' for every state), the cursor's zset (1 ready, 2 leased,
-- 3 delayed, 4 held; 0 for none: the first page), score and member, limit
-- (1 or more). Writes nothing.
-- Order: ready in claim order, then leased by lease end, then delayed by
-- delay end, then held by when; within a zset by (score, member), Redis's
-- own order, so a page costs O(log N + limit): the cursor is the last
-- entry's zset, score and member, found again by ZRANK, or, when that
-- member has since moved or gone, by a binary search over the ranks of its
-- score (O(log^2 N)). Ended leases and delays are listed as ready where
-- they stand (first in their zset, having the lowest ends); `ready` lists
-- them after the ready zset, `leased` and `delayed` only the others.
-- Returns whether more follow (0/1), the cursor's zset, score and member,
-- then nine fields per entry (see `entry`). Members with nothing of their
-- item left are passed over, so a page may be short.
local now = server_now()
local state, limit = ARGV[1], tonumber(ARGV[5])
local after_zset, after_score, after_member = tonumber(ARGV[2]), ARGV[3], ARGV[4]
-- zset, and which of its entries: every one, those ended by now, those not.
local plan = {{1, 'all'}, {2, 'all'}, {3, 'all'}, {4, 'all'}}
if state == 'ready' then plan = {{1, 'all'}, {2, 'ended'}, {3, 'ended'}}
elseif state == 'leased' then plan = {{2, 'pending'}}
elseif state == 'delayed' then plan = {{3, 'pending'}}
elseif state == 'held' then plan = {{4, 'all'}} end

-- a <= b in Redis's order of members: byte by byte (Lua's own `<` follows
-- the server's locale).
local function not_after(a, b)
  for k = 1, math.min(#a, #b) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a <= #b
end

-- The rank just past (score, member) in `key`, whether or not it is there.
local function rank_after(key, score, member)
  local found = redis.call('ZSCORE', key, member)
  if found and tonumber(found) == tonumber(score) then
    return redis.call('ZRANK', key, member) + 1
  end
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  local hi = redis.call('ZCOUNT', key, '-inf', score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if not_after(redis.call('ZRANGE', key, int(mid), int(mid))[1], member) then lo = mid + 1
    else hi = mid end
  end
  return lo
end

local out = {0, '', '', ''}
local scanned, last = 0, nil
for _, step in ipairs(plan) do
  local zset, which = step[1], step[2]
  local key = ZSETS[zset]
  if zset >= after_zset then
    local first, stop = 0, redis.call('ZCARD', key)
    if which ~= 'all' then
      local ended = redis.call('ZCOUNT', key, '-inf', int(now))
      if which == 'ended' then stop = ended else first = ended end
    end
    if zset == after_zset then
      first = math.max(first, rank_after(key, after_score, after_member))
    end
    if first < stop then
      local rows = redis.call('ZRANGE', key, int(first),
        int(math.min(stop, first + limit + 1 - scanned) - 1), 'WITHSCORES')
      for i = 1, #rows, 2 do
        scanned = scanned + 1
        if scanned > limit then
          out[1], out[2], out[3], out[4] = 1, last[1], last[2], last[3]
          return out
        end
        last = {zset, rows[i + 1], rows[i]}
        local listed = entry(rows[i], zset, rows[i + 1], now)
        if listed then
          for k = 1, 9 do out[#out + 1] = listed[k] end
        end
      end
    end
  end
end
return out
""",
    library=_LISTING,
)

FIND = build_script(
    """
-- ARGV: id. The item's entry (see `entry`), or nil if no zset has it.
local now = server_now()
for zset, key in ipairs(ZSETS) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score then return entry(ARGV[1], zset, score, now) end
end
return nil
""",
    library=_LISTING,
)

REMOVE = build_script("""
-- ARGV: id. Deletes the item in whatever state, with every field, so that
-- its holder's calls find it gone. Returns 1, or 0 if no zset had it.
local removed = 0
for _, zset in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[7]}) do
  removed = removed + redis.call('ZREM', zset, ARGV[1])
end
redis.call('ZREM', KEYS[6], ARGV[1])
call_in_slices('HDEL', KEYS[4], fields_of({ARGV[1]}))
return removed
""")
