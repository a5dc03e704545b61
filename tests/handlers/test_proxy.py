"""The HTTP proxy against a real backend written to Centrifugo's proxy schema,
driven by the official centrifuge-python SDK (in-process Squall)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    ReplyError,
    SubscribedContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from channels import errors
from handlers.hooks import ConnectDecision, ConnectEvent, Hooks
from server.app import Squall, build
from server.settings import Settings, load
from tests.helpers.backend_app import Answer, Backend, backend  # noqa: F401
from tests.helpers.procs import free_port
from tests.helpers.squall_process import OPEN_NAMESPACE, test_config, to_toml
from tests.helpers.waiting import until

PROXIED_NS = {"name": "px", "presence": True, "history_size": 10, "history_ttl": 60,
              "proxy_subscribe": True, "proxy_publish": True, "proxy_sub_refresh": True}


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.connected: list[ConnectedContext] = []
        self.disconnects: list[int] = []
        self.errors: list[ErrorContext] = []
        self.connecting: list[int] = []

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.append(ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnects.append(ctx.code)

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.append(ctx.code)

    async def on_error(self, ctx: ErrorContext) -> None:
        self.errors.append(ctx)


class SubEvents(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.subscribed: list[SubscribedContext] = []
        self.unsubscribed: list[int] = []
        self.errors: list[SubscriptionErrorContext] = []
        self.pubs: list[Any] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx.code)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.errors.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.pubs.append(ctx.pub.data)


def proxy_config(b: Backend, **extra: Any) -> dict[str, Any]:
    cfg = test_config(
        allow_anonymous_connect_without_token=False,
        proxy_connect_endpoint=b.url("/connect"),
        proxy_refresh_endpoint=b.url("/refresh"),
        proxy_subscribe_endpoint=b.url("/subscribe"),
        proxy_publish_endpoint=b.url("/publish"),
        proxy_sub_refresh_endpoint=b.url("/sub_refresh"),
        proxy_rpc_endpoint=b.url("/rpc"),
        proxy_connect_timeout=0.5, proxy_subscribe_timeout=0.5, proxy_publish_timeout=0.5, proxy_rpc_timeout=0.5,
        proxy_http_headers=["Authorization", "X-Real-Ip"],
    )
    cfg["namespaces"] = [*cfg["namespaces"], PROXIED_NS]
    cfg.update(extra)
    return cfg


@pytest.fixture
def squall_hooks() -> Hooks | None:
    return None


@pytest.fixture
def squall_config(backend: Backend) -> dict[str, Any]:
    return proxy_config(backend)


@pytest.fixture
def squall_settings(squall_config: dict[str, Any], tmp_path: Path) -> Settings:
    tables = {k: squall_config.pop(k) for k in ("proxy_rpc_endpoints", "proxy_http_status_code_transforms") if k in squall_config}
    path = tmp_path / "squall.toml"
    path.write_text(to_toml(squall_config))
    return load(str(path), environ={}, overrides=tables)


@pytest.fixture
def squall_app(io_loop: Any, squall_settings: Settings, squall_hooks: Hooks | None) -> Any:
    sq = build(squall_settings, hooks=squall_hooks)
    io_loop.run_sync(sq.start)
    yield sq
    io_loop.run_sync(sq.close)


def client(url: str, ev: ClientEventHandler | None = None, **kw: Any) -> Client:
    return Client(url, events=ev, min_reconnect_delay=0.05, max_reconnect_delay=0.3, timeout=5, **kw)


def user_of(app: Squall) -> list[str]:
    return [s.user for s in app.ctx.hub.clients()]


# ---------------------------------------------------------------- connect
@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_authenticates_with_centrifugo_request_and_result(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """The connect proxy gets Centrifugo's request (client, transport, protocol, encoding, data, name, version, channels); its user, info and data apply."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "56", "info": {"role": "admin"}, "data": {"welcome": True}}}))
    ev = Events()
    c = client(ws_url, ev, data={"hello": "backend"}, name="my-app", version="1.2.3")
    await c.connect()
    await until(lambda: ev.connected)
    [got] = backend.got("/connect")
    body = got.body
    assert body["client"] and body["transport"] == "websocket" and body["protocol"] == "json" and body["encoding"] == "json"
    assert body["data"] == {"hello": "backend"} and body["name"] == "my-app" and body["version"] == "1.2.3"
    assert got.headers["Content-Type"] == "application/json"
    assert ev.connected[0].data == {"welcome": True}
    assert user_of(squall_app) == ["56"]
    [s] = squall_app.ctx.hub.clients()
    assert s.info.conn_info == {"role": "admin"} and body["client"] == s.client_id
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_b64_fields_and_server_side_channels(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """b64data in the result reaches the client decoded; `channels` and `subs` subscribe on the server side."""
    import base64
    import json

    backend.answer("/connect", lambda b: Answer({"result": {
        "user": "7", "b64data": base64.b64encode(json.dumps({"x": 1}).encode()).decode(),
        "channels": ["chat:a"], "subs": {"chat:b": {"data": {"sub": "b"}}},
    }}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    assert ev.connected[0].data == {"x": 1}
    [s] = squall_app.ctx.hub.clients()
    await until(lambda: set(s.subs) == {"chat:a", "chat:b"})
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_disconnect_and_error_reach_the_sdk(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A backend `disconnect` closes with its code (4501); a non-temporary `error` ends the SDK's attempts with its code."""
    backend.answer("/connect", lambda b: Answer({"disconnect": {"code": 4501, "reason": "banned"}}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [4501]
    backend.answer("/connect", lambda b: Answer({"error": {"code": 1000, "message": "go away"}}))
    ev2 = Events()
    c2 = client(ws_url, ev2)
    await c2.connect()
    await until(lambda: ev2.disconnects)
    assert ev2.disconnects == [1000]
    assert squall_app.ctx.hub.num_clients == 0


@pytest.mark.parametrize("answer", [
    Answer(b"<html>not json</html>"),
    Answer({"result": "not an object"}),
    Answer({"result": {"user": 56}}),
    Answer({"error": {"code": "x"}}),
    Answer({"result": {"user": "1"}}, status=500),
    Answer({"result": {"user": "1"}}, delay=2.0),  # slower than proxy_connect_timeout (0.5 s)
], ids=["garbage", "result-not-object", "user-not-string", "bad-error", "http-500", "slow"])
@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_failure_is_temporary_error_100(ws_url: str, backend: Backend, squall_app: Squall, answer: Answer) -> None:
    """A malformed, failing or slow backend answer: the SDK gets error 100 (temporary) in bounded time and retries."""
    backend.answer("/connect", lambda b: answer)
    ev = Events()
    c = client(ws_url, ev)
    started = time.monotonic()
    await c.connect()
    await until(lambda: ev.errors, timeout=5)
    assert time.monotonic() - started < 2.0
    err = ev.errors[0].error
    assert isinstance(err, ReplyError) and err.code == 100 and err.temporary
    assert squall_app.ctx.proxy is not None and squall_app.ctx.proxy.stats.failures["connect"] >= 1
    # once the backend answers, the SDK's retry connects
    backend.answer("/connect", lambda b: Answer({"result": {"user": "ok"}}))
    await until(lambda: ev.connected, timeout=10)
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_dead_backend_is_error_100(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """Nothing listens at the connect endpoint: error 100, at once."""
    assert squall_app.ctx.proxy is not None
    dead = f"http://127.0.0.1:{free_port()}/connect"
    cfg = squall_app.ctx.proxy.config
    object.__setattr__(cfg, "connect", type(cfg.connect)(dead, 0.5))  # type: ignore[misc]
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.errors, timeout=5)
    err = ev.errors[0].error
    assert isinstance(err, ReplyError) and err.code == 100
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_http_headers_allow_list(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """Only the allow-listed headers of the client's HTTP request reach the backend."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "h"}}))
    ev = Events()
    c = client(ws_url, ev, headers={"Authorization": "Bearer abc", "X-Secret": "no"})
    await c.connect()
    await until(lambda: ev.connected)
    [got] = backend.got("/connect")
    assert got.headers.get("Authorization") == "Bearer abc"
    assert "X-Secret" not in got.headers
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_token_connect_skips_the_connect_proxy(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A client with a token is authenticated by it, as in Centrifugo: the connect proxy is not called."""
    ev = Events()
    c = client(ws_url, ev, token="not-a-valid-token")
    await c.connect()
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [errors.INVALID_TOKEN.code]
    assert backend.got("/connect") == []


# ---------------------------------------------------------------- subscribe / publish
async def connected(ws_url: str, backend: Backend, user: str = "u1") -> tuple[Client, Events]:
    backend.answer("/connect", lambda b: Answer({"result": {"user": user}}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    return c, ev


@pytest.mark.gen_test(timeout=30)
async def test_subscribe_proxy_allows_with_data_and_refuses(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """proxy_subscribe: the backend gets Centrifugo's subscribe request; its result admits (with data), its error refuses."""
    c, _ = await connected(ws_url, backend)
    backend.answer("/subscribe", lambda b: Answer({"result": {"data": {"motd": "hi"}}}) if b["channel"] == "px:open"
                   else Answer({"error": {"code": 103, "message": "permission denied"}}))
    se = SubEvents()
    sub = c.new_subscription("px:open", se, data={"ask": 1})
    await sub.subscribe()
    await until(lambda: se.subscribed)
    assert se.subscribed[0].data == {"motd": "hi"}
    [got] = backend.got("/subscribe")
    assert got.body["channel"] == "px:open" and got.body["user"] == "u1" and got.body["data"] == {"ask": 1}
    assert got.body["transport"] == "websocket" and got.body["protocol"] == "json"
    se2 = SubEvents()
    sub2 = c.new_subscription("px:closed", se2)
    await sub2.subscribe()
    await until(lambda: se2.unsubscribed)
    assert se2.unsubscribed == [103]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_publish_proxy_rewrites_and_refuses(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """proxy_publish: the backend's data replaces the client's; its error refuses the publication."""
    c, _ = await connected(ws_url, backend)
    backend.answer("/subscribe", lambda b: Answer({"result": {}}))

    def on_publish(b: Any) -> Answer:
        if b["data"].get("bad"):
            return Answer({"error": {"code": 4001, "message": "no swearing"}})
        return Answer({"result": {"data": {"text": b["data"]["text"].upper(), "by": b["user"]}}})

    backend.answer("/publish", on_publish)
    se = SubEvents()
    sub = c.new_subscription("px:room", se)
    await sub.subscribe()
    await until(lambda: se.subscribed)
    await sub.publish({"text": "hello"})
    await until(lambda: se.pubs)
    assert se.pubs == [{"text": "HELLO", "by": "u1"}]
    with pytest.raises(ReplyError) as e:
        await sub.publish({"text": "x", "bad": True})
    assert e.value.code == 4001
    [first, _] = backend.got("/publish")
    assert first.body["channel"] == "px:room" and first.body["data"] == {"text": "hello"}
    await asyncio.sleep(0.1)
    assert se.pubs == [{"text": "HELLO", "by": "u1"}]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_slow_publish_backend_times_out_with_100(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A publish backend slower than proxy_publish_timeout: error 100, nothing published."""
    c, _ = await connected(ws_url, backend)
    backend.answer("/publish", lambda b: Answer({"result": {}}, delay=2.0))
    se = SubEvents()
    sub = c.new_subscription("px:slow", se)
    await sub.subscribe()
    await until(lambda: se.subscribed)
    started = time.monotonic()
    with pytest.raises(ReplyError) as e:
        await sub.publish({"n": 1})
    assert e.value.code == 100 and time.monotonic() - started < 1.5
    await asyncio.sleep(0.1)
    assert se.pubs == []
    await c.disconnect()


# ---------------------------------------------------------------- rpc
@pytest.mark.gen_test(timeout=30)
async def test_rpc_proxy_answers_and_refuses(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """rpc goes to proxy_rpc_endpoint with Centrifugo's request; its data answers, its error refuses."""
    c, _ = await connected(ws_url, backend)
    backend.answer("/rpc", lambda b: Answer({"result": {"data": {"sum": sum(b["data"]["xs"])}}}) if b["method"] == "sum"
                   else Answer({"error": {"code": 104, "message": "method not found"}}))
    r = await c.rpc("sum", {"xs": [1, 2, 3]})
    assert r.data == {"sum": 6}
    with pytest.raises(ReplyError) as e:
        await c.rpc("nope", {})
    assert e.value.code == 104
    first = backend.got("/rpc")[0].body
    assert first["method"] == "sum" and first["user"] == "u1" and first["data"] == {"xs": [1, 2, 3]}
    await c.disconnect()


# ---------------------------------------------------------------- refresh / sub_refresh
@pytest.mark.gen_test(timeout=30)
async def test_refresh_proxy_extends_then_expires(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """At expire_at the refresh proxy is asked: a new expire_at extends the connection, `expired` ends it (3005)."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "r", "expire_at": int(time.time()) + 1}}))
    calls: list[int] = []

    def on_refresh(b: Any) -> Answer:
        calls.append(1)
        return Answer({"result": {"expire_at": int(time.time()) + 1}} if len(calls) == 1 else {"result": {"expired": True}})

    backend.answer("/refresh", on_refresh)
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    await until(lambda: len(backend.got("/refresh")) == 1, timeout=5)
    assert ev.disconnects == []
    await until(lambda: errors.EXPIRED.code in ev.connecting, timeout=8)
    assert len(calls) == 2 and ev.disconnects == []
    body = backend.got("/refresh")[0].body
    assert body["user"] == "r" and body["client"] and body["transport"] == "websocket"
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_sub_refresh_proxy_expires_subscription(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A subscription the subscribe proxy gave an expire_at is refreshed via sub_refresh; `expired` unsubscribes
    it (2501, which the SDK answers by subscribing again: through the subscribe proxy)."""
    c, _ = await connected(ws_url, backend)
    backend.answer("/subscribe", lambda b: Answer({"result": {"expire_at": int(time.time()) + 1}}))
    backend.answer("/sub_refresh", lambda b: Answer({"result": {"expired": True}}))
    se = SubEvents()
    sub = c.new_subscription("px:timed", se)
    await sub.subscribe()
    await until(lambda: se.subscribed)
    await until(lambda: len(se.subscribed) == 2, timeout=8)
    assert len(backend.got("/subscribe")) == 2
    got = backend.got("/sub_refresh")[0]
    assert got.body["channel"] == "px:timed" and got.body["user"] == "u1"
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_on_unidirectional_websocket(http_port: int, http_server: Any, backend: Backend, squall_app: Squall) -> None:
    """A uni_websocket client is reported to the connect proxy as transport "uni_websocket", as Centrifugo names it."""
    from tornado.websocket import websocket_connect

    backend.answer("/connect", lambda b: Answer({"result": {"user": "uni-ws"}}))
    ws = await websocket_connect(f"ws://127.0.0.1:{http_port}/connection/uni_websocket")
    await ws.write_message(json.dumps({"data": {"from": "uni_ws"}}))
    msg = json.loads(await ws.read_message())
    assert msg["connect"]["client"]
    [got] = backend.got("/connect")
    assert got.body["transport"] == "uni_websocket" and got.body["data"] == {"from": "uni_ws"}
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_on_unidirectional_sse(http_port: int, http_server: Any, backend: Backend, squall_app: Squall) -> None:
    """An SSE client without a token is authenticated by the connect proxy (transport "uni_sse", allow-listed request headers); its `channels` are subscribed."""
    from tests.handlers.test_sse import UniStream, sse_path

    backend.answer("/connect", lambda b: Answer({"result": {"user": "sse-user", "channels": ["chat:uni"], "data": {"d": 1}}}))
    s = await UniStream.open(http_port, sse_path({"data": {"from": "sse"}}), headers={"Authorization": "Bearer sse", "X-Other": "x"})
    assert s.status == 200
    msg = await s.until(lambda m: "connect" in m)
    assert msg["connect"]["data"] == {"d": 1}
    [got] = backend.got("/connect")
    assert got.body["transport"] == "uni_sse" and got.body["data"] == {"from": "sse"}
    assert got.headers.get("Authorization") == "Bearer sse" and "X-Other" not in got.headers
    await until(lambda: user_of(squall_app) == ["sse-user"])
    await squall_app.ctx.hub.publish("chat:uni", {"live": True})
    pub = await s.until(lambda m: "pub" in m or ("push" in m and "pub" in m["push"]))
    assert "live" in str(pub)
    s.close()


@pytest.mark.gen_test(timeout=30)
async def test_protobuf_client_and_meta_through_the_proxy(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A protobuf centrifuge-python client: requests say protocol "protobuf", JSON payloads stay inline; the connect result's meta comes back in later requests."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "pb", "meta": {"tenant": 7}}}))
    backend.answer("/subscribe", lambda b: Answer({"result": {}}))
    backend.answer("/publish", lambda b: Answer({"result": {"data": {"seen": b["data"]}}}))
    ev = Events()
    c = client(ws_url, ev, use_protobuf=True, data=b'{"pb": true}')
    await c.connect()
    await until(lambda: ev.connected)
    se = SubEvents()
    sub = c.new_subscription("px:pb", se)
    await sub.subscribe()
    await until(lambda: se.subscribed)
    await sub.publish(b'{"n": 1}')
    await until(lambda: se.pubs)
    assert [json.loads(p) for p in se.pubs] == [{"seen": {"n": 1}}]
    [conn] = backend.got("/connect")
    assert conn.body["protocol"] == "protobuf" and conn.body["data"] == {"pb": True}
    for path in ("/subscribe", "/publish"):
        [got] = backend.got(path)
        assert got.body["meta"] == {"tenant": 7} and got.body["protocol"] == "protobuf"
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_connect_proxy_on_the_http_stream_emulation(http_port: int, http_server: Any, backend: Backend, squall_app: Squall) -> None:
    """centrifuge-js's http_stream emulation transport reports transport "http_stream" to the connect proxy, with allow-listed headers."""
    from tests.handlers.test_sse import UniStream

    backend.answer("/connect", lambda b: Answer({"result": {"user": "emu"}}))
    first = json.dumps({"id": 1, "connect": {"data": {"emu": 1}}}).encode()
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST", body=first,
                             headers={"Content-Type": "application/json", "Authorization": "Bearer e", "X-Other": "x"})
    assert s.status == 200
    await s.until(lambda m: "connect" in m)
    [got] = backend.got("/connect")
    assert got.body["transport"] == "http_stream" and got.body["data"] == {"emu": 1}
    assert got.headers.get("Authorization") == "Bearer e" and "X-Other" not in got.headers
    s.close()


@pytest.mark.gen_test(timeout=30)
async def test_proxy_metrics(http_port: int, ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """/metrics counts proxy calls and failures per event and their durations."""
    from tornado.httpclient import AsyncHTTPClient

    backend.answer("/connect", lambda b: Answer({"result": {"user": "m"}}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    with pytest.raises(ReplyError):
        backend.answer("/rpc", lambda b: Answer(b"garbage"))
        await c.rpc("x", {})
    text = (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/metrics")).body.decode()
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("squall_proxy"))
    assert float(lines['squall_proxy_calls_total{event="connect"}']) == 1
    assert float(lines['squall_proxy_failures_total{event="connect"}']) == 0
    assert float(lines['squall_proxy_failures_total{event="rpc"}']) == 1
    assert float(lines['squall_proxy_call_duration_seconds_count{event="connect"}']) == 1
    assert float(lines['squall_proxy_call_duration_seconds_bucket{event="rpc",le="+Inf"}']) == 1
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_subscribe_proxy_disconnect_closes_the_connection(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A subscribe answered with `disconnect` ends the connection with the backend's code."""
    c, ev = await connected(ws_url, backend)
    backend.answer("/subscribe", lambda b: Answer({"disconnect": {"code": 4502, "reason": "go"}}))
    sub = c.new_subscription("px:bye", SubEvents())
    await sub.subscribe()
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [4502]
    await until(lambda: squall_app.ctx.hub.num_clients == 0)
