"""The proxy next to in-process hooks (the documented order), per-method rpc
proxies, status-code transforms and the bound on outstanding proxy calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import ReplyError

from channels.types import ClientInfo
from handlers.hooks import ConnectDecision, ConnectEvent, Hooks
from server.app import Squall
from tests.handlers.test_proxy import Events, SubEvents, client, proxy_config, squall_app, squall_settings  # noqa: F401
from tests.helpers.backend_app import Answer, Backend, backend  # noqa: F401
from tests.helpers.waiting import until

SEEN: list[tuple[str, Any]] = []


@pytest.fixture
def squall_config(backend: Backend) -> dict[str, Any]:
    return proxy_config(
        backend,
        proxy_rpc_endpoints={"special": backend.url("/rpc-special")},
        proxy_http_status_code_transforms=[{"status_code": 403, "to_error": {"code": 4403, "message": "forbidden"}}],
        proxy_max_inflight=2, proxy_connect_timeout=3.0,
    )


@pytest.fixture
def squall_hooks() -> Hooks:
    SEEN.clear()

    async def on_connect(e: ConnectEvent) -> ConnectDecision:
        SEEN.append(("connect", e.user))
        return ConnectDecision(info={"hooked": e.user})

    async def on_publish(info: ClientInfo, channel: str, data: Any) -> Any:
        SEEN.append(("publish", data))
        return {**data, "hook": True}

    async def local(info: ClientInfo, data: Any) -> Any:
        return {"local": data}

    async def special(info: ClientInfo, data: Any) -> Any:
        return {"hook-special": data}

    return Hooks(on_connect=on_connect, on_publish=on_publish, rpc={"local": local, "special": special})


@pytest.mark.gen_test(timeout=30)
async def test_proxy_runs_before_the_hook(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """connect: the hook sees the user the proxy authenticated; publish: the hook sees the proxy's rewrite and may change it."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "from-proxy"}}))
    backend.answer("/publish", lambda b: Answer({"result": {"data": {"v": b["data"]["v"] * 10}}}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    [s] = squall_app.ctx.hub.clients()
    assert s.user == "from-proxy" and s.info.conn_info == {"hooked": "from-proxy"}
    se = SubEvents()
    sub = c.new_subscription("px:order", se)
    await sub.subscribe()
    await until(lambda: se.subscribed)
    await sub.publish({"v": 2})
    await until(lambda: se.pubs)
    assert SEEN == [("connect", "from-proxy"), ("publish", {"v": 20})]
    assert se.pubs == [{"v": 20, "hook": True}]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_rpc_per_method_proxy_then_hook_then_default_proxy(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A method in proxy_rpc_endpoints goes to its own endpoint (over a hook); a hooked method runs in process; others go to proxy_rpc_endpoint."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "u"}}))
    backend.answer("/rpc-special", lambda b: Answer({"result": {"data": {"special": b["method"]}}}))
    backend.answer("/rpc", lambda b: Answer({"result": {"data": {"default": b["method"]}}}))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.connected)
    assert (await c.rpc("special", 1)).data == {"special": "special"}
    assert (await c.rpc("local", 2)).data == {"local": 2}
    assert (await c.rpc("other", 3)).data == {"default": "other"}
    assert [r.body["method"] for r in backend.got("/rpc")] == ["other"]
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_status_code_transform_gives_the_configured_error(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """proxy_http_status_code_transforms: HTTP 403 from the backend is the configured error 4403 (the SDK stops)."""
    backend.answer("/connect", lambda b: Answer({"error": "forbidden"}, status=403))
    ev = Events()
    c = client(ws_url, ev)
    await c.connect()
    await until(lambda: ev.disconnects)
    assert ev.disconnects == [4403]


@pytest.mark.gen_test(timeout=60)
async def test_outstanding_proxy_calls_are_bounded_in_a_reconnect_storm(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """proxy_max_inflight = 2: eight clients connecting at once never put more than 2 calls on the backend; the rest get 100 at once and retry until connected."""
    backend.answer("/connect", lambda b: Answer({"result": {"user": "storm"}}, delay=0.3))
    evs = [Events() for _ in range(8)]
    clients = [client(ws_url, ev) for ev in evs]
    await asyncio.gather(*(c.connect() for c in clients))
    await until(lambda: all(ev.connected for ev in evs), timeout=40)
    assert backend.max_inflight <= 2
    proxy = squall_app.ctx.proxy
    assert proxy is not None and proxy.stats.refused_inflight >= 1
    assert any(isinstance(e.error, ReplyError) and e.error.code == 100 for ev in evs for e in ev.errors)
    await asyncio.gather(*(c.disconnect() for c in clients))
