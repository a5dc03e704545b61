"""RedisBroker and presence on a three-master Redis Cluster: channels spread over servers, clients follow the slot map."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from channels.errors import BackendUnavailable
from channels.history_memory import MemoryHistoryStore
from channels.presence_redis import RedisPresenceManager
from channels.redis_persist import GROUP
from channels.redis_pubsub import hash_tag
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


@pytest.mark.gen_test(timeout=120)
async def test_pubsub_follows_a_failover(redis_cluster_replicated: list[RedisServer]) -> None:
    """The primary of a third of the slots fails over to its replica and dies: the subscriber's pub/sub follows
    the new layout, tells its subscribers to recover (resync), and publications after the failover arrive."""
    primary, replica = redis_cluster_replicated[0], redis_cluster_replicated[3]
    url = f"redis://127.0.0.1:{redis_cluster_replicated[1].port}"  # a seed that survives
    async with nodes([url], cluster=True) as [(a, _), (b, rb)]:
        cluster = b._shards.client(0)
        lo, hi = primary.slots or (0, -1)
        moving = [ch for ch in CHANNELS if lo <= cluster.keyslot(b._shards.keys(ch).topic) <= hi]
        staying = [ch for ch in CHANNELS if ch not in moving][:3]
        assert moving and staying
        for ch in moving + staying:
            await b.subscribe(ch)
            await a.publish(ch, pub("before"), NO_HIST)
        assert await wait_until(lambda: all(rb.pubs[ch] for ch in moving + staying), 10)

        with replica.client() as c:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")

        def promoted() -> bool:
            with replica.client() as c:
                return c.info("replication").get("role") == "master"

        assert await wait_until(promoted, 10)
        primary.stop()

        def arrived_after(ch: str) -> bool:
            return any(str(p.data).startswith("after") for p in rb.pubs[ch])

        deadline, k = time.monotonic() + 30, 0
        while not all(arrived_after(ch) for ch in moving + staying) and time.monotonic() < deadline:
            k += 1
            for ch in moving + staying:
                try:
                    await a.publish(ch, pub(f"after{k}"), NO_HIST)
                except BackendUnavailable:
                    pass  # the publisher's client re-reads the slot map after a failure
            await asyncio.sleep(0.2)
        assert all(arrived_after(ch) for ch in moving + staying), {ch: [p.data for p in rb.pubs[ch]] for ch in moving}
        assert b.relinks >= 1
        assert rb.resyncs  # the hub makes its subscribers recover what the move may have lost
        assert replica.port in {int(ep.name.rsplit(":", 1)[1]) for ep in b._shards.endpoints()}


def test_hash_tag_is_what_redis_hashes() -> None:
    """The first non-empty {...} of a key, else the whole key (Redis Cluster's rule)."""
    assert hash_tag(b"t:{17}:ch:room") == b"17"
    assert hash_tag(b"t:{}:x{5}") == b"t:{}:x{5}"  # an empty first tag: the whole key
    assert hash_tag(b"plain") == b"plain"
    assert hash_tag(b"a{b") == b"a{b"


@pytest.mark.gen_test(timeout=60)
async def test_reconnect_resubscribes_topics_of_many_slots(redis_cluster3: list[RedisServer]) -> None:
    """A dropped pub/sub connection comes back with all its topics although they span many hash slots
    (one SSUBSCRIBE may only name one slot), and tells the node to resync."""
    url = f"redis://127.0.0.1:{redis_cluster3[0].port}"
    async with nodes([url], cluster=True) as [(a, _), (b, rb)]:
        await asyncio.gather(*(b.subscribe(ch) for ch in CHANNELS))  # one batch per link
        for link in b._links:
            link.kill()
        assert await wait_until(lambda: len(rb.resyncs) == len(b._links) and b.healthy(), 15)
        for ch in CHANNELS:
            await a.publish(ch, pub("back"), NO_HIST)
        assert await wait_until(lambda: all([p.data for p in rb.pubs[ch]] == ["back"] for ch in CHANNELS), 10)
