"""The Redis engine's outbox: a Redis Stream read through a consumer group.

Every node appends to one stream (``<prefix>:events``) and reads it as a
consumer of the group ``delivery``; an event is acknowledged (and deleted)
only once delivered, so it survives a Squall restart, a SIGKILL and a
webhook outage. Events a node read but never acknowledged (it died) are taken
over by a live node after ``claim_idle`` seconds (XAUTOCLAIM); the node still
retrying a batch keeps it by touching it (XCLAIM to itself).

Channel occupancy is a Redis set per channel of the nodes that have it
(``<prefix>:occupied:<channel>``); one script adds or removes this node and
appends ``channel_occupied``/``channel_vacated`` only when the set went from
empty to one member or back, atomically, so each cluster-wide transition is
recorded once however many nodes see theirs.

Dead nodes, as presence handles them: each node's channels are also a set
(``<prefix>:occupancy:node:<node>``) and the node has an expiry time in one
sorted set (``<prefix>:occupancy:nodes``), refreshed by its heartbeat and by
each of its transitions (Redis's clock, so node clocks do not matter). Every
live node's heartbeat also runs the sweep: one script takes an expired node's
channels out of their sets and appends ``channel_vacated`` for each that
became empty, so exactly one node reports each (the script is atomic). A node
that was swept while alive (a pause longer than the ttl) learns it from its
next heartbeat or transition (its entry was gone) and re-asserts its channels.
The outbox uses the first of ``redis_urls`` (not Redis Cluster: the sweep
names keys it finds).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from channels.events import Event
from channels.redis_shards import client_for_url

log = logging.getLogger("squall.events")

GROUP = "delivery"

SWEEP_BATCH = 1000  # channels of one dead node per sweep script (bounds the time Redis is busy)

# KEYS: channel set, stream, this node's channel set, node expiry zset
# ARGV: node, '1' occupied / '0' vacated, event, max_len, ttl ms
# returns {queued 1/0, known 1/0 (this node had a live entry before)}
_TRANSITION = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local score = redis.call('ZSCORE', KEYS[4], ARGV[1])
local known = (score and tonumber(score) >= now) and 1 or 0
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[1])
local changed
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[3], KEYS[1])
  changed = redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1
else
  redis.call('SREM', KEYS[3], KEYS[1])
  changed = redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0
end
if changed then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
  return {1, known}
end
return {0, known}
"""

# KEYS: node expiry zset; ARGV: node, ttl ms. Returns 1 when the node's entry was live.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if score and tonumber(score) >= now then return 1 end
return 0
"""

# KEYS: node expiry zset, stream
# ARGV: prefix of node channel sets, occupied-set prefix, max_len, id base, sweeping node, batch
# Takes up to ``batch`` channels of expired nodes out of their occupancy sets and
# appends channel_vacated for each set that became empty. Returns {vacated, more}.
_SWEEP = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local budget = tonumber(ARGV[6])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 10)
local n = 0
for _, node in ipairs(dead) do
  local nkey = ARGV[1] .. node
  local keys = redis.call('SPOP', nkey, budget)
  budget = budget - #keys
  for _, ckey in ipairs(keys) do
    if redis.call('SREM', ckey, node) == 1 and redis.call('SCARD', ckey) == 0 then
      n = n + 1
      local ev = cjson.encode({id = ARGV[4] .. '-' .. n, type = 'channel_vacated', time_ms = now,
        node = ARGV[5], channel = string.sub(ckey, #ARGV[2] + 1), expired_node = node})
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ev)
    end
  end
  if redis.call('SCARD', nkey) > 0 then return {n, 1} end
  redis.call('ZREM', KEYS[1], node)
  if budget <= 0 then return {n, 1} end
end
return {n, #dead == 10 and 1 or 0}
"""


class RedisOutbox:
    def __init__(self, url: str, prefix: str, node_id: str, *, claim_idle: float = 30.0, max_len: int = 1_000_000) -> None:
        self.url = url
        self.stream = f"{prefix}:events"
        self.occupancy_prefix = f"{prefix}:occupied:"
        self.node_channels_prefix = f"{prefix}:occupancy:node:"
        self.nodes_key = f"{prefix}:occupancy:nodes"
        self.node_ttl = 60.0  # seconds; the hub's heartbeat sets presence_ttl
        self.consumer = node_id
        self.claim_idle_ms = int(claim_idle * 1000)
        self.max_len = max_len
        self._redis: aioredis.Redis | None = None
        self._script: Any = None
        self._heartbeat: Any = None
        self._sweep: Any = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = client_for_url(self.url, decode_responses=False)  # redis+sentinel:// too
        return self._redis

    async def start(self) -> None:
        await self._ensure_group()
        self._script = self.redis.register_script(_TRANSITION)
        self._heartbeat = self.redis.register_script(_HEARTBEAT)
        self._sweep = self.redis.register_script(_SWEEP)

    async def _ensure_group(self) -> None:
        """The stream and its group (again after a Redis that lost its data restarted)."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def put(self, events: list[Event]) -> None:
        async with self.redis.pipeline(transaction=False) as p:
            for e in events:
                p.xadd(self.stream, {"e": e.encode()}, maxlen=self.max_len, approximate=True)
            await p.execute()

    async def transition(self, channel: str, occupied: bool, event: Event) -> tuple[bool, bool]:
        script = self._script or self.redis.register_script(_TRANSITION)
        keys = [self.occupancy_prefix + channel, self.stream, self.node_channels_prefix + self.consumer, self.nodes_key]
        args = [self.consumer, "1" if occupied else "0", event.encode(), self.max_len, self._ttl_ms()]
        queued, known = await script(keys=keys, args=args)
        return bool(queued), bool(known)

    def _ttl_ms(self) -> int:
        return max(1, int(self.node_ttl * 1000))

    async def heartbeat(self, ttl: float) -> bool:
        self.node_ttl = ttl
        script = self._heartbeat or self.redis.register_script(_HEARTBEAT)
        return bool(await script(keys=[self.nodes_key], args=[self.consumer, self._ttl_ms()]))

    async def sweep(self, id_base: str) -> int:
        """Report the channels of expired nodes vacated; the number reported."""
        script = self._sweep or self.redis.register_script(_SWEEP)
        total = 0
        for i in range(100):  # bounded: 100 x SWEEP_BATCH channels per heartbeat
            args: list[str | int] = [
                self.node_channels_prefix, self.occupancy_prefix, self.max_len, f"{id_base}{i}", self.consumer, SWEEP_BATCH,
            ]
            n, more = await script(keys=[self.nodes_key, self.stream], args=args)
            total += int(n)
            if not more:
                break
        return total

    async def read(self, count: int, block: float) -> list[tuple[str, Event]]:
        try:
            return await self._read(count, block)
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("events: the outbox's consumer group is gone (Redis lost its data?): creating it again")
            await self._ensure_group()
            return []

    async def _read(self, count: int, block: float) -> list[tuple[str, Event]]:
        r = self.redis
        out: list[tuple[str, Event]] = []
        # first what a dead (or restarted) node read and never acknowledged
        claimed: Any = await r.xautoclaim(self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=count)
        out += self._decoded(claimed[1])
        if not out:
            got: Any = await r.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count, block=max(1, int(block * 1000)))
            for _stream, entries in got or []:
                out += self._decoded(entries)
        return out

    def _decoded(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, Event]]:
        out = []
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile
                continue
            receipt = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                out.append((receipt, Event.decode(fields[b"e"])))
            except (KeyError, ValueError, TypeError):
                log.error("events: dropping malformed outbox entry %s", receipt)
        return out

    async def touch(self, receipts: list[str]) -> None:
        if receipts:
            ids: list[Any] = list(receipts)
            try:
                await self.redis.xclaim(self.stream, GROUP, self.consumer, 0, ids, justid=True)
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise

    async def ack(self, receipts: list[str]) -> None:
        if not receipts:
            return
        try:
            async with self.redis.pipeline(transaction=False) as p:
                p.xack(self.stream, GROUP, *receipts)
                p.xdel(self.stream, *receipts)
                await p.execute()
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise  # NOGROUP: Redis lost the group, and the entries with it: nothing left to ack

    async def pending(self) -> int:
        return int(await self.redis.xlen(self.stream))
