"""Lifecycle events under the Redis engine: Squall subprocesses on one real
redis-server, a real webhook receiver in the test process (no mocks)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter, defaultdict
from typing import Any, Callable

import aiohttp
import pytest
import redis
from centrifuge import Client

from tests.helpers import squall_process
from tests.helpers.backend_app import Backend, backend  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.waiting import until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

API_KEY = "events-test-api-key"


def config(redis_url: str, b: Backend, types: list[str], **extra: Any) -> dict[str, Any]:
    return squall_process.test_config(
        engine="redis", redis_urls=[redis_url], api_key=API_KEY,
        events_webhook_url=b.url("/events"), events_types=types,
        events_retry_min_delay=0.1, events_retry_max_delay=1.0, events_claim_idle=1.0, **extra,
    )


def received(b: Backend) -> list[dict[str, Any]]:
    return [e for r in b.got("/events") if r.body for e in r.body["events"]]


async def publish_many(sp: SquallProcess, channel: str, n: int, concurrency: int = 20) -> None:
    """n API publishes with data {"i": i}, ``concurrency`` at a time (bounded)."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as http:
        async def one(i: int) -> None:
            async with sem:
                async with http.post(f"{sp.url}/api/publish", json={"channel": channel, "data": {"i": i}}) as r:
                    assert r.status == 200, await r.text()
                    body = await r.json()
                    assert "error" not in body, body

        await asyncio.gather(*(one(i) for i in range(n)))


def assert_all_once_by_id(events: list[dict[str, Any]], n: int) -> None:
    """Every i in 0..n-1 arrived; any repeat of one carries the same id (a receiver drops it)."""
    ids: dict[int, set[str]] = defaultdict(set)
    for e in events:
        if e["type"] == "publication":
            ids[e["data"]["i"]].add(e["id"])
    assert sorted(ids) == list(range(n))
    assert all(len(v) == 1 for v in ids.values())


@pytest.mark.gen_test(timeout=120)
async def test_two_nodes_occupied_and_vacated_once_per_cluster_transition(
    redis_server: RedisServer, backend: Backend, squall_factory: Callable[..., SquallProcess]
) -> None:
    """Clients on both nodes share channels: each occupied/vacated transition of the cluster is one event, not one per node."""
    cfg = config(redis_server.url, backend, ["channel_occupied", "channel_vacated"])
    a, b = squall_factory(cfg), squall_factory(cfg)
    r = redis.Redis.from_url(redis_server.url)
    ca, cb = Client(a.ws_url, timeout=5), Client(b.ws_url, timeout=5)
    await ca.connect()
    await cb.connect()
    channels = [f"chat:occ{i}" for i in range(3)]

    async def members(channel: str, want: int) -> None:
        await until(lambda: r.scard(f"squall:occupied:{channel}") == want, timeout=10)

    for _round in range(2):
        subs = []
        for ch in channels:
            sa, sb = ca.new_subscription(ch), cb.new_subscription(ch)
            await sa.subscribe()
            await members(ch, 1)
            await sb.subscribe()
            await members(ch, 2)
            subs.append((ch, sa, sb))
        for ch, sa, sb in subs:
            await sb.unsubscribe()
            await members(ch, 1)
            await sa.unsubscribe()
            await members(ch, 0)
            ca.remove_subscription(sa)
            cb.remove_subscription(sb)

    def counts() -> Counter[tuple[str, str]]:
        return Counter((e["channel"], e["type"]) for e in received(backend))

    want = Counter({(ch, kind): 2 for ch in channels for kind in ("channel_occupied", "channel_vacated")})
    await until(lambda: counts() == want, timeout=15)
    await asyncio.sleep(1.0)  # nothing more comes
    assert counts() == want
    assert len({e["id"] for e in received(backend)}) == 12
    await ca.disconnect()
    await cb.disconnect()


@pytest.mark.gen_test(timeout=180)
async def test_webhook_down_10s_while_1000_events_happen(
    redis_server: RedisServer, backend: Backend, squall_factory: Callable[..., SquallProcess]
) -> None:
    """The receiver is unreachable for 10 s while 1,000 publications happen on two nodes: all arrive after it returns."""
    cfg = config(redis_server.url, backend, ["publication"])
    a, b = squall_factory(cfg), squall_factory(cfg)
    port = backend.port
    await backend.stop()
    down_at = time.monotonic()
    await asyncio.gather(publish_many(a, "chat:outage", 500), publish_many(b, "chat:outage2", 500))
    await asyncio.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))
    assert backend.got("/events") == []
    backend.start(port)
    await until(lambda: len({e["id"] for e in received(backend)}) >= 1000, timeout=60)
    events = received(backend)
    assert_all_once_by_id([e for e in events if e["channel"] == "chat:outage"], 500)
    assert_all_once_by_id([e for e in events if e["channel"] == "chat:outage2"], 500)
    r = redis.Redis.from_url(redis_server.url)
    await until(lambda: r.xlen("squall:events") == 0, timeout=10)


@pytest.mark.gen_test(timeout=180)
async def test_sigkill_with_events_queued_delivers_them_after_restart(
    redis_server: RedisServer, backend: Backend, squall_factory: Callable[..., SquallProcess]
) -> None:
    """Events queued in the Redis outbox when Squall is SIGKILLed are delivered by the restarted node."""
    cfg = config(redis_server.url, backend, ["publication"])
    port = backend.port
    await backend.stop()
    a = squall_factory(cfg)
    await publish_many(a, "chat:killed", 300)
    r = redis.Redis.from_url(redis_server.url)
    await until(lambda: r.xlen("squall:events") == 300, timeout=10)
    await asyncio.sleep(0.5)  # let the node read (and hold) a batch it cannot deliver
    a.stop(signal.SIGKILL)
    assert r.xlen("squall:events") == 300
    backend.start(port)
    squall_factory(cfg)  # the restart: a new process, a new node id
    await until(lambda: len({e["id"] for e in received(backend)}) >= 300, timeout=60)
    assert_all_once_by_id(received(backend), 300)
    await until(lambda: r.xlen("squall:events") == 0, timeout=10)


@pytest.mark.gen_test(timeout=120)
async def test_sigkilled_node_channels_vacated_once_by_a_live_node(
    redis_server: RedisServer, backend: Backend, squall_factory: Callable[..., SquallProcess]
) -> None:
    """Node A holds a channel's only subscriber and is SIGKILLed: B's sweep reports it vacated once; a subscriber on B then occupies it once."""
    cfg = config(redis_server.url, backend, ["channel_occupied", "channel_vacated"], presence_ttl=3.0)
    a, b = squall_factory(cfg), squall_factory(cfg)
    r = redis.Redis.from_url(redis_server.url)
    ch = "chat:killed-occupant"

    def kinds() -> list[str]:
        return [e["type"] for e in received(backend) if e["channel"] == ch]

    ca = Client(a.ws_url, timeout=5)
    await ca.connect()
    await ca.new_subscription(ch).subscribe()
    await until(lambda: kinds() == ["channel_occupied"], timeout=10)
    a.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    await until(lambda: kinds() == ["channel_occupied", "channel_vacated"], timeout=15)
    assert time.monotonic() - killed_at < 15
    vacated = [e for e in received(backend) if e["type"] == "channel_vacated"]
    assert len(vacated) == 1 and r.scard(f"squall:occupied:{ch}") == 0
    cb = Client(b.ws_url, timeout=5)
    await cb.connect()
    await cb.new_subscription(ch).subscribe()
    await until(lambda: kinds() == ["channel_occupied", "channel_vacated", "channel_occupied"], timeout=10)
    await asyncio.sleep(2.0)  # nothing more comes (B keeps its channel; its sweeps find no one else)
    assert kinds() == ["channel_occupied", "channel_vacated", "channel_occupied"]
    assert len({e["id"] for e in received(backend)}) == 3
    await cb.disconnect()
