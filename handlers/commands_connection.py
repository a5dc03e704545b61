"""The connection commands: connect, refresh, ping, send, rpc; and the
server API's refresh of a connection.

Each is one function of the session and its parsed request (the table is
:mod:`handlers.commands`). ``connect`` authenticates and asks the session to
become connected (:meth:`~handlers.session.ClientSession.connected_as`), then
joins the server-side channels the token or the on_connect hook grants.
A client without a token is authenticated by the connect proxy when one is
configured (:mod:`handlers.proxy`); its ``expire_at`` is then refreshed on
the server side through the refresh proxy, as Centrifugo does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from channels import errors
from channels.errors import Disconnect, SquallError
from handlers import proxy_calls
from handlers.auth import ConnectClaims
from handlers.commands_channel import join
from handlers.expiry import already_expired, server_expiry, ttl_fields
from handlers.hooks import ConnectEvent
from handlers.reply import Reply, Result
from handlers.sdk import clean as sdk_clean
from handlers.delivery import publication_body, server_sub_delivery
from handlers.requests import ConnectRequest, Empty, RefreshRequest, RpcRequest, SendRequest, ServerSubRequest
from handlers.tokens import connection_claims

if TYPE_CHECKING:
    from handlers.session import ClientSession

log = logging.getLogger("squall.client")

NO_SERVER_SUB = ServerSubRequest()


async def connect(s: ClientSession, req: ConnectRequest) -> Result:
    ctx = s.ctx
    claims: ConnectClaims | None = None
    proxied: proxy_calls.schema.ConnectResult | None = None
    s.emulated_headers = req.headers
    proxy = ctx.proxy
    endpoint = proxy.config.connect if proxy is not None else None
    if req.token:
        claims = connection_claims(ctx.verifier, req.token, s.client_id)
        if already_expired(claims.expire_at, time.time()):
            raise errors.TokenExpired()
    elif proxy is not None and endpoint is not None:
        proxied = await proxy_calls.connect(proxy, endpoint, s, req.data, req.name, req.version, list(req.subs))
        claims = ConnectClaims(proxied.user, proxied.expire_at, proxied.info, proxied.channels, dict(proxied.subs), proxied.meta)
    elif not ctx.options.allow_anonymous_connect_without_token:
        raise Disconnect(errors.BAD_REQUEST, "token required")
    user = claims.user if claims else ""
    info = claims.info if claims else None
    # server-side subscriptions the token (or the connect proxy) grants: no permission checks
    channels = [*claims.channels, *claims.subs] if claims else []
    by_proxy = proxied is not None
    refreshed_by_proxy = by_proxy and proxy is not None and proxy.config.refresh is not None
    if ctx.hooks.on_connect is not None:
        decision = await ctx.hooks.on_connect(ConnectEvent(s.client_id, user, s.remote_ip, req.data, info))
        if decision is not None:
            if decision.user is not None:
                user = decision.user
            if decision.info is not None:
                info = decision.info
            channels.extend(decision.channels)
    if s.closed:
        return None
    expire_at = claims.expire_at if claims else 0
    s.sdk, s.sdk_version = sdk_clean(req.name), sdk_clean(req.version)
    s.connected_as(user, info, 0 if refreshed_by_proxy else expire_at, claims.meta if claims else None)
    if refreshed_by_proxy and expire_at:
        proxy_calls.arm_refresh(s, expire_at)
    if ctx.events.wants("connect"):  # no keyword dict built per connect when no event is recorded
        ctx.events.emit("connect", client=s.client_id, user=user, transport=s.transport, remote_ip=s.remote_ip)
    result: dict[str, Any] = {
        "client": s.client_id,
        "version": ctx.version,
        "ping": int(ctx.options.ping_interval),
        "pong": True,
        "node": ctx.hub.node_id,
    }
    if s.expire_at:
        result.update(ttl_fields(s.expire_at, time.time()))
    if proxied is not None and proxied.data is not None:
        result["data"] = proxied.data
    subs_out: dict[str, Any] = {}
    after: list[bytes] = []
    for channel in dict.fromkeys(channels):
        raw = req.subs.get(channel) or {}
        try:
            sub = ServerSubRequest.parse(raw) if isinstance(raw, dict) else NO_SERVER_SUB
            opts = ctx.channel_options(channel)
            granted = claims.subs.get(channel) if by_proxy and claims is not None else None
            if isinstance(granted, proxy_calls.schema.SubscribeOptions):
                opts = dataclasses.replace(opts, **granted.override.changes())
            delivery = server_sub_delivery(sub.delta, opts, s.wire.codec.binary)
            subs_out[channel], pending = await join(s, channel, opts, sub.stream, server_side=True, delivery=delivery)
            if isinstance(granted, proxy_calls.schema.SubscribeOptions) and granted.data is not None:
                subs_out[channel]["data"] = granted.data
        except SquallError as e:
            log.warning("server-side subscribe to %s failed: %s", channel, e.message)
            continue
        after.extend(s.encode_push(channel, "pub", publication_body(delivery, p)) for p in pending)
    if subs_out:
        result["subs"] = subs_out
    return Reply(result, after)


async def refresh(s: ClientSession, req: RefreshRequest) -> Result:
    claims = connection_claims(s.ctx.verifier, req.token, s.client_id)
    if claims.user != s.user:
        raise Disconnect(errors.INVALID_TOKEN, "user mismatch")
    s.set_expiry(claims.expire_at)
    # as Centrifugo: the new token's meta and info replace the old ones; info is what presence shows
    if claims.meta is not None:
        s.meta = claims.meta
    if claims.info is not None:
        await s.update_conn_info(claims.info)
    out: dict[str, Any] = {"client": s.client_id, "version": s.ctx.version}
    out.update(ttl_fields(s.expire_at, time.time()))
    return out


async def ping(s: ClientSession, req: Empty) -> Result:
    return {}


async def send(s: ClientSession, req: SendRequest) -> Result:
    if s.ctx.hooks.on_message is not None:
        answer = await s.ctx.hooks.on_message(s.info, req.data)
        if answer is not None:  # the hook sends something back: a message push to this client
            s.send_message(answer)
    return None


async def rpc(s: ClientSession, req: RpcRequest) -> Result:
    """A method in proxy_rpc_endpoints goes to its proxy; else an in-process
    handler for it runs; else proxy_rpc_endpoint gets it (docs/PROXY.md)."""
    proxy, method = s.ctx.proxy, req.method
    handler = s.ctx.hooks.rpc.get(method) if method is not None else None
    if proxy is not None and method is not None and (method in proxy.config.rpc_methods or handler is None):
        endpoint = proxy.config.rpc_endpoint(method)
        if endpoint is not None:
            data = await proxy_calls.rpc(proxy, endpoint, s, method, req.data)
            return {"data": data} if data is not None else {}
    if handler is None:
        raise errors.MethodNotFound()
    data = await handler(s.info, req.data)
    return {"data": data} if data is not None else {}


async def connection_closed(s: ClientSession) -> None:
    """The end of a connected session: the on_disconnect hook and the
    disconnect event, with the code it closed with (3000: the client went away)."""
    if s.proxy_timer is not None:
        s.proxy_timer.cancel()
        s.proxy_timer = None
    code = s.close_code or errors.CONNECTION_CLOSED.code
    if s.ctx.events.wants("disconnect"):
        s.ctx.events.emit("disconnect", client=s.client_id, user=s.user, code=code)
    if s.ctx.hooks.on_disconnect is not None:
        try:
            await s.ctx.hooks.on_disconnect(s.info, code)
        except Exception:
            log.exception("on_disconnect hook failed")


async def server_refresh(s: ClientSession, expire_at: int, conn_info: Any = None) -> None:
    """The server API's refresh: the connection now expires at ``expire_at``
    (unix seconds; 0 = never), and with ``conn_info`` the info others see of
    it changes. As Centrifugo, an ``expire_at`` already past ends it (3005),
    and the client hears a ``refresh`` push with its new ``ttl``."""
    if not s.connected:
        return
    new = server_expiry(expire_at, time.time())
    if new is None:
        s.disconnect(errors.EXPIRED)
        return
    s.set_expiry(new)
    w = s.wire
    s.write_wire(w.frame(w.codec.connection_push("refresh", ttl_fields(s.expire_at, time.time()))))
    if conn_info is not None:
        await s.update_conn_info(conn_info)
