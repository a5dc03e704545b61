"""The official centrifuge-python SDK against Squall, unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    JoinContext,
    LeaveContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from channels import errors
from server.app import Squall
from tests.helpers.waiting import until


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: list[tuple[int, Any]] = []
        self.joins: list[str] = []
        self.leaves: list[str] = []
        self.subscribed: list[SubscribedContext] = []
        self.event = asyncio.Event()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.pubs.append((ctx.pub.offset, ctx.pub.data))
        self.event.set()

    async def on_join(self, ctx: JoinContext) -> None:
        self.joins.append(ctx.info.client)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self.leaves.append(ctx.info.client)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)
        self.event.set()


class ClientEvents(ClientEventHandler):
    def __init__(self) -> None:
        self.disconnects: list[int] = []
        self.connects = 0
        self.event = asyncio.Event()

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connects += 1
        self.event.set()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnects.append(ctx.code)
        self.event.set()


def client(ws_url: str, events: ClientEventHandler | None = None, delay: float = 0.05) -> Client:
    return Client(ws_url, events=events, min_reconnect_delay=delay, max_reconnect_delay=max(0.3, delay * 2), timeout=5)


@pytest.mark.gen_test(timeout=30)
async def test_publish_subscribe_presence_history_unsubscribe(ws_url: str) -> None:
    """Connect, subscribe, publish, receive, presence, stats, history, unsubscribe."""
    a, b = client(ws_url), client(ws_url)
    await a.connect()
    await b.connect()
    ra, rb = Recorder(), Recorder()
    sa = a.new_subscription("chat:interop", ra, join_leave=True)
    sb = b.new_subscription("chat:interop", rb)
    await sa.subscribe()
    await sb.subscribe()
    await until(lambda: ra.joins)
    for i in range(5):
        await sb.publish({"n": i})
    await until(lambda: len(ra.pubs) == 5 and len(rb.pubs) == 5)
    assert [o for o, _ in ra.pubs] == [1, 2, 3, 4, 5]
    assert [d["n"] for _, d in ra.pubs] == [0, 1, 2, 3, 4]
    presence = await sa.presence()
    assert len(presence.clients) == 2
    stats = await sa.presence_stats()
    assert stats.num_clients == 2
    hist = await sa.history(limit=3, reverse=True)
    assert [p.offset for p in hist.publications] == [5, 4, 3]
    assert hist.offset == 5 and hist.epoch
    await sb.unsubscribe()
    await until(lambda: ra.leaves)
    stats = await sa.presence_stats()
    assert stats.num_clients == 1
    await a.disconnect()
    await b.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_server_side_disconnect_reaches_sdk_with_code(ws_url: str, squall_app: Squall) -> None:
    """A server-side disconnect arrives at the SDK with Centrifugo's code."""
    ev = ClientEvents()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: squall_app.ctx.hub.num_clients == 1)
    [sess] = squall_app.ctx.hub.clients()
    squall_app.ctx.hub.disconnect_user(sess.user, errors.FORCE_NO_RECONNECT)
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [3503]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_recovery_after_dropped_connection(ws_url: str, squall_app: Squall) -> None:
    """After a dropped connection the SDK recovers every missed publication in order."""
    ev = ClientEvents()
    c = client(ws_url, ev, delay=0.5)
    await c.connect()
    rec = Recorder()
    sub = c.new_subscription("chat:recover", rec)
    await sub.subscribe()
    await until(lambda: rec.subscribed)
    hub = squall_app.ctx.hub
    await hub.publish("chat:recover", "before")
    await until(lambda: len(rec.pubs) == 1)
    # Drop the TCP connection without a close frame (a network loss) and
    # publish while the client is away.
    [sess] = hub.clients()
    stream = sess.wire._stream  # type: ignore[attr-defined]
    stream.close()
    await until(lambda: sess.closed)
    for i in range(10):
        await hub.publish("chat:recover", f"missed-{i}")
    await until(lambda: len(rec.subscribed) >= 2, timeout=10)
    await until(lambda: len(rec.pubs) == 11)
    resub = rec.subscribed[-1]
    assert resub.was_recovering and resub.recovered
    assert [o for o, _ in rec.pubs] == list(range(1, 12))
    assert [d for _, d in rec.pubs][1:] == [f"missed-{i}" for i in range(10)]
    await hub.publish("chat:recover", "after")
    await until(lambda: len(rec.pubs) == 12)
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_recovery_impossible_reports_not_recovered(ws_url: str, squall_app: Squall) -> None:
    """When history lost the missed range the SDK is told recovered=false."""
    c = client(ws_url, delay=0.5)
    await c.connect()
    rec = Recorder()
    sub = c.new_subscription("chat:lost", rec)
    await sub.subscribe()
    await until(lambda: rec.subscribed)
    hub = squall_app.ctx.hub
    await hub.publish("chat:lost", 0)
    await until(lambda: len(rec.pubs) == 1)
    [sess] = hub.clients()
    sess.wire._stream.close()  # type: ignore[attr-defined]
    await until(lambda: sess.closed)
    for i in range(150):  # history_size is 100 in the test config
        await hub.publish("chat:lost", i)
    await until(lambda: len(rec.subscribed) >= 2, timeout=10)
    assert rec.subscribed[-1].was_recovering and not rec.subscribed[-1].recovered
    await c.disconnect()
