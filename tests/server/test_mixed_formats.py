"""JSON, msgpack and protobuf subscribers of one channel on two nodes (Redis engine) see one stream.

Subscribers of every format sit on both nodes: centrifuge-python in JSON and
in protobuf (``use_protobuf=True``), and a raw msgpack client (Squall's own
format). Publications come from both nodes, from clients of each format; every
subscriber must get the same publications with the same offsets, in order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import pytest
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler

from tests.helpers import squall_process
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server, wait_until  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.wsclient import RawClient, connected

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHANNEL = "chat:mixed"
ROUNDS = 10  # each round: one publication from each of the three publishers


class Events(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.subscribed = False
        self.got: list[tuple[int, Any]] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed = True

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        self.got.append((ctx.pub.offset, json.loads(data) if isinstance(data, bytes) else data))


async def sdk(sp: SquallProcess, protobuf: bool) -> tuple[Client, Any, Events]:
    client = Client(sp.ws_url, timeout=5.0, use_protobuf=protobuf)
    events = Events()
    sub = client.new_subscription(CHANNEL, events=events)
    await client.connect()
    await sub.subscribe()
    assert await wait_until(lambda: events.subscribed, 10)
    return client, sub, events


async def msgpack_subscriber(sp: SquallProcess) -> RawClient:
    c = await connected(sp.ws_url, "msgpack")
    reply = await c.call("subscribe", {"channel": CHANNEL})
    assert "subscribe" in reply, reply
    return c


async def msgpack_received(c: RawClient, n: int) -> list[tuple[int, Any]]:
    got = []
    while len(got) < n:
        push = (await c.next_push(timeout=10))["push"]
        if "pub" in push:
            got.append((push["pub"]["offset"], push["pub"]["data"]))
    return got


@pytest.mark.gen_test(timeout=90)
async def test_three_formats_two_nodes_one_stream(
    redis_server: RedisServer, squall_factory: Callable[..., SquallProcess],
) -> None:
    """Every subscriber, whatever its format and node, gets identical publications and offsets."""
    cfg = squall_process.test_config(engine="redis", redis_urls=[redis_server.url])
    a, b = squall_factory(cfg), squall_factory(cfg)
    sdks = [await sdk(node, protobuf) for node in (a, b) for protobuf in (False, True)]
    packs = [await msgpack_subscriber(node) for node in (a, b)]
    json_pub, proto_pub = sdks[0][1], sdks[3][1]  # JSON on A, protobuf on B
    mp_pub = await connected(b.ws_url, "msgpack")
    sent = []
    for i in range(ROUNDS):
        await json_pub.publish({"from": "json", "i": i})
        await proto_pub.publish(json.dumps({"from": "protobuf", "i": i}).encode())
        r = await mp_pub.call("publish", {"channel": CHANNEL, "data": {"from": "msgpack", "i": i}})
        assert r.get("publish") == {}, r
        sent += [{"from": f, "i": i} for f in ("json", "protobuf", "msgpack")]
    total = len(sent)
    try:
        for _, _, ev in sdks:
            assert await wait_until(lambda ev=ev: len(ev.got) >= total, 15), ev.got
        streams = [ev.got for _, _, ev in sdks] + [await msgpack_received(c, total) for c in packs]
        expected = list(zip(range(1, total + 1), sent))
        for stream in streams:
            assert stream == expected
    finally:
        for client, _, _ in sdks:
            await client.disconnect()
        for c in [*packs, mp_pub]:
            c.close()
        await asyncio.sleep(0)
