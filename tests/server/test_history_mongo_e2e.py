"""Squall with history = "mongo" end to end: centrifuge-python against a real SecantusDB."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import (
    Client,
    PublicationContext,
    ReplyError,
    StreamPosition as SdkPosition,
    SubscribedContext,
    SubscriptionEventHandler,
)

from server.app import Squall
from tests.helpers.mongo_server import SecantusFactory, SecantusServer, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import OPEN_NAMESPACE, SquallProcess, test_config
from tests.helpers.waiting import until

pytestmark = pytest.mark.mongo


def mongo_config(url: str) -> dict[str, Any]:
    """chat (history 100), log (history 5000) and live (no history), all in MongoDB."""
    return test_config(
        history="mongo",
        mongo_url=url,
        mongo_database="e2e",
        namespaces=[
            {"name": "chat", **OPEN_NAMESPACE},
            {"name": "log", **OPEN_NAMESPACE, "history_size": 5000},
            {"name": "live", **{k: v for k, v in OPEN_NAMESPACE.items() if k not in ("history_size", "history_ttl", "force_recovery")}},
        ],
    )


@pytest.fixture
def mongo(secantus_factory: SecantusFactory) -> SecantusServer:  # noqa: F811
    return secantus_factory()


@pytest.fixture
def squall_config(mongo: SecantusServer) -> dict[str, Any]:
    return mongo_config(mongo.url)


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: list[tuple[int, Any]] = []
        self.subscribed: list[SubscribedContext] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.pubs.append((ctx.pub.offset, ctx.pub.data))

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)


def client(ws_url: str, delay: float = 0.1, timeout: float = 10.0) -> Client:
    return Client(ws_url, min_reconnect_delay=delay, max_reconnect_delay=max(0.5, delay * 2), timeout=timeout)


async def all_history(c: Client, channel: str, page: int = 100) -> list[tuple[int, Any]]:
    """Pages through the whole history with since = last offset of the previous page."""
    first = await c.history(channel, limit=0)
    since = SdkPosition(offset=0, epoch=first.epoch)
    out: list[tuple[int, Any]] = []
    for _ in range(1000):
        res = await c.history(channel, limit=page, since=since)
        if not res.publications:
            return out
        out += [(p.offset, p.data) for p in res.publications]
        since = SdkPosition(offset=res.publications[-1].offset, epoch=res.epoch)
    raise AssertionError("history did not end")


@pytest.mark.gen_test(timeout=60)
async def test_recovery_after_dropped_connection(ws_url: str, squall_app: Squall) -> None:
    """A client that lost its connection recovers every missed publication from MongoDB."""
    c = client(ws_url, delay=0.5)
    await c.connect()
    rec = Recorder()
    sub = c.new_subscription("chat:recover", rec)
    await sub.subscribe()
    await until(lambda: rec.subscribed, timeout=10)
    hub = squall_app.ctx.hub
    await hub.publish("chat:recover", "before")
    await until(lambda: len(rec.pubs) == 1, timeout=10)
    [sess] = hub.clients()
    sess.wire._stream.close()  # type: ignore[attr-defined]  # a network loss, no close frame
    await until(lambda: sess.closed, timeout=10)  # type: ignore[attr-defined]
    for i in range(20):
        await hub.publish("chat:recover", f"missed-{i}")
    await until(lambda: len(rec.subscribed) >= 2, timeout=10)
    await until(lambda: len(rec.pubs) == 21, timeout=10)
    assert rec.subscribed[-1].was_recovering and rec.subscribed[-1].recovered
    assert [o for o, _ in rec.pubs] == list(range(1, 22))
    assert [d for _, d in rec.pubs][1:] == [f"missed-{i}" for i in range(20)]
    await c.disconnect()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_restart_squall_keeps_history_and_offsets(mongo: SecantusServer, squall_factory: Any) -> None:
    """Restarting Squall on the same MongoDB: the client recovers, offsets and epoch continue."""
    cfg = mongo_config(mongo.url)
    first: SquallProcess = squall_factory(cfg)
    c = client(first.ws_url, delay=0.2)
    await c.connect()
    rec = Recorder()
    sub = c.new_subscription("chat:restart", rec)
    await sub.subscribe()
    await until(lambda: rec.subscribed, timeout=10)
    for i in range(5):
        await sub.publish({"n": i})
    await until(lambda: len(rec.pubs) == 5, timeout=10)
    epoch = (await sub.history(limit=0)).epoch
    first.stop()
    second: SquallProcess = squall_factory(cfg, port=first.port)
    await until(lambda: len(rec.subscribed) >= 2, timeout=30)
    assert rec.subscribed[-1].was_recovering and rec.subscribed[-1].recovered
    for i in range(5, 8):
        await sub.publish({"n": i})
    await until(lambda: len(rec.pubs) == 8, timeout=10)
    assert [o for o, _ in rec.pubs] == list(range(1, 9))
    hist = await sub.history(limit=100)
    assert hist.epoch == epoch
    assert [(p.offset, p.data["n"]) for p in hist.publications] == [(o, o - 1) for o in range(1, 9)]
    await c.disconnect()
    assert second.alive()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_mongo_outage_during_steady_publishing(ws_url: str, mongo: SecantusServer) -> None:
    """Stop MongoDB mid-stream and start it again: every publish failed visibly or is in history."""
    clients = [client(ws_url) for _ in range(3)]
    for c in clients:
        await c.connect()
    acked: set[int] = set()
    failed: set[int] = set()
    codes: set[int] = set()
    state = {"after_restart": 0, "restarted": False}
    stop = asyncio.Event()

    async def publisher(k: int, c: Client) -> None:
        for n in range(10_000):
            if stop.is_set():
                return
            msg_id = k * 100_000 + n
            try:
                await c.publish("log:outage", {"id": msg_id})
            except ReplyError as e:
                failed.add(msg_id)
                codes.add(e.code)
                await asyncio.sleep(0.05)
                continue
            acked.add(msg_id)
            if state["restarted"]:
                state["after_restart"] += 1

    tasks = [asyncio.ensure_future(publisher(k, c)) for k, c in enumerate(clients)]
    try:
        await until(lambda: len(acked) >= 50, timeout=30)
        await asyncio.to_thread(mongo.stop)
        await until(lambda: len(failed) >= 3, timeout=30)
        # a channel without history keeps working while MongoDB is away
        watcher, rec = clients[0], Recorder()
        live = watcher.new_subscription("live:outage", rec)
        await live.subscribe()
        await clients[1].publish("live:outage", "still here")
        await until(lambda: rec.pubs, timeout=10)
        await asyncio.to_thread(mongo.start)
        state["restarted"] = True
        await until(lambda: state["after_restart"] >= 50, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert codes == {100}, "failures must be Centrifugo's temporary internal error"
    history = await all_history(clients[0], "log:outage")
    offsets = [o for o, _ in history]
    ids = {d["id"] for _, d in history}
    assert offsets == list(range(1, len(history) + 1)), "offsets have a hole"
    assert acked <= ids, f"{len(acked - ids)} acknowledged publications are missing"
    assert ids <= acked | failed
    for c in clients:
        await c.disconnect()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.gen_test(timeout=120)
async def test_redis_engine_recovers_below_hot_window_and_survives_redis_loss(
    mongo: SecantusServer, redis_server: RedisServer, squall_factory: Any  # noqa: F811
) -> None:
    """Redis engine + MongoDB: recovery reaches below the hot window; a Redis restart keeps history."""
    cfg = mongo_config(mongo.url)
    cfg.update(engine="redis", redis_urls=[redis_server.url], history_hot_window=5)
    a: SquallProcess = squall_factory(cfg)
    b: SquallProcess = squall_factory(cfg)
    pub_client, sub_client = client(a.ws_url), client(b.ws_url, delay=0.2)
    await pub_client.connect()
    await sub_client.connect()
    rec = Recorder()
    sub = sub_client.new_subscription("chat:deep", rec)
    await sub.subscribe()
    await until(lambda: rec.subscribed, timeout=10)
    for i in range(3):
        await pub_client.publish("chat:deep", i)
    await until(lambda: len(rec.pubs) == 3, timeout=10)
    await sub_client.disconnect()
    for i in range(3, 23):  # 20 missed: 15 of them only in MongoDB
        await pub_client.publish("chat:deep", i)
    await sub_client.connect()
    await until(lambda: len(rec.subscribed) >= 2 and len(rec.pubs) == 23, timeout=20)
    assert rec.subscribed[-1].was_recovering and rec.subscribed[-1].recovered
    assert rec.pubs == [(o, o - 1) for o in range(1, 24)]
    epoch = (await sub.history(limit=0)).epoch

    redis_server.restart()  # no persistence: Redis forgets the stream
    res = None
    for _ in range(100):  # publishes fail until both instances reconnected
        try:
            await pub_client.publish("chat:deep", 23)
            break
        except ReplyError as e:
            res = e
            await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"publishing never worked again: {res}")
    history = await all_history(pub_client, "chat:deep")
    assert history == [(o, o - 1) for o in range(1, 25)], "acknowledged history lost or offsets restarted"
    assert (await pub_client.history("chat:deep", limit=0)).epoch != epoch
    await pub_client.disconnect()
    await sub_client.disconnect()
