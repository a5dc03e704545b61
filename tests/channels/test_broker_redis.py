"""RedisBroker against real redis-server processes, two nodes per test."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any, AsyncIterator, Callable

import hiredis
import pytest
import redis.asyncio as aioredis

from channels import errors
from channels.broker_redis import RedisBroker
from channels.history_memory import MemoryHistoryStore
from channels.redis_persist import GROUP
from channels.types import ClientInfo, HistoryQuery, Publication, StreamOptions, StreamPosition
from tests.helpers.redis_server import MutingProxy, RedisServer, wait_until, wait_until_async

pytestmark = pytest.mark.redis

HIST = StreamOptions(history_size=5, history_ttl=300)
NO_HIST = StreamOptions()


class Recorder:
    """A plain BrokerEventHandler that remembers what arrived, in order."""

    def __init__(self) -> None:
        self.pubs: dict[str, list[Publication]] = defaultdict(list)
        self.joins: list[tuple[str, ClientInfo]] = []
        self.leaves: list[tuple[str, ClientInfo]] = []
        self.controls: list[bytes] = []
        self.resyncs: list[float] = []

    def on_publication(self, channel: str, pub: Publication) -> None:
        self.pubs[channel].append(pub)

    def on_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info))

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info))

    def on_control(self, data: bytes) -> None:
        self.controls.append(data)

    def on_broker_resync(self) -> None:
        self.resyncs.append(time.monotonic())


# Short intervals keep the tests quick; timeouts stay generous so a loaded CI
# machine does not look like a dead Redis.
FAST: dict[str, Any] = {"ping_interval": 0.2, "ping_timeout": 3.0, "reconnect_cap": 0.3, "socket_timeout": 2.0}


@contextlib.asynccontextmanager
async def nodes(
    urls: list[str],
    n: int = 2,
    history: Callable[[int], Any] | None = None,
    hot_window: int = 100,
    first_id: int = 0,
    cluster: bool = False,
    **kw: Any,
) -> AsyncIterator[list[tuple[RedisBroker, Recorder]]]:
    """``n`` started brokers on the same Redis servers, closed afterwards."""
    out: list[tuple[RedisBroker, Recorder]] = []
    options = {**FAST, **kw}
    try:
        for i in range(n):
            b = RedisBroker(
                urls,
                prefix="t",
                node_id=f"node{first_id + i}",
                history=history(i) if history else None,
                hot_window=hot_window,
                cluster=cluster,
                **options,
            )
            r = Recorder()
            await b.start(r)
            out.append((b, r))
        yield out
    finally:
        for b, _ in out:
            await b.close()


def pub(data: Any) -> Publication:
    return Publication(data=data, info=ClientInfo(client="c1", user="u1"))


async def numsub(url: str, topic: bytes) -> int:
    c = aioredis.Redis.from_url(url)
    try:
        res = await c.pubsub_numsub(topic)
        return int(res[0][1])
    finally:
        await c.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_cross_node_delivery_in_order(redis_url: str) -> None:
    """Concurrent publishers on two nodes: both nodes see one order, consecutive offsets."""
    async with nodes([redis_url]) as [(a, ra), (b, rb)]:
        await a.subscribe("room")
        await b.subscribe("room")
        results = await asyncio.gather(
            *(node.publish("room", pub(i), HIST) for i in range(40) for node in (a, b))
        )
        assert sorted(p.offset for p in results) == list(range(1, 81))
        assert await wait_until(lambda: len(ra.pubs["room"]) == 80 and len(rb.pubs["room"]) == 80)
        for rec in (ra, rb):
            assert [p.offset for p in rec.pubs["room"]] == list(range(1, 81))
        assert [p.data for p in ra.pubs["room"]] == [p.data for p in rb.pubs["room"]]
        assert ra.pubs["room"][0].info == ClientInfo(client="c1", user="u1")
        assert len({p.epoch for p in ra.pubs["room"]}) == 1


@pytest.mark.gen_test(timeout=30)
async def test_no_echo_duplication(redis_url: str) -> None:
    """Each publication, join and control reaches every node exactly once."""
    async with nodes([redis_url]) as [(a, ra), (b, rb)]:
        await a.subscribe("room")
        await b.subscribe("room")
        await a.publish("room", pub("x"), NO_HIST)
        await a.publish_join("room", ClientInfo(client="c9", user="u9"))
        await a.publish_leave("room", ClientInfo(client="c9", user="u9"))
        await a.publish_control(b"ctl")
        assert ra.controls == [b"ctl"]  # delivered locally before the call returned
        assert await wait_until(lambda: rb.controls and len(rb.leaves) == 1 and len(ra.leaves) == 1)
        await asyncio.sleep(0.3)  # room for any duplicate to show up
        for rec in (ra, rb):
            assert [p.data for p in rec.pubs["room"]] == ["x"]
            assert [i.client for _, i in rec.joins] == ["c9"]
            assert [i.client for _, i in rec.leaves] == ["c9"]
            assert rec.controls == [b"ctl"]
        assert ra.pubs["room"][0].offset == 0


@pytest.mark.gen_test(timeout=30)
async def test_interest_based_fanout(redis_url: str) -> None:
    """A node gets a channel only while subscribed; NUMSUB follows subscribe/unsubscribe."""
    async with nodes([redis_url]) as [(a, ra), (b, rb)]:
        topic = a._shards.keys("room").topic
        assert await numsub(redis_url, topic) == 0
        await a.subscribe("room")
        assert await numsub(redis_url, topic) == 1  # confirmed before subscribe returned
        await b.publish("room", pub(1), NO_HIST)
        assert await wait_until(lambda: len(ra.pubs["room"]) == 1)
        await a.unsubscribe("room")
        assert await wait_until_async(lambda: numsub(redis_url, topic), 0)
        await b.publish("room", pub(2), NO_HIST)
        await b.subscribe("other")
        await a.publish("other", pub(3), NO_HIST)
        assert await wait_until(lambda: len(rb.pubs["other"]) == 1)
        assert [p.data for p in ra.pubs["room"]] == [1]
        assert "room" not in rb.pubs


@pytest.mark.gen_test(timeout=30)
async def test_subscribes_in_one_turn_are_batched(redis_server: RedisServer, redis_url: str) -> None:
    """Fifty concurrent subscribes go out as one SUBSCRIBE command, all confirmed."""
    async with nodes([redis_url], n=1) as [(a, ra)]:
        c = aioredis.Redis.from_url(redis_url)
        before = (await c.info("commandstats")).get("cmdstat_subscribe", {}).get("calls", 0)
        await asyncio.gather(*(a.subscribe(f"ch{i}") for i in range(50)))
        after = (await c.info("commandstats"))["cmdstat_subscribe"]["calls"]
        assert after - before == 1
        counts = await c.pubsub_numsub(*(a._shards.keys(f"ch{i}").topic for i in range(50)))
        assert all(n == 1 for _, n in counts)
        await c.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_history_semantics(redis_url: str) -> None:
    """limit, since, reverse and the retained size follow Centrifugo's semantics."""
    async with nodes([redis_url], n=1) as [(a, _)]:
        for i in range(1, 11):
            await a.publish("h", pub(i), HIST)
        res = await a.history("h", HistoryQuery(limit=-1), HIST)
        assert [p.offset for p in res.publications] == [6, 7, 8, 9, 10]
        assert [p.data for p in res.publications] == [6, 7, 8, 9, 10]
        epoch = res.position.epoch
        assert res.position == StreamPosition(10, epoch) and epoch
        assert (await a.history("h", HistoryQuery(limit=0), HIST)).publications == []
        res = await a.history("h", HistoryQuery(limit=2), HIST)
        assert [p.offset for p in res.publications] == [6, 7]
        res = await a.history("h", HistoryQuery(limit=2, reverse=True), HIST)
        assert [p.offset for p in res.publications] == [10, 9]
        res = await a.history("h", HistoryQuery(limit=-1, since=StreamPosition(7, epoch)), HIST)
        assert [p.offset for p in res.publications] == [8, 9, 10]
        res = await a.history("h", HistoryQuery(limit=2, since=StreamPosition(9, epoch), reverse=True), HIST)
        assert [p.offset for p in res.publications] == [8, 7]
        with pytest.raises(errors.UnrecoverablePosition):
            await a.history("h", HistoryQuery(limit=-1, since=StreamPosition(7, "other")), HIST)
        c = aioredis.Redis.from_url(redis_url)
        keys = a._shards.keys("h")
        assert 0 < await c.ttl(keys.window) <= 300  # history_ttl is key expiry
        await c.aclose()
        await a.remove_history("h")
        res = await a.history("h", HistoryQuery(limit=-1), HIST)
        assert res.publications == [] and res.position == StreamPosition(10, epoch)


@pytest.mark.gen_test(timeout=30)
async def test_position_of_new_stream_has_an_epoch(redis_url: str) -> None:
    """Reading an unknown stream creates its epoch, which the first publish keeps."""
    async with nodes([redis_url], n=1) as [(a, _)]:
        pos = (await a.history("fresh", HistoryQuery(limit=0), HIST)).position
        assert pos.offset == 0 and pos.epoch
        assert await a.publish("fresh", pub(1), HIST) == StreamPosition(1, pos.epoch)


@pytest.mark.gen_test(timeout=30)
async def test_epoch_changes_after_flushall(redis_url: str) -> None:
    """When Redis loses the stream, offsets restart under a new epoch."""
    async with nodes([redis_url], n=1) as [(a, _)]:
        first = await a.publish("e", pub(1), HIST)
        c = aioredis.Redis.from_url(redis_url)
        await c.flushall()
        await c.aclose()
        second = await a.publish("e", pub(2), HIST)
        assert second.offset == 1 and second.epoch != first.epoch
        with pytest.raises(errors.UnrecoverablePosition):
            await a.history("e", HistoryQuery(limit=-1, since=first), HIST)


@pytest.mark.gen_test(timeout=30)
async def test_sharding_over_two_servers(redis_factory: Callable[[], RedisServer]) -> None:
    """Channels spread over both servers by name hash; deliveries still work."""
    s1, s2 = redis_factory(), redis_factory()
    urls = [s1.url, s2.url]
    channels = [f"room{i}" for i in range(20)]
    async with nodes(urls) as [(a, ra), (b, rb)]:
        for ch in channels:
            await b.subscribe(ch)
        for ch in channels:
            await a.publish(ch, pub(ch), HIST)
        assert await wait_until(lambda: all(len(rb.pubs[ch]) == 1 for ch in channels))
        assert all(rb.pubs[ch][0].data == ch and rb.pubs[ch][0].offset == 1 for ch in channels)
        counts = []
        for server in (s1, s2):
            with server.client() as c:
                counts.append(len(c.keys("t:*:meta:*")))
        assert counts[0] > 0 and counts[1] > 0 and sum(counts) == 20
        # The control channel lives on the first server and reaches everyone.
        await a.publish_control(b"hello")
        assert await wait_until(lambda: rb.controls == [b"hello"])


@pytest.mark.gen_test(timeout=60)
async def test_redis_restart_during_steady_publishing(redis_server: RedisServer) -> None:
    """Every publish fails visibly or is delivered; both nodes resync and recover by themselves."""
    async with nodes([redis_server.url]) as [(a, ra), (b, rb)]:
        await a.subscribe("s")
        await b.subscribe("s")
        ok: list[tuple[float, StreamPosition]] = []
        failed = 0

        async def publisher(stop: asyncio.Event) -> None:
            nonlocal failed
            i = 0
            while not stop.is_set() and i < 2000:
                i += 1
                try:
                    pos = await asyncio.wait_for(a.publish("s", pub(i), HIST), 5)
                    ok.append((time.monotonic(), pos))
                except errors.BackendUnavailable:
                    failed += 1
                await asyncio.sleep(0.005)

        stop = asyncio.Event()
        task = asyncio.ensure_future(publisher(stop))
        assert await wait_until(lambda: len(ok) >= 20)
        # Acknowledged before the outage: delivered to B before Redis goes away.
        before = [p for _, p in ok]
        assert await wait_until(lambda: len(rb.pubs["s"]) >= len(before))
        assert [(p.offset, p.epoch) for p in rb.pubs["s"][: len(before)]] == [(p.offset, p.epoch) for p in before]
        redis_server.stop()
        assert await wait_until(lambda: not a.healthy() and not b.healthy())
        redis_server.start()
        assert await wait_until(lambda: a.healthy() and b.healthy() and ra.resyncs and rb.resyncs, 10)
        n = len(ok)
        assert await wait_until(lambda: len(ok) >= n + 20, 10)
        stop.set()
        await task
        assert failed >= 1
        # Everything acknowledged after B's resubscription reached B, in order.
        last_resync = rb.resyncs[-1]
        after = [pos for t, pos in ok if t > last_resync]
        assert after
        assert await wait_until(lambda: {(p.offset, p.epoch) for p in rb.pubs["s"]} >= {(p.offset, p.epoch) for p in after})
        assert ok[-1][1].epoch != before[0].epoch  # Redis lost the stream: new epoch


@pytest.mark.gen_test(timeout=30)
async def test_killed_pubsub_connection_is_replaced(redis_url: str) -> None:
    """CLIENT KILL TYPE pubsub: detected, resubscribed, resync reported."""
    async with nodes([redis_url]) as [(a, ra), (b, rb)]:
        await a.subscribe("k")
        c = aioredis.Redis.from_url(redis_url)
        await c.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await c.aclose()
        assert await wait_until(lambda: ra.resyncs and rb.resyncs and a.healthy(), 10)
        assert a.reconnects >= 1
        await b.publish("k", pub("after"), HIST)
        assert await wait_until(lambda: [p.data for p in ra.pubs["k"]] == ["after"])


@pytest.mark.gen_test(timeout=30)
async def test_deaf_pubsub_connection_is_replaced(redis_server: RedisServer) -> None:
    """A connection that stays open but delivers nothing is found by the ping and replaced."""
    proxy = MutingProxy(redis_server.port)
    await proxy.start()
    try:
        async with nodes([proxy.url], n=1) as [(a, ra)], nodes([redis_server.url], n=1, first_id=1) as [(b, _)]:
            await a.subscribe("deaf")
            await b.publish("deaf", pub("before"), HIST)
            assert await wait_until(lambda: len(ra.pubs["deaf"]) == 1)
            proxy.mute_existing()
            assert await wait_until(lambda: bool(ra.resyncs) and a.healthy(), 15)
            await b.publish("deaf", pub("after"), HIST)
            assert await wait_until(lambda: [p.data for p in ra.pubs["deaf"]][-1:] == ["after"])
    finally:
        await proxy.close()


@pytest.mark.gen_test(timeout=30)
async def test_redis_down_fails_fast(redis_server: RedisServer) -> None:
    """With Redis gone, publish/history/subscribe raise BackendUnavailable quickly."""
    async with nodes([redis_server.url], n=1) as [(a, _)]:
        redis_server.stop()
        t0 = time.monotonic()
        with pytest.raises(errors.BackendUnavailable):
            await a.publish("d", pub(1), HIST)
        with pytest.raises(errors.BackendUnavailable):
            await a.history("d", HistoryQuery(limit=-1), HIST)
        assert time.monotonic() - t0 < 5
        assert await wait_until(lambda: not a.healthy())
        with pytest.raises(errors.BackendUnavailable):
            await a.subscribe("d")


class FailingStore(MemoryHistoryStore):
    """A durable store whose writes fail, like a MongoDB that went away."""

    async def write(self, channel: str, pubs: list[Publication], opts: StreamOptions) -> None:
        raise ConnectionError("store down")


@pytest.mark.gen_test(timeout=30)
async def test_persist_log_and_durable_history(redis_url: str) -> None:
    """Publishes reach the durable store and are acked; history reads below the hot window."""
    store = MemoryHistoryStore()
    opts = StreamOptions(history_size=10)
    async with nodes([redis_url], n=1, history=lambda i: store, hot_window=3) as [(a, _)]:
        for i in range(1, 9):
            await a.publish("p", pub(i), opts)
        stored = await store.read("p", HistoryQuery(limit=-1), opts)
        assert [p.offset for p in stored.publications] == list(range(1, 9))
        c = aioredis.Redis.from_url(redis_url)
        keys = a._shards.keys("p")
        assert await c.llen(keys.window) == 3
        assert await c.xlen(keys.persist) == 0  # acknowledged and dropped
        await c.aclose()
        res = await a.history("p", HistoryQuery(limit=-1), opts)
        assert [p.data for p in res.publications] == list(range(1, 9))
        epoch = res.position.epoch
        res = await a.history("p", HistoryQuery(limit=-1, since=StreamPosition(2, epoch)), opts)
        assert [p.offset for p in res.publications] == [3, 4, 5, 6, 7, 8]
        res = await a.history("p", HistoryQuery(limit=2, reverse=True), opts)
        assert [p.offset for p in res.publications] == [8, 7]
        # backward iteration crosses from the hot window into the durable store
        back: list[int] = []
        since = None
        for _ in range(10):
            page = await a.history("p", HistoryQuery(limit=3, since=since, reverse=True), opts)
            if not page.publications:
                break
            back += [p.offset for p in page.publications]
            since = StreamPosition(page.publications[-1].offset, epoch)
        assert back == [8, 7, 6, 5, 4, 3, 2, 1]
        # a forward page that starts in the store and ends in the window
        res = await a.history("p", HistoryQuery(limit=4, since=StreamPosition(3, epoch)), opts)
        assert [p.offset for p in res.publications] == [4, 5, 6, 7]


@pytest.mark.gen_test(timeout=30)
async def test_dead_owner_entries_are_claimed(redis_url: str) -> None:
    """A publication whose durable write failed is persisted by another node's claimer."""
    store = MemoryHistoryStore()
    opts = StreamOptions(history_size=10)
    stores = {0: FailingStore(), 1: store}
    async with nodes(
        [redis_url], history=lambda i: stores[i], claim_interval=0.2, claim_min_idle=0.3
    ) as [(a, ra), (b, rb)]:
        await b.subscribe("d")
        with pytest.raises(errors.BackendUnavailable):
            await a.publish("d", pub("lost?"), opts)
        assert await wait_until(lambda: [p.data for p in rb.pubs["d"]] == ["lost?"])  # live anyway
        await a.close()  # the owner dies
        assert await wait_until(lambda: store._streams.get("d") is not None and store._streams["d"].top == 1, 10)
        stored = await store.read("d", HistoryQuery(limit=-1), opts)
        assert [(p.offset, p.data) for p in stored.publications] == [(1, "lost?")]
        c = aioredis.Redis.from_url(redis_url)
        persist = b._shards.keys("d").persist
        assert (await c.xpending(persist, GROUP))["pending"] == 0
        await c.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_cluster_mode_on_a_one_node_cluster(redis_cluster: RedisServer) -> None:
    """cluster=True: hash-tagged script keys, SSUBSCRIBE/SPUBLISH, history and control work."""
    url = redis_cluster.url.rsplit("/", 1)[0]
    async with nodes([url], cluster=True) as [(a, ra), (b, rb)]:
        for ch in ("c1", "c2", "c3"):
            await b.subscribe(ch)
            await a.publish(ch, pub(ch), HIST)
            await a.publish(ch, pub(ch + "!"), NO_HIST)
        assert await wait_until(lambda: all(len(rb.pubs[ch]) == 2 for ch in ("c1", "c2", "c3")))
        assert [p.offset for p in rb.pubs["c2"]] == [1, 0]
        res = await b.history("c2", HistoryQuery(limit=-1), HIST)
        assert [p.data for p in res.publications] == ["c2"]
        await a.publish_control(b"ctl")
        assert await wait_until(lambda: rb.controls == [b"ctl"])
        c = aioredis.Redis.from_url(url)
        topic = b._shards.keys("c1").topic
        assert (await c.execute_command("PUBSUB", "SHARDNUMSUB", topic))[1] == 1
        await c.aclose()


class SlowTopStore(MemoryHistoryStore):
    """A durable store whose top read takes a varying while (a loaded MongoDB), and starts at 10."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def position(self, channel: str) -> StreamPosition:
        self.reads += 1
        await asyncio.sleep(0.001 * (self.reads % 4))
        return StreamPosition(10, "")


@pytest.mark.gen_test(timeout=30)
async def test_first_publishes_of_a_stream_keep_their_order_across_the_top_read(redis_url: str) -> None:
    """Publishes queued together to a stream Redis has no epoch for share one top read and keep queue order."""
    stores: list[SlowTopStore] = []

    def store(_: int) -> SlowTopStore:
        stores.append(SlowTopStore())
        return stores[-1]

    async with nodes([redis_url], n=1, history=store) as [(a, _)]:
        positions = await asyncio.gather(*(a.publish("fresh", pub(i), HIST) for i in range(30)))
        assert [p.offset for p in positions] == list(range(11, 41))
        assert stores[0].reads == 1


@pytest.mark.parametrize("persist", [False, True])
def test_the_packed_publish_call_is_the_script_call(redis_url: str, persist: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's bytes equal hiredis packing of the script's keys and arguments, per channel and per options."""
    b = RedisBroker([redis_url], prefix="t", node_id="n1", history=MemoryHistoryStore() if persist else None,
                    hot_window=100, cluster=False, **FAST)
    commands: Any = b._shards.commands(0)
    sent: list[bytes] = []
    monkeypatch.setattr(commands, "run_packed", lambda script, data: sent.append(data))
    other = StreamOptions(history_size=9, history_ttl=60)
    calls = [("a", HIST, b"rec-1", "0000beef", -1), ("a", HIST, b"rec-2\r\n", "1234abcd", 0),
             ("b", HIST, b"", "ffffffff", 7), ("a", other, b"rec-3", "00000000", 0)]
    for channel, opts, record, epoch, top in calls:
        keys = b._shards.keys(channel)
        b._publish_call(commands, channel, keys, opts, record, epoch, top)
        script_keys, args = b._publish_args(channel, keys, opts, record, epoch, top)
        expected = hiredis.pack_command(("EVALSHA", b._publish_script.sha, len(script_keys), *script_keys, *args))
        assert sent[-1] == expected, (channel, opts)
    assert len(sent) == len(calls)
