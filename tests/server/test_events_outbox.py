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
