"""redis+sentinel:// URLs (Centrifugo's spelling) and RedisBroker/presence behind real sentinels."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator

import pytest
import redis.asyncio as aioredis

from channels import errors
from channels.broker_redis import RedisBroker
from channels.errors import BackendUnavailable
from channels.events import Event
from channels.events_redis import RedisOutbox
from channels.hub import Hub
from channels.namespaces import build_namespaces
from channels.presence_redis import RedisPresenceManager
from channels.redis_shards import RedisShards, SentinelAddress, parse_sentinel_url
from channels.types import ClientInfo, HistoryQuery, StreamOptions
from server.settings import ConfigError, load
from tests.channels.test_broker_redis import FAST, nodes, pub
from tests.channels.test_hub import OPEN, FakeSub, info
from tests.helpers.redis_server import SentinelGroup, redis_sentinel, wait_until  # noqa: F401

HIST = StreamOptions(history_size=100, history_ttl=300)


def test_centrifugo_form() -> None:
    """The first sentinel in the host part, the others as repeated addr=, the master name as a query option."""
    a = parse_sentinel_url(
        "redis+sentinel://127.0.0.1:26379/2?sentinel_master_name=mymaster&addr=10.0.0.2:26380&addr=10.0.0.3"
    )
    assert a == SentinelAddress(
        sentinels=(("127.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)), master_name="mymaster", db=2
    )


def test_credentials() -> None:
    """user:password@ is the master's, sentinel_user/sentinel_password the sentinels'; neither is logged."""
    a = parse_sentinel_url(
        "redis+sentinel://app:s%40cret@h1:1?sentinel_master_name=m&addr=h2:2&sentinel_user=su&sentinel_password=sp"
    )
    assert a.sentinels == (("h1", 1), ("h2", 2))
    assert (a.username, a.password, a.sentinel_username, a.sentinel_password) == ("app", "s@cret", "su", "sp")
    assert "s@cret" not in a.name and "sp" not in repr(a)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h1:26379", "sentinel_master_name is missing"),
        ("redis+sentinel://h1:26379?sentinel_master_name=", "sentinel_master_name is missing"),
        ("redis+sentinel://h1:port?sentinel_master_name=m", "is not a sentinel HOST:PORT"),
        ("redis+sentinel://h1:99999?sentinel_master_name=m", "is not a sentinel HOST:PORT"),
        ("redis+sentinel://h1/x?sentinel_master_name=m", "is not a number"),
        ("redis+sentinel://?sentinel_master_name=m", "no sentinel address"),
        ("redis+sentinel://h1?sentinel_master_name=m&master=m", "unknown option 'master'"),
        ("redis+sentinel://h1:1,h2:2?sentinel_master_name=m", "&addr=HOST:PORT"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    """Each malformed URL is refused with the part to fix."""
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)


def test_settings_accept_the_scheme_and_refuse_bad_ones() -> None:
    """checkconfig/serve take a sentinel URL with the redis engine and name the missing master name in one line."""
    url = "redis+sentinel://127.0.0.1:26379?sentinel_master_name=mymaster&addr=127.0.0.1:26380"
    assert load(None, environ={}, overrides={"engine": "redis", "redis_urls": url}).redis_urls == (url,)
    with pytest.raises(ConfigError, match="sentinel_master_name is missing") as e:
        load(None, environ={"SQUALL_ENGINE": "redis", "SQUALL_REDIS_URLS": "redis+sentinel://127.0.0.1:26379"})
    assert e.value.key == "redis_urls"
    with pytest.raises(ConfigError, match="do not mix") as e:
        load(None, environ={}, overrides={"engine": "redis", "redis_urls": url, "redis_cluster": True})


def test_cluster_and_sentinel_refused() -> None:
    """redis_cluster with a sentinel URL is refused rather than half-used."""
    with pytest.raises(ValueError, match="do not mix"):
        RedisShards(["redis+sentinel://h:1?sentinel_master_name=m"], prefix="t", cluster=True)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_broker_follows_a_sentinel_failover(redis_sentinel: SentinelGroup) -> None:
    """The master is SIGKILLed: publishing resumes on the promoted replica, the subscriber's pub/sub link
    reconnects there and reports a resync, and the stream keeps its epoch and offsets."""
    g = redis_sentinel
    old = g.master()
    async with nodes([g.url]) as [(a, _), (b, rb)]:
        await b.subscribe("room")
        before = [await a.publish("room", pub(i), HIST) for i in range(5)]
        assert [p.offset for p in before] == [1, 2, 3, 4, 5]
        assert await wait_until(lambda: len(rb.pubs["room"]) == 5, 10)
        assert not rb.resyncs

        old.stop()
        new = g.wait_failover(old)
        assert new is not old

        deadline, after = time.monotonic() + 30, None
        while after is None and time.monotonic() < deadline:
            try:
                after = await a.publish("room", pub("after"), HIST)
            except BackendUnavailable:
                await asyncio.sleep(0.2)  # the pool asks the sentinels again on its next connection
        assert after is not None, "publishing never resumed after the failover"
        assert after.epoch == before[0].epoch and after.offset == 6  # replicated: same stream
        assert await wait_until(lambda: any(p.data == "after" for p in rb.pubs["room"]), 20)
        assert rb.resyncs, "the pub/sub reconnect did not report a resync"
        assert b.healthy() and a.healthy()
        res = await b.history("room", HistoryQuery(limit=-1), HIST)
        assert [p.data for p in res.publications] == [0, 1, 2, 3, 4, "after"]
        with new.client() as c:
            assert any(k.startswith(b"t:{0}:") for k in c.keys("t:*"))  # written on the promoted server


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_presence_behind_sentinels(redis_sentinel: SentinelGroup) -> None:
    """Presence entries are written to and read from the master the sentinels name."""
    m = RedisPresenceManager([redis_sentinel.url], prefix="t", ttl=30, cluster=False)
    try:
        await m.start()
        await m.add("room", ClientInfo(client="c1", user="u1"))
        assert set((await m.presence("room")).keys()) == {"c1"}
        with redis_sentinel.master().client() as c:
            assert c.keys("t:*ph:room")
    finally:
        await m.close()


@contextlib.asynccontextmanager
async def redis_hub(url: str) -> AsyncIterator[Hub]:
    """A hub on the Redis broker and presence (quick pings and reconnects), closed afterwards."""
    ns = build_namespaces({}, [{"name": "h", "history_size": 10, **OPEN}])
    hub = Hub(RedisBroker([url], prefix="t", node_id="n1", history=None, hot_window=100, cluster=False, **FAST),
              RedisPresenceManager([url], prefix="t", ttl=30, cluster=False), ns)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()


async def killed_pubsub_resynced(hub: Hub, url: str) -> None:
    """CLIENT KILL the hub's pub/sub connection and wait for its resync to finish."""
    broker = hub.broker
    assert isinstance(broker, RedisBroker)
    before = broker._links[0].reconnects
    c = aioredis.Redis(**url_kwargs(url))
    try:
        assert await c.client_kill_filter(_type="pubsub") >= 1
    finally:
        await c.aclose()
    assert await wait_until(lambda: broker._links[0].reconnects > before and broker.healthy(), 15)
    await asyncio.sleep(0.2)
    await hub.drain_background()


def url_kwargs(url: str) -> dict[str, Any]:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    return {"host": host, "port": int(port)}


@pytest.mark.redis
@pytest.mark.gen_test(timeout=60)
async def test_resync_keeps_subscribers_when_the_stream_holds_what_was_delivered(redis_url: str) -> None:
    """A pub/sub reconnect with nothing missed: the last delivered publication read back from Redis compares
    equal, so nobody is disconnected and the epoch stays."""
    async with redis_hub(redis_url) as hub:
        s = FakeSub("s")
        await hub.subscribe(s, "h:ok", hub.namespaces.lookup("h:ok"), info("s"))
        first = await hub.publish("h:ok", {"n": [1, 2.5, "x"], "t": None})
        assert await wait_until(lambda: len(s.pubs()) == 1, 10)
        await killed_pubsub_resynced(hub, redis_url)
        assert s.disconnects == []
        res = await hub.history("h:ok", HistoryQuery(limit=0))
        assert res.position.epoch == first.epoch


@pytest.mark.redis
@pytest.mark.gen_test(timeout=60)
async def test_resync_starts_a_new_epoch_when_delivered_publications_are_gone(redis_url: str) -> None:
    """The stream no longer holds what this node delivered (rewritten at the same offset, as after a failover
    that lost writes): the resync starts a new epoch and its subscribers must recover (3010)."""
    async with redis_hub(redis_url) as hub:
        s = FakeSub("s")
        opts = hub.namespaces.lookup("h:lost")
        await hub.subscribe(s, "h:lost", opts, info("s"))
        first = await hub.publish("h:lost", "delivered")
        assert await wait_until(lambda: len(s.pubs()) == 1, 10)
        broker = hub.broker
        assert isinstance(broker, RedisBroker)
        keys = broker._shards.keys("h:lost")
        c = aioredis.Redis(**url_kwargs(redis_url))
        try:  # what a promoted replica that missed the write, then took another, looks like
            await c.hset(keys.meta, "s", 0)
            await c.delete(keys.window)
        finally:
            await c.aclose()
        second = await hub.publish("h:lost", "other")  # offset 1 again: this node drops it as a duplicate
        assert (second.offset, second.epoch) == (first.offset, first.epoch)
        await asyncio.sleep(0.3)
        assert len(s.pubs()) == 1 and s.disconnects == []
        await killed_pubsub_resynced(hub, redis_url)
        assert s.disconnects == [errors.INSUFFICIENT_STATE.code]
        res = await hub.history("h:lost", HistoryQuery(limit=0))
        assert res.position.epoch != first.epoch


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_broker_follows_a_graceful_sentinel_failover(redis_sentinel: SentinelGroup) -> None:
    """SENTINEL FAILOVER: the old master stays up as a replica. Publishing moves to the new master and the
    subscriber's pub/sub link does too (a link left on the demoted server would hear nothing)."""
    g = redis_sentinel
    old = g.master()
    async with nodes([g.url]) as [(a, _), (b, rb)]:
        await b.subscribe("room")
        await a.publish("room", pub("before"), HIST)
        assert await wait_until(lambda: len(rb.pubs["room"]) == 1, 10)
        with g.sentinels[0].client() as c:
            assert c.execute_command("SENTINEL", "FAILOVER", g.MASTER_NAME)
        new = g.wait_failover(old)
        with old.client() as c:  # demoted, not dead
            assert await wait_until(lambda: c.info("replication").get("role") == "slave", 20)

        deadline, k = time.monotonic() + 30, 0
        while not any(str(p.data).startswith("after") for p in rb.pubs["room"]) and time.monotonic() < deadline:
            k += 1
            try:
                await a.publish("room", pub(f"after{k}"), HIST)
            except BackendUnavailable:
                pass  # a pooled connection to the demoted master answers READONLY once, then is replaced
            await asyncio.sleep(0.2)
        got = [p.data for p in rb.pubs["room"]]
        assert any(str(d).startswith("after") for d in got), got
        with new.client() as c:
            assert c.pubsub_numsub(b._shards.keys("room").topic)[0][1] == 1  # the link lives on the new master


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_events_outbox_behind_sentinels(redis_sentinel: SentinelGroup) -> None:
    """The lifecycle events outbox takes the same redis+sentinel:// URL and writes to the named master."""
    box = RedisOutbox(redis_sentinel.url, "t", "n1")
    try:
        await box.start()
        await box.put([Event(id="e1", type="connect", time_ms=1, node="n1", body={"client": "c1"})])
        got = await box.read(10, 1.0)
        assert [e.id for _, e in got] == ["e1"]
        with redis_sentinel.master().client() as c:
            assert c.xlen("t:events") == 1
    finally:
        await box.close()
