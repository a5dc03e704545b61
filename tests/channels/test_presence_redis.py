"""RedisPresenceManager against a real redis-server."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import pytest
import redis.asyncio as aioredis

from channels import errors
from channels.presence_redis import RedisPresenceManager
from channels.types import ClientInfo
from tests.helpers.redis_server import RedisServer, wait_until_async

pytestmark = pytest.mark.redis


@contextlib.asynccontextmanager
async def managers(url: str, ttl: float = 60.0, n: int = 2) -> AsyncIterator[list[RedisPresenceManager]]:
    out = [RedisPresenceManager([url], prefix="t", ttl=ttl, cluster=False, socket_timeout=0.5) for _ in range(n)]
    try:
        for m in out:
            await m.start()
        yield out
    finally:
        for m in out:
            await m.close()


@pytest.mark.gen_test(timeout=30)
async def test_presence_spans_managers(redis_url: str) -> None:
    """Entries added through two managers are seen by both; stats count users."""
    async with managers(redis_url) as [a, b]:
        await a.add("room", ClientInfo(client="c1", user="alice", conn_info={"n": 1}))
        await b.add("room", ClientInfo(client="c2", user="bob"))
        await b.add("room", ClientInfo(client="c3", user="bob"))
        for m in (a, b):
            pres = await m.presence("room")
            assert set(pres) == {"c1", "c2", "c3"}
            assert pres["c1"] == ClientInfo(client="c1", user="alice", conn_info={"n": 1})
            assert await m.stats("room") == (3, 2)
        await a.remove("room", "c2")
        assert set(await b.presence("room")) == {"c1", "c3"}
        assert await b.stats("room") == (2, 2)
        assert await a.presence("empty") == {}
        assert await a.stats("empty") == (0, 0)
        assert a.healthy() and b.healthy()


@pytest.mark.gen_test(timeout=30)
async def test_entries_expire_unless_refreshed(redis_url: str) -> None:
    """After ttl an entry is gone (and cleaned from Redis) unless re-added."""
    async with managers(redis_url, ttl=1.0) as [a, b]:
        await a.add("room", ClientInfo(client="dead", user="u1"))
        await b.add("room", ClientInfo(client="alive", user="u2"))

        async def refreshed_presence() -> set[str]:
            await b.add("room", ClientInfo(client="alive", user="u2"))  # the live node refreshes
            return set(await a.presence("room"))

        assert await wait_until_async(refreshed_presence, {"alive"}, timeout=5.0)
        assert await b.stats("room") == (1, 1)
        c = aioredis.Redis.from_url(redis_url)
        keys = a._shards.keys("room")
        assert await c.zrange(keys.presence_zset, 0, -1) == [b"alive"]
        assert await c.hkeys(keys.presence_hash) == [b"alive"]
        assert 0 < await c.ttl(keys.presence_hash) <= 3  # idle channels vanish too
        await c.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_redis_down_raises_backend_unavailable(redis_server: RedisServer) -> None:
    """Presence calls fail fast with a temporary error while Redis is down, then recover."""
    async with managers(redis_server.url, n=1) as [a]:
        await a.add("room", ClientInfo(client="c1", user="u1"))
        redis_server.stop()
        with pytest.raises(errors.BackendUnavailable):
            await a.presence("room")
        with pytest.raises(errors.BackendUnavailable):
            await a.add("room", ClientInfo(client="c1", user="u1"))
        assert not a.healthy()
        redis_server.start()
        await a.add("room", ClientInfo(client="c1", user="u1"))
        assert set(await a.presence("room")) == {"c1"}
        assert a.healthy()


@pytest.mark.gen_test(timeout=30)
async def test_presence_in_cluster_mode(redis_cluster: RedisServer) -> None:
    """cluster=True: the hash-tagged presence keys work in one script."""
    url = redis_cluster.url.rsplit("/", 1)[0]
    m = RedisPresenceManager([url], prefix="t", ttl=60, cluster=True, socket_timeout=0.5)
    await m.start()
    try:
        await m.add("room", ClientInfo(client="c1", user="u1"))
        assert set(await m.presence("room")) == {"c1"}
        assert await m.stats("room") == (1, 1)
    finally:
        await m.close()
