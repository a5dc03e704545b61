"""The persist log's claimer against real Redis and SecantusDB: a slow durable
store is not fed duplicates of writes still in flight on this node."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import pytest
import redis.asyncio as aioredis
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from channels import errors
from channels.history_mongo import MongoHistoryStore
from channels.redis_persist import GROUP
from channels.types import HistoryQuery, Publication, StreamOptions
from tests.channels.test_broker_redis import nodes
from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401  (fixture)
from tests.helpers.waiting import until

pytestmark = [pytest.mark.redis, pytest.mark.mongo]

OPTS = StreamOptions(history_size=100, history_ttl=300)


class InsertedOffsets(CommandListener):
    """Counts how often each (channel, offset) is sent in an insert (command monitoring)."""

    def __init__(self) -> None:
        self.sent: Counter[tuple[str, int]] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.command.get("insert") == "publications":
            for doc in event.command.get("documents", []):
                self.sent[(doc["channel"], doc["offset"])] += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        return None

    def failed(self, event: CommandFailedEvent) -> None:
        return None


@pytest.mark.gen_test(timeout=90)
async def test_claimer_does_not_rewrite_writes_still_in_flight(
    redis_url: str, secantus_factory: SecantusFactory  # noqa: F811
) -> None:
    """Publishes time out on a frozen MongoDB; claims meanwhile queue no copies, and after it
    thaws each publication is inserted once and acknowledged in the persist log."""
    mongo = secantus_factory()
    sent = InsertedOffsets()
    # timeout_ms=5000: the frozen seconds below end no socket, so the timed-out writes stay in flight
    store = MongoHistoryStore(mongo.url, database="persist", write_concern="", batch_window_ms=1.0,
                              batch_size=100, timeout_ms=5000, event_listeners=[sent])
    await store.start()
    try:
        async with nodes([redis_url], n=1, history=lambda i: store, claim_interval=3600.0,
                         claim_min_idle=0.2, write_timeout=0.4) as [(broker, _)]:
            await broker.publish("c", Publication(data=1), OPTS)
            persist_log = broker._persist
            assert persist_log is not None
            bucket = broker._shards.keys("c").bucket
            assert mongo.proc is not None
            os.kill(mongo.proc.pid, signal.SIGSTOP)  # MongoDB hangs: writes queue, publishes time out
            try:
                for i in (2, 3, 4):
                    with pytest.raises(errors.BackendUnavailable):
                        await broker.publish("c", Publication(data=i), OPTS)
                for _ in range(2):  # two claim rounds while the writes are still in flight
                    await asyncio.sleep(0.3)
                    assert await persist_log.claim_once(bucket) == 0
            finally:
                os.kill(mongo.proc.pid, signal.SIGCONT)
            await until(lambda: sent.sent[("c", 4)] >= 1, 20, "the queued writes reach MongoDB")
            await asyncio.sleep(0.3)  # idle beyond claim_min_idle
            done = await persist_log.claim_once(bucket)
            assert done == 3  # acknowledged: this node already stored them
            client = aioredis.Redis.from_url(redis_url)
            try:
                assert (await client.xpending(broker._shards.keys("c").persist, GROUP))["pending"] == 0
            finally:
                await client.aclose()
            res = await store.read("c", HistoryQuery(limit=-1), OPTS)
            assert [p.data for p in res.publications] == [1, 2, 3, 4]
            assert {k: n for k, n in sent.sent.items() if n > 1} == {}, "a publication was inserted twice"
    finally:
        await store.close()
