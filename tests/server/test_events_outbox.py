"""The Redis outbox through Redis outages: the emitter, outbox and delivery
against a real redis-server that is killed and restarted (no persistence, so
it comes back empty), and a real webhook receiver."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from channels.events import EventLog
from channels.events_delivery import Delivery
from channels.events_redis import RedisOutbox
from channels.events_webhook import Webhook
from tests.helpers.backend_app import Backend, backend  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory  # noqa: F401
from tests.helpers.waiting import until

pytestmark = [pytest.mark.redis]


def received(b: Backend) -> list[dict[str, Any]]:
    return [e for r in b.got("/events") if r.body for e in r.body["events"]]


@pytest.mark.gen_test(timeout=60)
async def test_events_emitted_while_redis_is_down_arrive_after_it_returns(
    redis_factory: Callable[[], RedisServer], backend: Backend
) -> None:
    """Redis killed: events wait on the node and are retried; Redis back (empty): the group is made again and all arrive, once each."""
    server = redis_factory()
    outbox = RedisOutbox(server.url, "t", "node-1", claim_idle=1.0)
    log = EventLog(outbox, "node-1", ("connect",))
    webhook = Webhook(backend.url("/events"), timeout=2.0)
    delivery = Delivery(outbox, [webhook], log.stats, min_delay=0.05, max_delay=0.3)
    await outbox.start()
    log.start()
    delivery.start()
    try:
        for i in range(10):
            log.emit("connect", client=f"before-{i}")
        await until(lambda: len(received(backend)) == 10, timeout=10)
        server.stop()
        for i in range(20):
            log.emit("connect", client=f"during-{i}")
        await asyncio.sleep(1.0)
        server.start()
        await until(lambda: len(received(backend)) >= 30, timeout=30)
        clients = [e["client"] for e in received(backend)]
        assert sorted(clients) == sorted([f"before-{i}" for i in range(10)] + [f"during-{i}" for i in range(20)])
        assert len({e["id"] for e in received(backend)}) == 30
        assert log.stats.failed == 0
    finally:
        await log.close()
        await delivery.close()
        await webhook.close()
        await outbox.close()


def stream_events(server: RedisServer, prefix: str) -> list[dict[str, Any]]:
    import redis

    from channels.events import Event

    r = redis.Redis.from_url(server.url)
    entries: Any = r.xrange(f"{prefix}:events")
    return [Event.decode(f[b"e"]).to_dict() for _id, f in entries]


@pytest.mark.gen_test(timeout=60)
async def test_sweep_reports_each_channel_of_an_expired_node_once_in_batches(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """An expired node's 2,500 channels (over two sweep batches) are vacated once each, only where no live node remains, by one sweep."""
    from channels.events import Event
    from channels.events_redis import SWEEP_BATCH

    server = redis_factory()
    dead, live, other = (RedisOutbox(server.url, "t", n) for n in ("dead", "live", "other"))
    for o in (dead, live, other):
        await o.start()
    try:
        dead.node_ttl = 0.3
        n = 2 * SWEEP_BATCH + 500
        for i in range(n):
            await dead.transition(f"c{i}", True, Event(f"o{i}", "channel_occupied", 0, "dead", {"channel": f"c{i}"}))
        await other.transition("c0", True, Event("x", "channel_occupied", 0, "other", {"channel": "c0"}))  # still held
        await asyncio.sleep(0.5)
        assert await live.heartbeat(5.0) is False  # a new node had no entry
        assert await live.sweep("s") == n - 1
        assert await other.sweep("s2") == 0 and await live.sweep("s3") == 0  # nothing twice
        vacated = [e for e in stream_events(server, "t") if e["type"] == "channel_vacated"]
        assert sorted(e["channel"] for e in vacated) == sorted(f"c{i}" for i in range(1, n))
        assert len({e["id"] for e in vacated}) == n - 1
        assert {(e["node"], e["expired_node"]) for e in vacated} == {("live", "dead")}
    finally:
        for o in (dead, live, other):
            await o.close()


@pytest.mark.gen_test(timeout=60)
async def test_node_swept_while_alive_claims_its_channels_again(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """A node paused past its ttl is swept (vacated); its next heartbeat finds its entry gone and re-reports its channel occupied."""
    server = redis_factory()
    paused, sweeper = RedisOutbox(server.url, "t", "paused"), RedisOutbox(server.url, "t", "sweeper")
    log = EventLog(paused, "paused", ("channel_occupied", "channel_vacated"))
    await paused.start()
    await sweeper.start()
    log.start()
    try:
        paused.node_ttl = 0.3
        log.occupied("room")
        await until(lambda: [e["type"] for e in stream_events(server, "t")] == ["channel_occupied"], timeout=5)
        await asyncio.sleep(0.5)  # longer than its ttl without a heartbeat
        assert await sweeper.sweep("s") == 1
        log.heartbeat(5.0)
        await until(lambda: [e["type"] for e in stream_events(server, "t")] == ["channel_occupied", "channel_vacated", "channel_occupied"], timeout=5)
        log.heartbeat(5.0)
        await asyncio.sleep(0.3)
        assert len(stream_events(server, "t")) == 3  # a live entry: nothing to re-assert
        log.vacated("room")
        await until(lambda: len(stream_events(server, "t")) == 4, timeout=5)
        assert stream_events(server, "t")[-1]["type"] == "channel_vacated"
    finally:
        await log.close()
        await paused.close()
        await sweeper.close()
