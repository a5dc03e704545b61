"""Redis engine + MongoDB history: an instance killed between the Redis step and
the MongoDB write loses nothing; another instance persists its pending entry."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Callable

import pytest

from tests.helpers import squall_process
from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.wsclient import connected

pytestmark = [pytest.mark.redis, pytest.mark.mongo, pytest.mark.slow]


@pytest.mark.gen_test(timeout=90)
async def test_killed_publisher_entry_is_persisted_by_another_instance(
    redis_factory: Callable[[], RedisServer],
    secantus_factory: SecantusFactory,
    squall_factory: Callable[..., SquallProcess],
) -> None:
    """Publish on A while MongoDB is frozen, SIGKILL A: B's claimer stores the publication."""
    redis = redis_factory()
    mongo = secantus_factory()
    cfg = squall_process.test_config(
        engine="redis", redis_urls=[redis.url], history="mongo", mongo_url=mongo.url, mongo_database="crash"
    )
    a, b = squall_factory(cfg), squall_factory(cfg)
    watcher = await connected(b.ws_url)
    await watcher.call("subscribe", {"channel": "chat:crash"})
    pub = await connected(a.ws_url)
    r = await pub.call("publish", {"channel": "chat:crash", "data": "stored first"})
    assert r.get("publish") == {}, r
    assert (await watcher.next_push())["push"]["pub"]["offset"] == 1

    assert mongo.proc is not None
    os.kill(mongo.proc.pid, signal.SIGSTOP)  # MongoDB hangs: A stalls after the Redis step
    try:
        await pub.send({"id": 99, "publish": {"channel": "chat:crash", "data": "in flight"}})
        push = await watcher.next_push(timeout=10)  # delivered live by the Lua script
        assert push["push"]["pub"] == {**push["push"]["pub"], "data": "in flight", "offset": 2}
        a.kill()  # dies before its MongoDB write could finish or be acknowledged
    finally:
        os.kill(mongo.proc.pid, signal.SIGCONT)

    reader = await connected(b.ws_url)
    deadline = asyncio.get_running_loop().time() + 40
    offsets: list[int] = []
    while asyncio.get_running_loop().time() < deadline:
        r = await reader.call("history", {"channel": "chat:crash", "limit": -1}, timeout=10)
        if "history" in r:
            offsets = [p["offset"] for p in r["history"].get("publications", [])]
            if offsets == [1, 2]:
                break
        await asyncio.sleep(0.5)
    assert offsets == [1, 2]
    # the history read above may come from Redis's hot window: check MongoDB itself
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(mongo.url, serverSelectionTimeoutMS=5000)
    try:
        for _ in range(60):
            docs = await client["crash"]["publications"].find({"channel": "chat:crash"}).sort("offset", 1).to_list()
            if [d["offset"] for d in docs] == [1, 2]:
                break
            await asyncio.sleep(0.5)
        assert [d["offset"] for d in docs] == [1, 2]
    finally:
        await client.close()
