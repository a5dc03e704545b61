"""Cluster-wide presence in Redis, with entries that expire.

Per channel, like Centrifuge's Redis presence: a hash (client id -> packed
ClientInfo) and a sorted set (client id -> expiry time). An entry lives
``ttl`` seconds unless its node re-adds it (the hub does, periodically), so
the clients of a killed node disappear within ``ttl``. Reads drop expired
entries in the same script, so they never show and never pile up; both keys
also expire when a channel's presence is no longer refreshed at all.
"""

from __future__ import annotations

import contextlib
import time
from typing import AsyncIterator, Sequence

import msgpack

from channels.errors import BackendUnavailable
from channels.redis_errors import redis_call
from channels.redis_scripts import PRESENCE_ADD, PRESENCE_GET, PRESENCE_REMOVE
from channels.redis_shards import RedisShards
from channels.types import ClientInfo


class RedisPresenceManager:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix: str,
        ttl: float,
        cluster: bool,
        socket_timeout: float = 1.0,
    ) -> None:
        self._ttl = ttl
        self._shards = RedisShards(
            urls, prefix=prefix, cluster=cluster, socket_timeout=socket_timeout, connect_timeout=socket_timeout
        )
        commands = self._shards.commands(0)
        self._add = commands.script(PRESENCE_ADD)
        self._remove = commands.script(PRESENCE_REMOVE)
        self._get = commands.script(PRESENCE_GET)
        self._healthy = True

    async def start(self) -> None:
        async with self._tracked("start"):
            await self._shards.start()

    async def close(self) -> None:
        await self._shards.close()

    def healthy(self) -> bool:
        """The outcome of the last call (presence holds no connection of its own)."""
        return self._healthy

    @contextlib.asynccontextmanager
    async def _tracked(self, what: str) -> AsyncIterator[None]:
        """Maps Redis failures to BackendUnavailable and records health."""
        try:
            with redis_call(what):
                yield
        except BackendUnavailable:
            self._healthy = False
            raise
        self._healthy = True

    async def add(self, channel: str, info: ClientInfo) -> None:
        k = self._shards.keys(channel)
        key_ttl = max(1, int(self._ttl * 2) + 1)
        packed = msgpack.packb(info.to_dict(), use_bin_type=True)
        async with self._tracked("presence add"):
            await self._shards.commands(k.bucket).run_script(
                self._add,
                [k.presence_zset, k.presence_hash],
                [repr(time.time() + self._ttl), info.client, packed, key_ttl],
            )

    async def remove(self, channel: str, client_id: str) -> None:
        k = self._shards.keys(channel)
        async with self._tracked("presence remove"):
            await self._shards.commands(k.bucket).run_script(
                self._remove, [k.presence_zset, k.presence_hash], [client_id]
            )

    async def _live(self, channel: str) -> list[ClientInfo]:
        k = self._shards.keys(channel)
        async with self._tracked("presence"):
            raw = await self._shards.commands(k.bucket).run_script(
                self._get, [k.presence_zset, k.presence_hash], [repr(time.time())]
            )
        out: list[ClientInfo] = []
        for item in raw:
            try:
                d = msgpack.unpackb(item, raw=False)
            except (ValueError, msgpack.UnpackException):
                continue
            if isinstance(d, dict):
                out.append(ClientInfo.from_dict(d))
        return out

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return {info.client: info for info in await self._live(channel)}

    async def stats(self, channel: str) -> tuple[int, int]:
        live = await self._live(channel)
        return len(live), len({info.user for info in live})
