"""Topics in Redis Streams: one Lua script a call, on the server's clock.

Features:
    A topic is a stream: ``XADD *`` gives each message an id that grows
    with every publish (Redis never issues a smaller one, even when its
    clock steps back), and every script runs atomically, so a reader that
    sees a message sees every message published before it. A subscriber's
    position is a stream id in a hash; ``read`` is ``XRANGE (position +``.
    Consumer groups are not used: they track deliveries per consumer for
    work sharing (a group's entries are handed to one consumer each), while
    a subscriber here is one reader with one position, which a hash of ids
    keeps exactly and cheaply.

    Expiry: messages carry their own TTLs, so the stream is not in expiry
    order and ``XTRIM MINID`` (which cuts a prefix) would drop a short-lived
    message's longer-lived elders. A zset of id -> expire (us) finds the
    expired ones; every publish, read and stats call deletes up to 1000 of
    them (``XDEL``), and reads skip any expired entry still there.

    Works on one server and on Redis Cluster: a topic's keys share the
    ``{name}`` hash tag. Needs Redis 6.2+ (exclusive ``XRANGE`` ranges).
    A publish whose connection fails is not repeated (it may have run).

Storage layout:
    With ``P:{N}`` the queue backend's key base for name ``N``::

        P:{N}:topic          stream  id -> d (payload), p (published us), e (expire us)
        P:{N}:topic:expiry   zset    id -> expire (us)
        P:{N}:topic:subs     hash    subscriber -> the last id it acked

    The stream key stays (perhaps empty) after its messages expire and
    after ``delete_topic`` (``XTRIM MAXLEN 0``), so its last id is known:
    ``ack`` refuses an id the topic never issued, and no id is issued twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, final

import redis  # opened only on a RedisBackend, which refuses to start without it

from bridge.backends.redis import RedisBackend
from bridge.backends.redis_scripts import queue_keys
from bridge.contract import Backend
from bridge.errors import BackendError, BackendUnavailableError
from bridge.topics import Start, StoredMessage, TopicStats, TopicStore

_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")

_PRELUDE = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function sweep(stream, expiry, now)
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', string.format('%d', now),
                          'LIMIT', 0, 1000)
  if #gone > 0 then
    redis.call('XDEL', stream, unpack(gone))
    redis.call('ZREM', expiry, unpack(gone))
  end
end
local function last_id(stream)
  if redis.call('EXISTS', stream) == 0 then return nil end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return nil
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)  -- whether id a < id b
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
"""

PUBLISH = (
    _PRELUDE
    + """
local now = now_us()
sweep(KEYS[1], KEYS[2], now)
local p = string.format('%d', now)
local e = string.format('%d', now + tonumber(ARGV[1]))
local ids = {}
for i = 2, #ARGV do
  local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i], 'p', p, 'e', e)
  redis.call('ZADD', KEYS[2], e, id)
  ids[#ids + 1] = id
end
return ids
"""
)

READ = (
    _PRELUDE
    + """
local now = now_us()
sweep(KEYS[1], KEYS[2], now)
local after = redis.call('HGET', KEYS[3], ARGV[1])
if not after then
  after = '0-0'
  if ARGV[3] == 'latest' then
    after = last_id(KEYS[1]) or '0-0'
    redis.call('HSET', KEYS[3], ARGV[1], after)
  end
end
local found = {}
local limit = tonumber(ARGV[2])
while #found < limit do
  local entries = redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', limit - #found)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local fields = {}
    for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
    if tonumber(fields['e']) > now then
      found[#found + 1] = {entry[1], fields['d'], fields['p'], fields['e']}
    end
    after = entry[1]
  end
end
return found
"""
)

ACK = (
    _PRELUDE
    + """
local last = last_id(KEYS[1])
if not last or ARGV[2] == '0-0' or before(last, ARGV[2]) then return -1 end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and not before(current, ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
)

STATS = (
    _PRELUDE
    + """
local now = now_us()
sweep(KEYS[1], KEYS[2], now)
local live = redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%d', now), '+inf')
-- The first live entry from either end: after the sweep, expired ones are rare.
local function published(command, from, to)
  local entries = redis.call(command, KEYS[1], from, to, 'COUNT', 100)
  while #entries > 0 do
    local last
    for _, entry in ipairs(entries) do
      local fields = {}
      for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
      if tonumber(fields['e']) > now then return fields['p'] end
      last = entry[1]
    end
    from = '(' .. last
    entries = redis.call(command, KEYS[1], from, to, 'COUNT', 100)
  end
  return false
end
local oldest, newest = false, false
if live > 0 then
  oldest = published('XRANGE', '-', '+')
  newest = published('XREVRANGE', '+', '-')
end
return {live, oldest, newest, redis.call('HLEN', KEYS[3])}
"""
)

DELETE = """
-- XTRIM, not DEL: the emptied stream keeps its last id, so ids are never
-- issued twice (a DEL lets the same millisecond's ids come back).
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
redis.call('DEL', KEYS[2], KEYS[3])
return 0
"""


@final
class RedisTopics(TopicStore):
    """Topics on a :class:`~bridge.backends.redis.RedisBackend`'s server."""

    def __init__(self, backend: Backend) -> None:
        assert isinstance(backend, RedisBackend)
        self.url = backend.url
        self.prefix = backend.key_prefix
        register = backend.client.register_script
        self._publish, self._read = register(PUBLISH), register(READ)
        self._ack, self._stats = register(ACK), register(STATS)
        self._delete = register(DELETE)

    def _keys(self, topic: str) -> tuple[str, str, str]:
        base = f"{queue_keys(self.prefix, topic)[1]}:topic"
        return base, f"{base}:expiry", f"{base}:subs"

    def publish(self, topic: str, payloads: Sequence[bytes], ttl: float) -> list[str]:
        stream, expiry, _ = self._keys(topic)
        ids = self._call("publish", self._publish, [stream, expiry], [round(ttl * 1e6), *payloads])
        return [_text(i) for i in ids]

    def read(self, topic: str, subscriber: str, limit: int, start: Start) -> list[StoredMessage]:
        rows = self._call("read", self._read, self._keys(topic), [subscriber, limit, start])
        return [
            StoredMessage(_text(i), bytes(d), int(p) / 1e6, int(e) / 1e6) for i, d, p, e in rows
        ]

    def ack(self, topic: str, subscriber: str, position: str) -> bool | None:
        if not _ID.match(position):
            return None
        stream, _, subs = self._keys(topic)
        moved = self._call("ack", self._ack, [stream, subs], [subscriber, position])
        return None if moved < 0 else bool(moved)

    def stats(self, topic: str) -> TopicStats:
        live, oldest, newest, subs = self._call("stats", self._stats, self._keys(topic), [])
        return TopicStats(
            int(live),
            int(oldest) / 1e6 if oldest else None,
            int(newest) / 1e6 if newest else None,
            int(subs),
        )

    def delete_topic(self, topic: str) -> None:
        self._call("delete_topic", self._delete, self._keys(topic), [])

    def _call(self, operation: str, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys=list(keys), args=list(args))
        except (redis.RedisError, UnicodeError) as exc:
            raise _error(self.url, operation, exc) from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _error(url: str, operation: str, exc: Exception) -> BackendError:
    message = f"topic {operation} on {url} failed: {str(exc).strip() or type(exc).__name__}"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return BackendUnavailableError(message)
    return BackendError(message)
