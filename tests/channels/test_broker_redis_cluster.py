"""RedisBroker and presence on a three-master Redis Cluster: channels spread over servers, clients follow the slot map."""

from __future__ import annotations

from collections import Counter

import pytest
import redis.asyncio as aioredis

from channels.history_memory import MemoryHistoryStore
from channels.presence_redis import RedisPresenceManager
from channels.redis_persist import GROUP
from channels.types import ClientInfo, HistoryQuery, StreamOptions
from tests.channels.test_broker_redis import HIST, NO_HIST, nodes, pub
from tests.helpers.redis_server import RedisServer, wait_until

pytestmark = pytest.mark.redis

CHANNELS = [f"room{i}" for i in range(40)]


def owner(servers: list[RedisServer], slot: int) -> RedisServer:
    return next(s for s in servers if s.slots[0] <= slot <= s.slots[1])


@pytest.mark.gen_test(timeout=60)
async def test_pubsub_and_history_across_three_masters(redis_cluster3: list[RedisServer]) -> None:
    """40 channels land on all three servers; each gets its publications live, in order, and in history,
    through one sharded pub/sub connection per server, subscribed on the server that owns the channel."""
    url = f"redis://127.0.0.1:{redis_cluster3[0].port}"
    async with nodes([url], cluster=True) as [(a, _), (b, rb)]:
        endpoints = b._shards.endpoints()
        assert len(endpoints) == 3  # a pub/sub link per master
        for ch in CHANNELS:
            await b.subscribe(ch)
        for ch in CHANNELS:
            for k in range(3):
                await a.publish(ch, pub(f"{ch}/{k}"), HIST)
            await a.publish(ch, pub(f"{ch}/live"), NO_HIST)
        assert await wait_until(lambda: all(len(rb.pubs[ch]) == 4 for ch in CHANNELS), 15)
        for ch in CHANNELS:
            assert [p.data for p in rb.pubs[ch]] == [f"{ch}/0", f"{ch}/1", f"{ch}/2", f"{ch}/live"]
            assert [p.offset for p in rb.pubs[ch]] == [1, 2, 3, 0]
            res = await b.history(ch, HistoryQuery(limit=2, reverse=True), HIST)
            assert [p.data for p in res.publications] == [f"{ch}/2", f"{ch}/1"]
        # the channels really are spread, and each is subscribed where it lives
        cluster = b._shards.client(0)
        placed: Counter[int] = Counter()
        for ch in CHANNELS:
            topic = b._shards.keys(ch).topic
            server = owner(redis_cluster3, cluster.keyslot(topic))
            placed[server.port] += 1
            c = aioredis.Redis(host="127.0.0.1", port=server.port)
            try:
                assert (await c.execute_command("PUBSUB", "SHARDNUMSUB", topic))[1] == 1
            finally:
                await c.aclose()
        assert len(placed) == 3, placed


@pytest.mark.gen_test(timeout=60)
async def test_control_and_durable_history_across_three_masters(redis_cluster3: list[RedisServer]) -> None:
    """Control messages reach every node, and every bucket's persist log (spread over the masters) is
    written to the durable store and acknowledged."""
    url = f"redis://127.0.0.1:{redis_cluster3[0].port}"
    store = MemoryHistoryStore()
    opts = StreamOptions(history_size=10)
    async with nodes([url], cluster=True, history=lambda i: store, hot_window=2) as [(a, ra), (b, rb)]:
        await a.publish_control(b"hello")
        assert await wait_until(lambda: ra.controls == [b"hello"] and rb.controls == [b"hello"])
        for ch in CHANNELS:
            for k in range(4):
                await b.publish(ch, pub(k), opts)
        for ch in CHANNELS:
            res = await a.history(ch, HistoryQuery(limit=-1), opts)  # 2 from the window, 2 from the store
            assert [p.data for p in res.publications] == [0, 1, 2, 3]
        pending = 0
        for bucket in {a._shards.keys(ch).bucket for ch in CHANNELS}:
            pending += (await a._shards.client(bucket).xpending(a._shards.persist_key(bucket), GROUP))["pending"]
        assert pending == 0


@pytest.mark.gen_test(timeout=60)
async def test_presence_across_three_masters(redis_cluster3: list[RedisServer]) -> None:
    """Presence of channels on every master is shared by two managers."""
    url = f"redis://127.0.0.1:{redis_cluster3[0].port}"
    managers = [RedisPresenceManager([url], prefix="t", ttl=60, cluster=True, socket_timeout=1.0) for _ in range(2)]
    try:
        for m in managers:
            await m.start()
        for i, ch in enumerate(CHANNELS):
            await managers[i % 2].add(ch, ClientInfo(client=f"c{i}", user=f"u{i}"))
        for i, ch in enumerate(CHANNELS):
            assert set(await managers[(i + 1) % 2].presence(ch)) == {f"c{i}"}
    finally:
        for m in managers:
            await m.close()
