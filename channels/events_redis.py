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
recorded once however many nodes see theirs. A node that dies without
leaving keeps its membership (the channel stays occupied): docs/EVENTS.md.
The outbox uses the first of ``redis_urls`` (not Redis Cluster).
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

_TRANSITION = """
local changed
if ARGV[2] == '1' then
  changed = redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1
else
  changed = redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0
end
if changed then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
  return 1
end
return 0
"""


class RedisOutbox:
    def __init__(self, url: str, prefix: str, node_id: str, *, claim_idle: float = 30.0, max_len: int = 1_000_000) -> None:
        self.url = url
        self.stream = f"{prefix}:events"
        self.occupancy_prefix = f"{prefix}:occupied:"
        self.consumer = node_id
        self.claim_idle_ms = int(claim_idle * 1000)
        self.max_len = max_len
        self._redis: aioredis.Redis | None = None
        self._script: object | None = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = client_for_url(self.url, decode_responses=False)  # redis+sentinel:// too
        return self._redis

    async def start(self) -> None:
        await self._ensure_group()
        self._script = self.redis.register_script(_TRANSITION)

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

    async def transition(self, channel: str, occupied: bool, event: Event) -> bool:
        script = self._script or self.redis.register_script(_TRANSITION)
        keys = [self.occupancy_prefix + channel, self.stream]
        args = [self.consumer, "1" if occupied else "0", event.encode(), self.max_len]
        return bool(await script(keys=keys, args=args))  # type: ignore[operator]

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
