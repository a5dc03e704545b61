"""One function per proxied event: build the request, call, parse the result.

The command functions (:mod:`handlers.commands_connection`,
:mod:`handlers.commands_channel`) call these when ``ctx.proxy`` proxies the
event; the order against in-process hooks is theirs (docs/PROXY.md: the
proxy first, then the hook, which sees what the backend decided).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from channels import errors, tracing
from channels.namespaces import NamespaceOptions
from handlers import proxy_schema as schema
from handlers.proxy import Endpoint, Proxy

if TYPE_CHECKING:
    from handlers.context import Context
    from handlers.session import ClientSession

REFRESH_RETRY = 10.0  # seconds before refresh / sub_refresh is asked again after the backend failed
UNSUBSCRIBE_EXPIRED = 2501  # Centrifugo's unsubscribe code: subscription expired


async def _call(proxy: Proxy, event: str, ep: Endpoint, s: ClientSession, body: Any) -> Any:
    with tracing.span(s.ctx.tracer, "squall.proxy", event=event, endpoint=ep.url):
        return await proxy.call(event, ep, s, body)


async def connect(proxy: Proxy, ep: Endpoint, s: ClientSession, data: Any, name: str, version: str, channels: list[str]) -> schema.ConnectResult:
    body = schema.connect_request(proxy.fields(s), data, name, version, channels)
    result = await _call(proxy, "connect", ep, s, body)
    if result is None:
        raise errors.Unauthorized()
    return _parsed(schema.ConnectResult.parse, result, proxy, "connect", ep, s)


async def refresh(proxy: Proxy, ep: Endpoint, s: ClientSession) -> schema.RefreshResult:
    result = await _call(proxy, "refresh", ep, s, schema.refresh_request(proxy.fields(s), s.user, s.meta))
    return _parsed(schema.RefreshResult.parse, result, proxy, "refresh", ep, s)


async def subscribe(proxy: Proxy, ep: Endpoint, s: ClientSession, channel: str, token: str, data: Any) -> schema.SubscribeOptions:
    body = schema.subscribe_request(proxy.fields(s), s.user, s.meta, channel, token, data)
    result = await _call(proxy, "subscribe", ep, s, body)
    return _parsed(schema.SubscribeOptions.parse, result, proxy, "subscribe", ep, s)


async def publish(proxy: Proxy, ep: Endpoint, s: ClientSession, channel: str, data: Any) -> schema.PublishResult:
    body = schema.publish_request(proxy.fields(s), s.user, s.meta, channel, data)
    result = await _call(proxy, "publish", ep, s, body)
    return _parsed(schema.PublishResult.parse, result, proxy, "publish", ep, s)


async def sub_refresh(proxy: Proxy, ep: Endpoint, s: ClientSession, channel: str) -> schema.RefreshResult:
    body = schema.sub_refresh_request(proxy.fields(s), s.user, s.meta, channel)
    result = await _call(proxy, "sub_refresh", ep, s, body)
    return _parsed(schema.RefreshResult.parse, result, proxy, "sub_refresh", ep, s)


async def rpc(proxy: Proxy, ep: Endpoint, s: ClientSession, method: str, data: Any) -> Any:
    body = schema.rpc_request(proxy.fields(s), s.user, s.meta, method, data)
    result = await _call(proxy, "rpc", ep, s, body)
    return _parsed(schema.rpc_data, result, proxy, "rpc", ep, s)


def _parsed(parse: Any, result: Any, proxy: Proxy, event: str, ep: Endpoint, s: ClientSession) -> Any:
    """A result of the wrong shape is the backend's fault: 100, logged, as a failed call."""
    try:
        return parse(result)
    except schema.MalformedResponse as e:
        raise proxy.failed(event, ep, s, str(e)) from None


def arm_refresh(s: ClientSession, at: float) -> None:
    """Ask the refresh proxy at unix time ``at`` (the proxied connection's expire_at)."""
    if s.proxy_timer is not None:
        s.proxy_timer.cancel()
    s.proxy_timer = asyncio.get_running_loop().call_later(max(0.0, at - time.time()), _refresh_due, s)


def _refresh_due(s: ClientSession) -> None:
    s.proxy_timer = None
    if s.connected:
        s.ctx.hub.spawn(proxy_refresh(s))


async def proxy_refresh(s: ClientSession) -> None:
    """Centrifugo's server-side refresh: ``expired`` ends the connection (3005),
    else it lives to the new ``expire_at`` (0: for good) with the new info."""
    proxy = s.ctx.proxy
    endpoint = proxy.config.refresh if proxy is not None else None
    if proxy is None or endpoint is None or not s.connected:
        return
    try:
        r = await refresh(proxy, endpoint, s)
    except errors.Disconnect as d:
        s.disconnect(errors.DisconnectCode(d.code, d.reason), d.reason)
        return
    except errors.SquallError:
        arm_refresh(s, time.time() + REFRESH_RETRY)  # the backend failed: ask again soon
        return
    if not s.connected:
        return
    if r.expired:
        s.disconnect(errors.EXPIRED)
        return
    if r.expire_at:
        arm_refresh(s, r.expire_at)
    if r.info is not None:
        await s.update_conn_info(r.info)


def channel_proxy(ctx: Context, event: str, opts: NamespaceOptions) -> tuple[Proxy, Endpoint] | None:
    """The proxy and endpoint of a channel event (subscribe, publish,
    sub_refresh) when the channel's namespace enables it (proxy_<event>)."""
    proxy = ctx.proxy
    if proxy is None or not getattr(opts, "proxy_" + event):
        return None
    endpoint: Endpoint | None = getattr(proxy.config, event)
    return None if endpoint is None else (proxy, endpoint)


async def publish_data(proxy: Proxy, ep: Endpoint, s: ClientSession, channel: str, data: Any) -> Any:
    """What to publish: the backend's ``data`` when it rewrote it, else the client's."""
    r = await publish(proxy, ep, s, channel, data)
    return r.data if r.replaced else data


def subscribed(s: ClientSession, channel: str, opts: NamespaceOptions, r: schema.SubscribeOptions, result: dict[str, Any]) -> None:
    """After a proxied subscribe: the backend's ``data`` in the reply, and its
    ``expire_at`` refreshed through the sub_refresh proxy when the namespace has one."""
    if r.data is not None:
        result["data"] = r.data
    if r.expire_at and channel_proxy(s.ctx, "sub_refresh", opts) is not None:
        arm_sub_refresh(s, channel, r.expire_at)


def arm_sub_refresh(s: ClientSession, channel: str, at: float) -> None:
    sub = s.subs.get(channel)
    if sub is None:
        return
    if sub.proxy_timer is not None:
        sub.proxy_timer.cancel()
    sub.proxy_timer = asyncio.get_running_loop().call_later(max(0.0, at - time.time()), _sub_refresh_due, s, channel, sub)


def _sub_refresh_due(s: ClientSession, channel: str, sub: Any) -> None:
    sub.proxy_timer = None
    if s.connected and s.subs.get(channel) is sub:
        s.ctx.hub.spawn(proxy_sub_refresh(s, channel, sub))


async def proxy_sub_refresh(s: ClientSession, channel: str, sub: Any) -> None:
    """Centrifugo's server-side sub_refresh: ``expired`` unsubscribes (2501),
    else the subscription lives to the new ``expire_at`` (0: for good)."""
    found = channel_proxy(s.ctx, "sub_refresh", sub.opts)
    if found is None:
        return
    proxy, ep = found
    try:
        r = await sub_refresh(proxy, ep, s, channel)
    except errors.Disconnect as d:
        s.disconnect(errors.DisconnectCode(d.code, d.reason), d.reason)
        return
    except errors.SquallError:
        arm_sub_refresh(s, channel, time.time() + REFRESH_RETRY)
        return
    if not s.connected or s.subs.get(channel) is not sub:
        return
    if r.expired:
        await s.server_side_unsubscribe(channel, UNSUBSCRIBE_EXPIRED, "subscription expired")
    elif r.expire_at:
        arm_sub_refresh(s, channel, r.expire_at)
