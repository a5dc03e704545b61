"""The official centrifuge-python SDK against Squall, unchanged: in JSON and in protobuf (``use_protobuf=True``).

Every test runs in both formats (the ``fmt`` fixture); in protobuf mode the
SDK sends and receives payloads as bytes, here JSON bytes (what a JSON client
sees inline), and the server side is checked to speak protobuf.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    JoinContext,
    LeaveContext,
    PublicationContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    StreamPosition,
    SubscribedContext,
    SubscriptionEventHandler,
)

from channels import errors
from handlers.auth import make_token
from server.app import Squall
from tests.helpers.squall_process import test_config
from tests.helpers.waiting import until

SECRET = "interop-secret-interop-secret-0123456789"
FORMATS = ["json", "protobuf"]


@pytest.fixture
def squall_config() -> dict[str, Any]:
    """The permissive config, plus a token key and the interop hooks (an ``echo`` RPC)."""
    return test_config(token_hmac_secret_key=SECRET, hooks="tests.interop.hooks:make")


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def payload(fmt: str, value: Any) -> Any:
    """What the SDK must be given in ``fmt``: bytes in protobuf mode."""
    return json.dumps(value).encode() if fmt == "protobuf" else value


def value(data: Any) -> Any:
    """A payload the SDK handed us, as the JSON value it carries."""
    return json.loads(data) if isinstance(data, bytes) else data


def speaks(squall_app: Squall, fmt: str) -> None:
    """Every connection on the server uses ``fmt``'s codec (binary frames for protobuf)."""
    names = {s.wire.codec.name for s in squall_app.ctx.hub.clients()}
    assert names == {fmt}, names


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: list[tuple[int, Any]] = []
        self.joins: list[str] = []
        self.leaves: list[str] = []
        self.subscribed: list[SubscribedContext] = []
        self.event = asyncio.Event()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.pubs.append((ctx.pub.offset, value(ctx.pub.data)))
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
        self.server_subs: dict[str, ServerSubscribedContext] = {}
        self.server_pubs: list[tuple[str, int, Any]] = []
        self.event = asyncio.Event()

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.server_subs[ctx.channel] = ctx

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self.server_pubs.append((ctx.channel, ctx.pub.offset, value(ctx.pub.data)))

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connects += 1
        self.event.set()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnects.append(ctx.code)
        self.event.set()


def client(
    ws_url: str, fmt: str, events: ClientEventHandler | None = None, delay: float = 0.05, token: str = "",
    get_token: Callable[[], Awaitable[str]] | None = None,
) -> Client:
    return Client(
        ws_url, events=events, min_reconnect_delay=delay, max_reconnect_delay=max(0.3, delay * 2), timeout=5,
        use_protobuf=fmt == "protobuf", token=token, get_token=get_token,
    )


@pytest.mark.gen_test(timeout=30)
async def test_publish_subscribe_presence_history_unsubscribe(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """Connect, subscribe, publish, receive, presence, stats, history, unsubscribe."""
    a, b = client(ws_url, fmt), client(ws_url, fmt)
    await a.connect()
    await b.connect()
    ra, rb = Recorder(), Recorder()
    sa = a.new_subscription("chat:interop", ra, join_leave=True)
    sb = b.new_subscription("chat:interop", rb)
    await sa.subscribe()
    await sb.subscribe()
    await until(lambda: ra.joins)
    speaks(squall_app, fmt)
    for i in range(5):
        await sb.publish(payload(fmt, {"n": i}))
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
async def test_server_side_disconnect_reaches_sdk_with_code(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """A server-side disconnect arrives at the SDK with Centrifugo's code."""
    ev = ClientEvents()
    c = client(ws_url, fmt, ev)
    await c.connect()
    await until(lambda: squall_app.ctx.hub.num_clients == 1)
    [sess] = squall_app.ctx.hub.clients()
    squall_app.ctx.hub.disconnect_user(sess.user, errors.FORCE_NO_RECONNECT)
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [3503]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_recovery_after_dropped_connection(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """After a dropped connection the SDK recovers every missed publication in order."""
    ev = ClientEvents()
    c = client(ws_url, fmt, ev, delay=0.5)
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
    speaks(squall_app, fmt)
    resub = rec.subscribed[-1]
    assert resub.was_recovering and resub.recovered
    assert [o for o, _ in rec.pubs] == list(range(1, 12))
    assert [d for _, d in rec.pubs][1:] == [f"missed-{i}" for i in range(10)]
    await hub.publish("chat:recover", "after")
    await until(lambda: len(rec.pubs) == 12)
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_recovery_impossible_reports_not_recovered(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """When history lost the missed range the SDK is told recovered=false."""
    c = client(ws_url, fmt, delay=0.5)
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


@pytest.mark.gen_test(timeout=30)
async def test_token_server_side_subscriptions_and_rpc(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """A token's user, info and channels reach the SDK: server-side subscriptions (token and server API) and RPC."""
    ev = ClientEvents()
    token = make_token(SECRET, "alice", info={"name": "Alice"}, channels=["chat:personal"])
    c = client(ws_url, fmt, ev, token=token)
    await c.connect()
    await until(lambda: "chat:personal" in ev.server_subs)
    [sess] = squall_app.ctx.hub.clients()
    assert sess.user == "alice" and sess.info.conn_info == {"name": "Alice"}
    speaks(squall_app, fmt)
    hub = squall_app.ctx.hub
    await hub.publish("chat:personal", {"hello": "alice"})
    await until(lambda: ev.server_pubs)
    assert ev.server_pubs == [("chat:personal", 1, {"hello": "alice"})]
    await sess.server_side_subscribe("chat:api")  # what the server API's subscribe does on this node
    await until(lambda: "chat:api" in ev.server_subs)
    await hub.publish("chat:api", "x")
    await until(lambda: len(ev.server_pubs) == 2)
    assert ev.server_pubs[1] == ("chat:api", 1, "x")
    result = await c.rpc("echo", payload(fmt, {"q": 1}))
    assert value(result.data) == {"echo": {"q": 1}, "user": "alice"}
    presence = await c.presence("chat:personal")
    assert [value(ci.conn_info) for ci in presence.clients.values()] == [{"name": "Alice"}]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_history_paging(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """History pages forward from a position, then backward, with the stream's offsets."""
    c = client(ws_url, fmt)
    await c.connect()
    hub = squall_app.ctx.hub
    for i in range(7):
        await hub.publish("chat:pages", {"i": i})
    first = await c.history("chat:pages", limit=3, since=StreamPosition(0, ""))
    assert [p.offset for p in first.publications] == [1, 2, 3]
    assert [value(p.data) for p in first.publications] == [{"i": 0}, {"i": 1}, {"i": 2}]
    pos = StreamPosition(3, first.epoch)
    second = await c.history("chat:pages", limit=3, since=pos)
    assert [p.offset for p in second.publications] == [4, 5, 6]
    last = await c.history("chat:pages", limit=3, since=StreamPosition(6, first.epoch))
    assert [p.offset for p in last.publications] == [7] and last.offset == 7
    back = await c.history("chat:pages", limit=2, reverse=True)
    assert [p.offset for p in back.publications] == [7, 6]
    speaks(squall_app, fmt)
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_refresh_token_info_reaches_presence(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """The SDK's refresh with a token whose info changed: presence shows the new conn_info, no reconnect."""

    async def get_token() -> str:
        return make_token(SECRET, "bob", ttl=60, info={"name": "robert"})

    ev = ClientEvents()
    first = make_token(SECRET, "bob", extra={"exp": int(time.time()) + 2}, info={"name": "bob"})
    c = client(ws_url, fmt, ev, token=first, get_token=get_token)
    await c.connect()
    sub = c.new_subscription("chat:renamed", Recorder())
    await sub.subscribe()
    speaks(squall_app, fmt)

    async def names() -> list[Any]:
        return [value(i.conn_info) for i in (await sub.presence()).clients.values()]

    assert await names() == [{"name": "bob"}]
    [sess] = squall_app.ctx.hub.clients()
    await until(lambda: sess.info.conn_info == {"name": "robert"}, timeout=10)
    assert await names() == [{"name": "robert"}]
    assert ev.connects == 1 and ev.disconnects == []
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_refresh_with_get_token(ws_url: str, fmt: str, squall_app: Squall) -> None:
    """A token about to expire is refreshed by the SDK (refresh command); the connection stays up."""
    issued: list[int] = []

    async def get_token() -> str:
        exp = int(time.time()) + 60
        issued.append(exp)
        return make_token(SECRET, "bob", extra={"exp": exp})

    ev = ClientEvents()
    first = make_token(SECRET, "bob", extra={"exp": int(time.time()) + 2})
    c = client(ws_url, fmt, ev, token=first, get_token=get_token)
    await c.connect()
    await until(lambda: squall_app.ctx.hub.num_clients == 1)
    [sess] = squall_app.ctx.hub.clients()
    speaks(squall_app, fmt)
    await until(lambda: issued and sess.expire_at == issued[-1], timeout=10)
    assert not sess.closed and ev.disconnects == [] and ev.connects == 1
    await c.disconnect()
