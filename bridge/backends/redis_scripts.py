"""The Redis backend's keys and its Lua scripts for workers: every call is one script.

Kept apart from ``redis.py`` so that a reader sees every script at once, and
so that the benchmark's raw loop (``benchmarks/systems/raw_redis.py``) runs
these very scripts rather than copies; the scripts for operators (counts,
listings, held items, whole-queue calls) are in ``redis_admin.py``. Each
script runs atomically on the server, reads the server's clock with ``TIME``
(scripts replicate their effects, so a clock read before a write is allowed
and replicas get the resulting writes, not the script), and takes the
queue's keys in the same order (:func:`queue_keys` builds them):

    KEYS[1] ready    zset  id -> -priority (ties sort by member: the lowest id first)
    KEYS[2] leased   zset  id -> lease end
    KEYS[3] delayed  zset  id -> delay end
    KEYS[4] items    hash  "<id>" payload, "<id>:c" created, "<id>:p" -priority,
                           "<id>:a" attempts, "<id>:t" token of the latest claim,
                           "<id>:e" last error, "<id>:r" hold reason
    KEYS[5] held     zset  id -> held at
    KEYS[6] ttl      zset  id -> TTL deadline, for items created with a TTL (CLAIM,
                           SETTLE_AND_CLAIM, DELETE and the admin scripts that need it)
    KEYS[7] expired  zset  id -> TTL deadline: items a claim found past their TTL

An item created with a TTL also keeps its deadline in ``"<id>:x"``. A claim
reads it with the fields it reads anyway: an item past it that no lease
holds goes to ``expired`` (out of the state zsets, its claim ended) and the
claim pops another. A claim with grace raises ``:x`` and the ``ttl`` score
to at least the lease's end plus the grace. ``ttl`` is an index for
``COUNTS`` and ``COLLECT`` (garbage_collection), which look only at its
entries past their deadline; a deleted item's entry stays in it until then.

An id is a zero-padded decimal (``%016d``), so that ids of one priority sort
by number. An item is in exactly one of the four zsets, and that zset alone
is its state. Absent ``:p`` and ``:a`` mean 0; an absent ``:t`` means no
claim holds the item (a held item has none).

Who holds an item: ``:t`` is the token of the claim that last took it. The
holder's own release, delay, extend and fail only move the item between
the zsets (or write ``:e``) and keep ``:t``, so (as in Drupal) the holder may go on settling it;
the next claim writes its own token, which fences the old holder out, and
``RELEASE_ALL`` and a hold clear it.

The functions the scripts share are Lua paragraphs (the prelude, then the
claim and the settlements); :func:`build_script` puts into each script only
those it calls, since a script's body runs whole on every call, helper
definitions included. ``SETTLE_AND_CLAIM`` runs a settlement's function and
then the claim's, the very ones ``DELETE``, ``RELEASE``, ``FAIL``, ``HOLD``
and ``CLAIM`` run.

Stored data that is not what these scripts write (another program's, a
damaged key) never stops a script: a script that would hand on or move an
item whose fields it cannot use holds it instead, with a reason naming the
field and the item, and a member with nothing of its item left (or not an
id at all) is dropped, since there is nothing to hold. Each such act is one
line in ``notes``, which the script returns for the backend to log.

Times are integer microseconds since the epoch (exact in a Lua number,
which is a double, until the year 2255; with the longest lease added, until
2187), and every number handed to ``redis.call`` is a string made with
``%d``: Redis would otherwise print each Lua number with ``%.17g``, which
costs several microseconds apiece, more than the rest of a claim. Numbers
in a reply are Lua numbers, which reach Python as ints with no parsing.
"""

from __future__ import annotations

import re

from bridge.contract import MAX_SECONDS

BATCH_RECORD_SECONDS = 600
"""How long a producer's last batch is remembered, for a retried create_items."""

PROMOTE_LIMIT = 1000
"""Most items a claim moves from leased and from delayed back to ready (at least its count).

Also the most damaged entries one claim sets aside before it answers with
what it has, so that a queue full of them cannot stall the server.
"""

MAX_MICROS = MAX_SECONDS * 1_000_000
"""The longest lease or delay a script accepts, in the microseconds it counts."""

QueueKeys = tuple[str, str, str, str, str]
"""ready, leased, delayed, items, held: every script's first five keys."""


def queue_keys(prefix: str, name: str) -> tuple[QueueKeys, str]:
    """The queue's five script keys and their common base ``prefix:{name}``.

    The name is written with ``%`` as ``%25`` and ``}`` as ``%7D``, so the
    braces enclose all of it: the name is the Redis Cluster hash tag, and
    every key of a queue is in one slot.
    """
    base = f"{prefix}:{{{escape_name(name)}}}"
    parts = ("ready", "leased", "delayed", "items", "held")
    keys = tuple(f"{base}:{part}" for part in parts)
    return (keys[0], keys[1], keys[2], keys[3], keys[4]), base


def escape_name(name: str) -> str:
    """The name as its hash tag: no ``}`` may end the tag early."""
    return name.replace("%", "%25").replace("}", "%7D")


def unescape_name(tag: str) -> str:
    return tag.replace("%7D", "}").replace("%25", "%")


_PRELUDE = """
local notes = {}

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

-- A stored time or count (created, attempts): the number if the field holds
-- a whole number from 0 below 2**53 (exact in a double), else nil. NaN and
-- infinities fail every comparison or the remainder.
local function whole(x)
  local n = tonumber(x)
  if n and n >= 0 and n < 9007199254740992 and n % 1 == 0 then return n end
  return nil
end

-- A stored -priority: a whole number within the 32-bit priorities, else nil.
local function signed(x)
  local n = tonumber(x)
  if n and n >= -2147483648 and n <= 2147483648 and n % 1 == 0 then return n end
  return nil
end

-- The item id a member stands for, as a number; nil for anything but the
-- 16 digits the scripts write (so below 2**53, where a double is exact).
local function id_of(member)
  if #member ~= 16 or string.find(member, '%D') then return nil end
  local n = tonumber(member)
  if n < 9007199254740992 then return n end
  return nil
end

-- A stored value shown in a note or reason: quoted, cut to 40 bytes, every
-- byte that is not printable ASCII written as \\xNN.
local function quoted(value)
  local shown = string.gsub(string.sub(value, 1, 40), '[^%w%p ]', function(c)
    return string.format('\\\\x%02x', string.byte(c))
  end)
  if #value > 40 then shown = shown .. '...' end
  return '"' .. shown .. '"'
end

-- What a reason says about a field's stored value.
local function described(value)
  if not value then return 'missing' end
  return 'not a whole number: ' .. quoted(value)
end

-- Held: out of the other zsets, claim ended, the reason kept (and the
-- error, when given, as the item's last error).
local function hold(id, now, reason, err)
  for i = 1, 3 do redis.call('ZREM', KEYS[i], id) end
  redis.call('ZADD', KEYS[5], int(now), id)
  redis.call('HDEL', KEYS[4], id .. ':t')
  if err then
    redis.call('HSET', KEYS[4], id .. ':r', reason, id .. ':e', err)
  else
    redis.call('HSET', KEYS[4], id .. ':r', reason)
  end
end

local SUFFIXES = {'', ':c', ':p', ':a', ':t', ':e', ':r', ':x'}

-- Every hash field of these ids.
local function fields_of(ids)
  local fields = {}
  for _, id in ipairs(ids) do
    for _, suffix in ipairs(SUFFIXES) do fields[#fields + 1] = id .. suffix end
  end
  return fields
end

-- An item a script cannot hand on or move: held, with `problem` naming the
-- field, or dropped when `problem` is nil (nothing of the item is left) or
-- the member is no id, since there is nothing to hold. Noted either way.
local function set_aside(id, now, problem)
  local n = id_of(id)
  if n and problem then
    local reason = 'item ' .. int(n) .. ': ' .. problem
    hold(id, now, reason)
    notes[#notes + 1] = 'held ' .. reason
    return
  end
  for _, zset in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[5]}) do redis.call('ZREM', zset, id) end
  call_in_slices('HDEL', KEYS[4], fields_of({id}))
  local why = 'no item has this id: its fields are gone from the items hash'
  if not n then why = 'it is not an item id' end
  notes[#notes + 1] = 'dropped member ' .. quoted(id) .. ': ' .. why
end

-- Move up to `limit` items whose lease or delay ended at `upto` or before
-- from `zset` back into ready, at their original place: score -priority.
-- An item whose priority field is damaged has no place there: held.
local function promote(zset, upto, limit, now)
  local due = redis.call('ZRANGE', zset, '-inf', upto, 'BYSCORE', 'LIMIT', '0', limit)
  if #due == 0 then return end
  local scored = {}
  for _, id in ipairs(due) do
    local p = redis.call('HGET', KEYS[4], id .. ':p')
    local score = signed(p or 0)
    if score then
      scored[#scored + 1] = p and int(score) or '0'
      scored[#scored + 1] = id
    else
      set_aside(id, now, 'its priority field is ' .. described(p))
    end
  end
  if #scored > 0 then call_in_slices('ZADD', KEYS[1], scored) end
  call_in_slices('ZREM', zset, due)
end

-- Put a claimed item into `zset` at `score` and out of the other two: its
-- holder's release, delay and extend may follow one another in any order.
local function place(id, zset, score)
  for i = 1, 3 do
    if KEYS[i] ~= zset then redis.call('ZREM', KEYS[i], id) end
  end
  redis.call('ZADD', zset, score, id)
end
"""


_CLAIMING = """
-- Why a popped item cannot be handed out, from its payload, created and
-- attempts fields; nil when nothing of it is left (it is dropped, not held).
local function fault(payload, created, attempts)
  if not (payload or created) then return nil end
  if not payload then return 'its payload field is missing' end
  if not whole(created) then return 'its created field is ' .. described(created) end
  return 'its attempts field is ' .. described(attempts)
end

-- An item popped past its TTL deadline `dies` (us): kept in expired until
-- garbage collection, out of the TTL index, its claim ended.
local function expire_item(id, dies)
  redis.call('ZADD', KEYS[7], dies, id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('HDEL', KEYS[4], id .. ':t')
end

-- Lease up to `count` ready items to `token` until `expire` (us). Returns {}
-- when nothing was ready and nothing set aside; else the lease end, the
-- notes, then per item: id, created, attempts, priority (numbers), payload,
-- last error (or nil). Ended leases and delays go back to ready first. An
-- item past its TTL is expired and another popped; with `grace` (us), a
-- claimed item's TTL deadline becomes at least the lease's end plus it.
local function claim(count, expire, token, now, grace)
  local floor
  if grace then floor = deadline(tonumber(expire), grace) end
  local limit = math.max(count, $LIMIT)
  local upto, most = int(now), int(limit)
  promote(KEYS[2], upto, most, now)
  promote(KEYS[3], upto, most, now)
  local got, skipped = 0, 0
  -- One item (a worker's loop): the steps of the loop below without its
  -- batch tables, a tenth of a one-item claim's server time. An item that
  -- cannot be handed out is set aside, and the loop pops again.
  if count == 1 then
    local popped = redis.call('ZPOPMIN', KEYS[1])
    local id = popped[1]
    if not id then
      if #notes == 0 then return {} end
      return {expire, notes}
    end
    local a = id .. ':a'
    local f = redis.call('HMGET', KEYS[4], id, id .. ':c', a, id .. ':e', id .. ':x')
    local n, created, attempts = id_of(id), whole(f[2]), whole(f[3] or 0)
    local dies = f[5] and tonumber(f[5])
    if n and f[1] and created and attempts and not (dies and dies <= now) then
      attempts = attempts + 1
      redis.call('HSET', KEYS[4], a, f[3] and int(attempts) or '1', id .. ':t', token)
      redis.call('ZADD', KEYS[2], expire, id)
      if floor and dies and dies < tonumber(floor) then
        redis.call('HSET', KEYS[4], id .. ':x', floor)
        redis.call('ZADD', KEYS[6], floor, id)
      end
      return {expire, notes, n, created, attempts, 0 - tonumber(popped[2]), f[1], f[4]}
    end
    if n and f[1] and created and attempts then
      expire_item(id, f[5])
    else
      set_aside(id, now, fault(f[1], f[2], f[3]))
    end
    skipped = 1
  end
  local out, o, leases, written = {expire, notes}, 2, {}, {}
  -- An item set aside leaves a gap: pop again, so that a claim answers short
  -- only when ready runs out (or after `limit` damaged entries).
  while got < count and skipped < limit do
    -- At most 1000 at a time, so that one HMGET reads all their fields (a
    -- redis.call costs about as much as the rest of an item's work).
    local popped = redis.call('ZPOPMIN', KEYS[1], int(math.min(count - got, 1000)))
    if #popped == 0 then break end
    local wanted = {}
    for i = 1, #popped, 2 do
      local id, j = popped[i], 5 * (i - 1) / 2
      wanted[j + 1], wanted[j + 2], wanted[j + 3], wanted[j + 4], wanted[j + 5] = id,
        id .. ':c', id .. ':a', id .. ':e', id .. ':x'
    end
    local f = redis.call('HMGET', KEYS[4], unpack(wanted))
    for i = 1, #popped, 2 do
      local id, j = popped[i], 5 * (i - 1) / 2
      -- The priority comes from the score: a damaged ':p' does not stop a
      -- claim, only a move back into ready (promote, RELEASE), which needs it.
      local n, created, attempts = id_of(id), whole(f[j + 2]), whole(f[j + 3] or 0)
      local dies = f[j + 5] and tonumber(f[j + 5])
      if n and f[j + 1] and created and attempts and dies and dies <= now then
        expire_item(id, f[j + 5])
        skipped = skipped + 1
      elseif n and f[j + 1] and created and attempts then
        if floor and dies and dies < tonumber(floor) then
          redis.call('HSET', KEYS[4], id .. ':x', floor)
          redis.call('ZADD', KEYS[6], floor, id)
        end
        attempts = attempts + 1
        -- The new token fences out whoever held the item before.
        local w = #written
        written[w + 1], written[w + 2], written[w + 3], written[w + 4] = wanted[j + 3],
          f[j + 3] and int(attempts) or '1', id .. ':t', token
        leases[#leases + 1] = id
        out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] = n, created,
          attempts, 0 - tonumber(popped[i + 1]), f[j + 1], f[j + 4]
        o = o + 6
        got = got + 1
      else
        set_aside(id, now, fault(f[j + 1], f[j + 2], f[j + 3]))
        skipped = skipped + 1
      end
    end
  end
  if got > 0 then
    call_in_slices('HSET', KEYS[4], written)
    -- Highest id first. A small zset is one flat list (a listpack) that each
    -- ZADD searches from its head, comparing scores parsed from text; all
    -- these leases end at once, so in this order each lands at the head,
    -- found at the first comparison: a third of a batched claim's server time.
    local scored = {}
    for k = #leases, 1, -1 do
      scored[#scored + 1] = expire
      scored[#scored + 1] = leases[k]
    end
    call_in_slices('ZADD', KEYS[2], scored)
  end
  if got == 0 and #notes == 0 then return {} end
  return out
end
"""

_SETTLING = """
-- What a holder's calls do, fenced by the token of the claim that took the
-- item: DELETE, RELEASE, FAIL and HOLD run one each, SETTLE_AND_CLAIM any.

-- Deletes the items of `args` (id, token, id, token, ...) that these claims
-- still hold; returns how many.
local function delete_claimed(args)
  local n = #args / 2
  if n == 1 then
    -- One item (a worker's loop): the steps below without their tables.
    local id = args[1]
    local t = id .. ':t'
    if redis.call('HGET', KEYS[4], t) ~= args[2] then return 0 end
    redis.call('HDEL', KEYS[4], id, id .. ':c', id .. ':p', id .. ':a', t, id .. ':e',
      id .. ':x')
    if redis.call('ZREM', KEYS[2], id) == 0 and redis.call('ZREM', KEYS[1], id) == 0 then
      redis.call('ZREM', KEYS[3], id)
    end
    return 1
  end
  local fields, tokens = {}, {}
  for k = 1, n do fields[k] = args[2 * k - 1] .. ':t' end
  for i = 1, n, 4000 do
    local got = redis.call('HMGET', KEYS[4], unpack(fields, i, math.min(i + 3999, n)))
    for k = 1, #got do tokens[i + k - 1] = got[k] end
  end
  -- Every field but ':r': a hold writes it and deletes the token in one
  -- script, so an item a claim still holds never has one.
  local gone, doomed, seen, g, d = {}, {}, {}, 0, 0
  for k = 1, n do
    local id = args[2 * k - 1]
    if tokens[k] == args[2 * k] and not seen[id] then
      seen[id] = true
      g = g + 1
      gone[g] = id
      doomed[d + 1], doomed[d + 2], doomed[d + 3], doomed[d + 4], doomed[d + 5], doomed[d + 6] =
        id, id .. ':c', id .. ':p', id .. ':a', fields[k], id .. ':e'
      doomed[d + 7] = id .. ':x'
      d = d + 7
    end
  end
  if g == 0 then return 0 end
  call_in_slices('HDEL', KEYS[4], doomed)
  -- An item its claim holds is mostly leased, so ready and delayed are
  -- searched only for the rest: released or delayed by its holder, or moved
  -- to ready by a claim after its lease ran out.
  local left = #gone
  for _, zset in ipairs({KEYS[2], KEYS[1], KEYS[3]}) do
    left = left - call_in_slices('ZREM', zset, gone)
    if left <= 0 then break end
  end
  return #gone
end

-- Release (delay '0') or delay the item; the claim stays the holder's.
-- Returns the time it is claimable from, or false when the claim does not
-- hold it. A released item whose priority field is damaged has no place in
-- ready: it is held instead (a note says so), and false returned.
local function release(id, token, delay, now)
  local f = redis.call('HMGET', KEYS[4], id .. ':t', id .. ':p')
  if f[1] ~= token then return false end
  if delay == '0' then
    local score = signed(f[2] or 0)
    if not score then
      set_aside(id, now, 'its priority field is ' .. described(f[2]))
      return false
    end
    place(id, KEYS[1], f[2] and int(score) or '0')
    return int(now)
  end
  local until_ = deadline(now, delay)
  place(id, KEYS[3], until_)
  return until_
end

-- Keep `err` as the item's last error; with a delay (us; '' for none) the
-- item is delayed as `release` delays it. Returns the item's expire (its
-- lease end, its delay end, or '0' if its holder released it), or false,
-- writing nothing, if the claim does not hold it.
local function fail(id, token, err, delay, now)
  if redis.call('HGET', KEYS[4], id .. ':t') ~= token then return false end
  local until_
  if delay ~= '' then until_ = deadline(now, delay) end
  redis.call('HSET', KEYS[4], id .. ':e', err)
  if until_ then
    place(id, KEYS[3], until_)
    return until_
  end
  return redis.call('ZSCORE', KEYS[2], id) or redis.call('ZSCORE', KEYS[3], id) or '0'
end

-- Hold the item if the claim still holds it, which ends the claim; whether it did.
local function hold_claimed(id, token, reason, err, now)
  if redis.call('HGET', KEYS[4], id .. ':t') ~= token then return false end
  hold(id, now, reason, err)
  return true
end
"""

_DEFINITION = re.compile(r"^local (?:function )?(\w+)", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_]\w*")


def _names(lua: str) -> set[str]:
    """The names a piece of Lua mentions, its comments left out."""
    return set(_NAME.findall(re.sub(r"--[^\n]*", "", lua)))


def build_script(body: str, library: str = "") -> str:
    """A script: the shared functions ``body`` calls, then ``body``, constants filled in.

    The shared functions are the prelude, the claim and the settlements
    above, then ``library`` (a caller's own), each definition a paragraph of
    its own. Only those the body calls, directly or through another, go in:
    a script's body runs on every call, and each ``local function`` in it
    makes a closure and its upvalues again each time, which on a one-item
    claim cost more than the claim's own commands.
    """
    wanted, kept = _names(body), []
    # Every function is defined before those that call it: walking back from
    # the last, a kept chunk's names are wanted before their chunks come up.
    for chunk in reversed(re.split(r"\n\s*\n", _PRELUDE + _CLAIMING + _SETTLING + library)):
        defined = set(_DEFINITION.findall(chunk))
        if not defined and _names(chunk):
            raise ValueError(f"a paragraph of Lua that defines nothing: {chunk[:60]!r}")
        if defined & wanted:
            kept.append(chunk)
            wanted |= _names(chunk)
    return (
        ("\n\n".join(reversed(kept)) + "\n" + body)
        .replace("$LIMIT", str(PROMOTE_LIMIT))
        .replace("$KEEP", str(BATCH_RECORD_SECONDS))
        .replace("$MAX_MICROS", str(MAX_MICROS))
    )


_CREATE = """
-- KEYS[6] the queue's id counter, KEYS[7] this producer's last batch.
-- ARGV: delay (us), -priority, batch id, [TTL (us),] payload... Returns the
-- first id. With a TTL (CREATE_EXPIRING), KEYS[8] is the queue's ttl zset.
-- A batch the producer already wrote (a retry after a lost reply) is
-- answered from the record instead of being written twice.
local batch = ARGV[3]
local record = redis.call('GET', KEYS[7])
if record then
  local seen, first = string.match(record, '^(%S+) (%d+)$')
  if seen == batch then return tonumber(first) end
end
-- The deadline first: a script that fails after a write keeps that write.
local now, score = server_now(), ARGV[2]
local created, zset = int(now), KEYS[1]
if ARGV[1] ~= '0' then zset, score = KEYS[3], deadline(now, ARGV[1]) end
local n = #ARGV - $ARGS
$DIES
local first = redis.call('INCRBY', KEYS[6], n) - n + 1
local fields, scored, timed = {}, {}, {}
for i = 1, n do
  local id = string.format('%016d', first + i - 1)
  fields[#fields + 1] = id
  fields[#fields + 1] = ARGV[$ARGS + i]$EACH
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
call_in_slices('ZADD', zset, scored)$AFTER
redis.call('SET', KEYS[7], batch .. ' ' .. int(first), 'EX', '$KEEP')
return first
"""
_EXPIRING = {
    "$ARGS": "4",
    "$DIES": "local dies = deadline(now, ARGV[4])",
    "$EACH": """
  fields[#fields + 1] = id .. ':x'
  fields[#fields + 1] = dies
  timed[#timed + 1] = dies
  timed[#timed + 1] = id""",
    "$AFTER": "\ncall_in_slices('ZADD', KEYS[8], timed)",
}
_LASTING = {"$ARGS": "3", "$DIES": "", "$EACH": "", "$AFTER": ""}


def _create(body: str, expiring: bool) -> str:
    for marker, text in (_EXPIRING if expiring else _LASTING).items():
        body = body.replace(marker, text)
    return build_script(body)


_CREATE_WAKING = _CREATE.replace(
    "\nreturn first\n",
    """
-- Ready items wake `bridge queue watch` on the queue's P:{N}:wake channel
-- (KEYS[4] is P:{N}:items). Pub/sub: every watcher wakes, nothing is kept
-- while none listens; about a microsecond when no one is subscribed.
if ARGV[1] == '0' then redis.call('PUBLISH', string.sub(KEYS[4], 1, -6) .. 'wake', '') end
return first
""",
)
CREATE = _create(_CREATE, expiring=False)
CREATE_WAKING = _create(_CREATE_WAKING, expiring=False)
"""CREATE, then a wake-up for watchers: what the one-server backend runs. A cluster
runs ``CREATE``: a PUBLISH there is broadcast to every node, and nothing waits on it."""
CREATE_EXPIRING = _create(_CREATE, expiring=True)
CREATE_EXPIRING_WAKING = _create(_CREATE_WAKING, expiring=True)
"""The two with a TTL for every item: its ``:x`` field and a ``ttl`` zset entry (KEYS[8])."""

CLAIM = build_script(
    """
-- ARGV: count, lease time (us), token[, grace (us)]. Returns what `claim` returns.
local now = server_now()
return claim(tonumber(ARGV[1]), deadline(now, ARGV[2]), ARGV[3], now, ARGV[4])
"""
)

DELETE = build_script(
    """
-- ARGV: id, token, id, token, ... Deletes the items these claims still hold.
return delete_claimed(ARGV)
"""
)

RELEASE = build_script(
    """
-- ARGV: id, token, delay (us; 0 releases). Returns the time the item is
-- claimable from (nil when the claim does not hold the item), then the notes.
return {release(ARGV[1], ARGV[2], ARGV[3], server_now()), notes}
"""
)

EXTEND = build_script("""
-- ARGV: id, token, lease time (us)[, grace (us)]. Returns the new lease end,
-- or nil if the claim no longer holds the item. The item may be ready
-- (released, or its lease ran out and a claim moved it) or delayed by its
-- holder: either way it is leased again. With a grace (then KEYS[6] is the
-- ttl zset), a TTL deadline becomes at least the lease's end plus it.
local id = ARGV[1]
if redis.call('HGET', KEYS[4], id .. ':t') ~= ARGV[2] then return nil end
local expire = deadline(server_now(), ARGV[3])
local floor
if ARGV[4] then floor = deadline(tonumber(expire), ARGV[4]) end
place(id, KEYS[2], expire)
if floor then
  local dies = redis.call('HGET', KEYS[4], id .. ':x')
  if dies and tonumber(dies) < tonumber(floor) then
    redis.call('HSET', KEYS[4], id .. ':x', floor)
    redis.call('ZADD', KEYS[6], floor, id)
  end
end
return expire
""")

FAIL = build_script(
    """
-- ARGV: id, token, error, delay (us; '' for none). Returns what `fail`
-- returns (nil for false).
return fail(ARGV[1], ARGV[2], ARGV[3], ARGV[4], server_now())
"""
)

HOLD = build_script(
    """
-- ARGV: id, token, reason[, error]. Returns 1, or 0 if the caller's claim is gone.
return hold_claimed(ARGV[1], ARGV[2], ARGV[3], ARGV[4], server_now()) and 1 or 0
"""
)

_SETTLE_AND_CLAIM = """
-- ARGV: count, lease time (us), the new claim's token, then the settlement:
-- action, id, the holder's token and the action's own arguments, as the
-- single script takes them:
--   delete
--   release, delay     delay (us; '0' releases)
--   fail               error, delay (us; '' for none)
--   hold               reason[, error]
-- Settles the item as DELETE, RELEASE, FAIL or HOLD does, then claims as
-- CLAIM does: one script, so no other call runs in between. Returns
-- {1 if the holder's claim still held the item (it is settled) else 0,
-- CLAIM's reply}. The lease is checked before anything is written, and each
-- settlement checks its delay before its own first write, so a refused
-- argument leaves the queue as it was: a script keeps what it wrote before
-- an error.
local now = server_now()
local expire = deadline(now, ARGV[2])
local id, token = ARGV[5], ARGV[6]
local settled = $SETTLE
local count = tonumber(ARGV[1])
local claimed = {}
if count > 0 then claimed = claim(count, expire, ARGV[3], now) end
if #claimed == 0 and #notes > 0 then claimed = {expire, notes} end
return {settled and 1 or 0, claimed}
"""

_SETTLEMENTS = {
    "delete": "delete_claimed({id, token}) == 1",
    "release": "release(id, token, ARGV[7], now) ~= false",
    "delay": "release(id, token, ARGV[7], now) ~= false",
    "fail": "fail(id, token, ARGV[7], ARGV[8], now) ~= false",
    "hold": "hold_claimed(id, token, ARGV[7], ARGV[8], now)",
}

SETTLE_AND_CLAIM = {
    action: build_script(_SETTLE_AND_CLAIM.replace("$SETTLE", settle))
    for action, settle in _SETTLEMENTS.items()
}
"""SETTLE_AND_CLAIM by ``Settlement.action``: one script each, so that a delete's
carries none of the other settlements' functions (each is a closure made
again on every call)."""
