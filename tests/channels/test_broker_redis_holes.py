"""Recovery across a MongoDB outage on the Redis engine: what the durable store
misses is filled from the persist log, and a hole nobody has is never
reported as ``recovered: true``."""

from __future__ import annotations

import contextlib
import signal
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from channels import errors, recovery
from channels.broker_redis import RedisBroker
from channels.history_memory import MemoryHistoryStore
from channels.history_mongo import MongoHistoryStore
from channels.hub import Hub
from channels.namespaces import build_namespaces
from channels.presence_memory import MemoryPresenceManager
from channels.types import ClientInfo, HistoryQuery, HistoryResult, Publication, StreamOptions, StreamPosition
from tests.channels.test_broker_redis import Recorder
from tests.helpers.mongo_server import SecantusFactory, SecantusServer, secantus_factory  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.mongo]

OPTS = StreamOptions(history_size=100, history_ttl=300)


class Sub:
    """The least a Subscriber needs to be: records what the hub writes."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.user = ""
        self.frames: list[bytes] = []
        self.closed: list[int] = []

    @property
    def wire_key(self) -> str:
        return "t"

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return str(body.get("offset", 0)).encode()

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        self.frames.append(data)

    def disconnect(self, code: errors.DisconnectCode, reason: str | None = None) -> None:
        self.closed.append(code.code)


@contextlib.asynccontextmanager
async def broker_on(redis_url: str, mongo: SecantusServer) -> AsyncIterator[RedisBroker]:
    """One node whose claimer never runs in the test: only the persist log holds
    what the durable store missed."""
    store = MongoHistoryStore(mongo.url, database="holes", write_concern="", batch_window_ms=1.0, batch_size=100, timeout_ms=800)
    await store.start()
    broker = RedisBroker(
        [redis_url], prefix="holes", node_id="n1", history=store, hot_window=3, cluster=False,
        socket_timeout=2.0, claim_interval=3600.0, write_timeout=1.0,
    )
    try:
        yield broker
    finally:
        await broker.close()
        await store.close()


async def publish(broker: RedisBroker, first: int, last: int) -> int:
    """Publishes ``first..last``; returns how many were refused (not durable yet)."""
    refused = 0
    for i in range(first, last + 1):
        try:
            await broker.publish("c", Publication(data=i), OPTS)
        except errors.BackendUnavailable:
            refused += 1
    return refused


async def outage(broker: RedisBroker, mongo: SecantusServer) -> str:
    """1..2 durable, 3..8 published while MongoDB is down, 9..12 after it is back."""
    assert await publish(broker, 1, 2) == 0
    mongo.stop(signal.SIGTERM)  # SIGKILL loses acknowledged writes without --sync-on-commit (HISTORY.md)
    assert await publish(broker, 3, 8) == 6  # refused: in Redis and the persist log only
    mongo.start()
    for _ in range(50):  # the driver finds the server again
        if await publish(broker, 9, 9) == 0:
            break
    else:
        raise AssertionError("MongoDB did not come back")
    assert await publish(broker, 10, 12) == 0
    res = await broker.history("c", HistoryQuery(limit=0), OPTS)
    assert res.position.offset >= 12
    return res.position.epoch


async def recover(broker: RedisBroker, since: StreamPosition) -> tuple[bool, list[int], Hub]:
    ns = build_namespaces({}, [{"name": "r", "history_size": 100, "history_ttl": 300, "allow_subscribe_for_anonymous": True}])
    hub = Hub(broker, MemoryPresenceManager(), ns)
    await hub.start()
    sub = Sub("s1")
    out = await hub.subscribe(sub, "c", ns.lookup("r:x"), ClientInfo(client="s1"), recover=True, since=since)
    return out.recovered, [p.offset for p in out.publications], hub


@pytest.mark.gen_test(timeout=90)
async def test_hole_left_by_the_durable_store_is_filled_from_the_persist_log(
    redis_url: str, secantus_factory: SecantusFactory  # noqa: F811
) -> None:
    """Back after the outage, before any claimer ran: recovery from 1 returns 2..top whole."""
    mongo = secantus_factory()
    async with broker_on(redis_url, mongo) as broker:
        epoch = await outage(broker, mongo)
        res = await broker.history("c", HistoryQuery(limit=-1, since=StreamPosition(1, epoch)), OPTS)
        top = res.position.offset
        assert [p.offset for p in res.publications] == list(range(2, top + 1))
        ok, offsets, hub = await recover(broker, StreamPosition(1, epoch))
        try:
            assert ok and offsets == list(range(2, top + 1))
        finally:
            await hub.close()


@pytest.mark.gen_test(timeout=90)
async def test_hole_nobody_has_is_recovered_false(redis_url: str, secantus_factory: SecantusFactory) -> None:  # noqa: F811
    """With the persist log gone too, a hole in the middle of the range gives recovered false, reason counted."""
    mongo = secantus_factory()
    async with broker_on(redis_url, mongo) as broker:
        epoch = await outage(broker, mongo)
        c = aioredis.Redis.from_url(redis_url)
        try:
            await c.delete(broker._shards.keys("c").persist)  # the entries 3..8 are nowhere now
        finally:
            await c.aclose()
        ok, offsets, hub = await recover(broker, StreamPosition(1, epoch))
        try:
            assert not ok and offsets == []
            assert hub.stats.not_recovered_by[recovery.HOLE] == 1
        finally:
            await hub.close()


class ClaimedMidRead(MemoryHistoryStore):
    """A real in-memory store whose writes can be refused (an outage), and
    whose next read lets the claimer move every entry from the persist log
    into it after the read has looked (the race of a read with a claim)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.claim: Callable[[], Awaitable[int]] | None = None

    async def write(self, channel: str, pubs: list[Publication], opts: StreamOptions) -> None:
        if self.down:
            raise errors.BackendUnavailable("down")
        await super().write(channel, pubs, opts)

    async def read(self, channel: str, query: HistoryQuery, opts: StreamOptions) -> HistoryResult:
        res = await super().read(channel, query, opts)
        claim, self.claim = self.claim, None
        if claim is not None:
            assert await claim() > 0
        return res


@pytest.mark.gen_test(timeout=60)
async def test_entry_claimed_between_the_two_reads_is_not_a_hole(redis_url: str) -> None:
    """An entry written to the store after the store was read and acked before the log was scanned is still found."""
    store = ClaimedMidRead()
    broker = RedisBroker(
        [redis_url], prefix="claimrace", node_id="n1", history=store, hot_window=3, cluster=False,
        socket_timeout=2.0, claim_interval=3600.0, claim_min_idle=0.0, write_timeout=1.0,
    )
    await broker.start(Recorder())
    try:
        store.down = True
        for i in range(1, 9):
            with pytest.raises(errors.BackendUnavailable):
                await broker.publish("c", Publication(data=i), OPTS)
        store.down = False
        persist = broker._persist
        assert persist is not None
        store.claim = lambda: persist.claim_once(broker._shards.keys("c").bucket)
        res = await broker.history("c", HistoryQuery(limit=-1, since=StreamPosition(0, "")), OPTS)
        assert [p.offset for p in res.publications] == list(range(1, 9))
        assert store.claim is None  # the claim did run inside the read
    finally:
        await broker.close()
