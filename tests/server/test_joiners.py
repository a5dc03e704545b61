"""Steady subscribers see every offset while short-lived clients join and leave
under API publishes: memory and Redis engines, with and without MongoDB history."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.helpers import squall_process
from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.wsclient import RawClient, connected

pytestmark = [pytest.mark.slow]

KEY = "joiners-key"
CHANNELS = ("chat:j1", "chat:j2")
PUBLISHES = 400  # per run, over ~4 s
JOINERS_FOR = 4.0  # seconds of joining and leaving


class Steady:
    """A raw client subscribed to one channel for the whole run, recording offsets."""

    def __init__(self, client: RawClient, channel: str, start: int) -> None:
        self.client = client
        self.channel = channel
        self.start = start
        self.offsets: list[int] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.client.read(timeout=30)
            if msg is None:
                return  # closed
            push = msg.get("push")
            if push and push.get("channel") == self.channel and "pub" in push:
                self.offsets.append(push["pub"]["offset"])


async def steady(url: str, channel: str) -> Steady:
    c = await connected(url)
    r = await c.call("subscribe", {"channel": channel})
    return Steady(c, channel, r["subscribe"].get("offset", 0))


async def joiners(urls: list[str], until: float, counts: dict[str, int]) -> None:
    """Clients that subscribe (some recovering), stay 50-300 ms, and leave: every 50-100 ms."""
    loop = asyncio.get_running_loop()
    rnd = random.Random(7)
    tasks: list[asyncio.Task[None]] = []

    async def one(url: str, channel: str) -> None:
        c = await connected(url)
        try:
            params: dict[str, Any] = {"channel": channel}
            await c.call("subscribe", params)
            counts["joins"] += 1
            await asyncio.sleep(rnd.uniform(0.05, 0.3))
        finally:
            c.close()

    while loop.time() < until:
        tasks.append(asyncio.ensure_future(one(rnd.choice(urls), rnd.choice(CHANNELS))))
        await asyncio.sleep(rnd.uniform(0.05, 0.1))
    await asyncio.gather(*tasks)


async def publisher(api: str, n: int, start_after: float) -> list[int]:
    """``n`` API publishes, about 100/s, four at a time; returns the acknowledged count per channel."""
    await asyncio.sleep(start_after)
    http = AsyncHTTPClient()
    acked = [0, 0]
    sem = asyncio.Semaphore(4)

    async def one(i: int) -> None:
        async with sem:
            body = json.dumps({"channel": CHANNELS[i % 2], "data": {"i": i}})
            try:
                r = await http.fetch(f"{api}/api/publish", method="POST", body=body, headers={"X-API-Key": KEY})
            except HTTPClientError:
                return
            if "result" in json.loads(r.body):
                acked[i % 2] += 1

    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return acked


async def top(api: str, channel: str) -> int:
    body = json.dumps({"channel": channel, "limit": 0})
    r = await AsyncHTTPClient().fetch(f"{api}/api/history", method="POST", body=body, headers={"X-API-Key": KEY})
    return int(json.loads(r.body)["result"]["offset"])


@pytest.fixture(params=["memory", "memory+mongo", "redis", "redis+mongo"])
def nodes(request: pytest.FixtureRequest, squall_factory: Callable[..., SquallProcess]) -> list[SquallProcess]:  # noqa: F811
    """One memory-engine node, or two Redis-engine nodes on one redis-server; MongoDB history or not."""
    engine, _, history = request.param.partition("+")
    cfg = squall_process.test_config(api_key=KEY)
    if history == "mongo":
        mongo = request.getfixturevalue("secantus_factory")()
        cfg.update(history="mongo", mongo_url=mongo.url, mongo_database="joiners")
    if engine == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        cfg.update(engine="redis", redis_urls=[redis.url])
        return [squall_factory(cfg), squall_factory(cfg)]
    return [squall_factory(cfg)]


@pytest.mark.gen_test(timeout=90)
async def test_steady_subscribers_lose_nothing_while_others_join(nodes: list[SquallProcess]) -> None:
    """Every steady subscriber's offsets run start+1..top with no hole, no duplicate and no disconnect."""
    urls = [n.ws_url for n in nodes]
    steadies = [await steady(url, ch) for url in urls for ch in CHANNELS for _ in range(2)]
    loop = asyncio.get_running_loop()
    counts = {"joins": 0}
    acked, _ = await asyncio.gather(
        publisher(nodes[0].url, PUBLISHES, 0.2), joiners(urls, loop.time() + JOINERS_FOR, counts)
    )
    assert sum(acked) == PUBLISHES
    assert counts["joins"] >= 20
    tops = {ch: await top(nodes[0].url, ch) for ch in CHANNELS}
    for _ in range(100):  # what is on its way arrives
        if all(s.offsets and s.offsets[-1] >= tops[s.channel] for s in steadies):
            break
        await asyncio.sleep(0.1)
    for s in steadies:
        want = list(range(s.start + 1, tops[s.channel] + 1))
        missing = sorted(set(want) - set(s.offsets))
        assert s.offsets == want, f"{s.channel} from {s.start}: missing {missing[:20]}, got {len(s.offsets)} of {len(want)}"
        assert s.client.close_code is None, f"steady subscriber disconnected: {s.client.close_code}"
    for s in steadies:
        s.client.close()
        s.task.cancel()
