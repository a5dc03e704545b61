"""Several Squall processes on one Redis behave as one server (centrifuge-python clients)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable

import pytest
from centrifuge import (
    Client,
    JoinContext,
    LeaveContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from tests.helpers.redis_server import RedisServer, redis_cluster3, redis_factory, redis_server, wait_until  # noqa: F401
from tests.helpers import squall_process
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PRESENCE_TTL = 2.0


class Events(SubscriptionEventHandler):
    """Remembers what one subscription received."""

    def __init__(self) -> None:
        self.subscribed = False
        self.offsets: list[int] = []
        self.data: list[Any] = []
        self.joins: list[str] = []
        self.leaves: list[str] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed = True

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.offsets.append(ctx.pub.offset)
        self.data.append(ctx.pub.data)

    async def on_join(self, ctx: JoinContext) -> None:
        self.joins.append(ctx.info.client)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self.leaves.append(ctx.info.client)


@pytest.fixture
def instances(redis_server: RedisServer, squall_factory: Callable[..., SquallProcess]) -> list[SquallProcess]:
    """Three Squall processes with the Redis engine on one redis-server."""
    cfg = squall_process.test_config(engine="redis", redis_urls=[redis_server.url], presence_ttl=PRESENCE_TTL)
    return [squall_factory(cfg) for _ in range(3)]


@contextlib.asynccontextmanager
async def subscribed(sp: SquallProcess, channel: str) -> AsyncIterator[tuple[Client, Any, Events]]:
    """A connected centrifuge-python client with one live subscription."""
    client = Client(sp.ws_url, timeout=5.0)
    events = Events()
    sub = client.new_subscription(channel, events=events, join_leave=True)
    await client.connect()
    await sub.subscribe()
    try:
        assert await wait_until(lambda: events.subscribed, 10)
        yield client, sub, events
    finally:
        await client.disconnect()


@pytest.mark.gen_test(timeout=60)
async def test_publish_on_one_reaches_the_others_in_order(instances: list[SquallProcess]) -> None:
    """Publications made on A arrive on B and C in order with consecutive offsets."""
    a, b, c = instances
    async with subscribed(b, "chat:room") as (_, _, eb), subscribed(c, "chat:room") as (_, _, ec):
        async with subscribed(a, "chat:room") as (_, sub_a, _):
            results = await asyncio.gather(*(sub_a.publish({"n": i}) for i in range(30)))
            assert len(results) == 30
            assert await wait_until(lambda: len(eb.offsets) == 30 and len(ec.offsets) == 30, 15)
    first = eb.offsets[0]
    assert eb.offsets == list(range(first, first + 30))
    assert ec.offsets == eb.offsets
    assert ec.data == eb.data
    assert sorted(d["n"] for d in eb.data) == list(range(30))


@pytest.mark.gen_test(timeout=60)
async def test_presence_and_join_leave_across_instances(instances: list[SquallProcess]) -> None:
    """Presence spans instances; join and leave pushes reach subscribers elsewhere."""
    a, b, c = instances
    async with subscribed(b, "chat:lobby") as (client_b, sub_b, eb):
        async with subscribed(a, "chat:lobby") as (client_a, _, _):
            assert await wait_until(lambda: bool(client_a.client_id) and client_a.client_id in eb.joins, 10)
            async with subscribed(c, "chat:lobby") as (_, sub_c, _):
                pres = await sub_c.presence()
                assert {client_a.client_id, client_b.client_id} <= set(pres.clients)
                stats = await sub_c.presence_stats()
                assert stats.num_clients == 3
        assert await wait_until(lambda: client_a.client_id in eb.leaves, 10)
        pres = await sub_b.presence()
        assert set(pres.clients) == {client_b.client_id}


@pytest.mark.gen_test(timeout=60)
async def test_killed_instance_presence_expires(instances: list[SquallProcess]) -> None:
    """SIGKILL one instance: its presence entries expire, the others carry on."""
    a, b, c = instances
    async with subscribed(b, "chat:k") as (client_b, sub_b, eb), subscribed(c, "chat:k") as (_, sub_c, _):
        client_a = Client(a.ws_url, timeout=5.0, max_reconnect_delay=60.0)
        sub_a = client_a.new_subscription("chat:k", events=Events())
        await client_a.connect()
        await sub_a.subscribe()
        assert await wait_until(lambda: bool(client_a.client_id), 10)

        async def present() -> set[str]:
            return set((await sub_b.presence()).clients)

        for _ in range(50):
            if client_a.client_id in await present():
                break
            await asyncio.sleep(0.1)
        assert client_a.client_id in await present()
        a.kill()
        dead = client_a.client_id
        for _ in range(int(PRESENCE_TTL * 10 * 4)):
            if dead not in await present():
                break
            await asyncio.sleep(0.1)
        assert dead not in await present()
        await sub_c.publish("still here")
        assert await wait_until(lambda: "still here" in eb.data, 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client_a.disconnect(), 2)


@pytest.mark.gen_test(timeout=90)
async def test_two_instances_on_a_three_master_cluster(
    redis_cluster3: list[RedisServer], squall_factory: Callable[..., SquallProcess]
) -> None:
    """With redis_cluster = true and one seed URL, two instances share channels spread over three masters:
    publications in order with consecutive offsets, history and presence across them."""
    seed = f"redis://127.0.0.1:{redis_cluster3[0].port}"
    cfg = squall_process.test_config(engine="redis", redis_urls=[seed], redis_cluster=True, presence_ttl=PRESENCE_TTL)
    a, b = squall_factory(cfg), squall_factory(cfg)
    channels = [f"chat:c{i}" for i in range(6)]
    async with contextlib.AsyncExitStack() as stack:
        received = [await stack.enter_async_context(subscribed(b, ch)) for ch in channels]
        _, sub_a, _ = await stack.enter_async_context(subscribed(a, channels[0]))
        publisher = Client(a.ws_url, timeout=5.0)
        await publisher.connect()
        stack.push_async_callback(publisher.disconnect)
        for ch in channels:
            for n in range(5):
                await publisher.publish(ch, {"ch": ch, "n": n})
        assert await wait_until(lambda: all(len(e.offsets) == 5 for _, _, e in received), 15)
        for ch, (_, sub, events) in zip(channels, received):
            assert events.data == [{"ch": ch, "n": n} for n in range(5)]
            assert events.offsets == list(range(events.offsets[0], events.offsets[0] + 5))
            history = await sub.history(limit=-1)
            assert [p.data["n"] for p in history.publications][-5:] == list(range(5))
        pres = await sub_a.presence()
        assert len(pres.clients) == 2  # B's subscriber and A's own
