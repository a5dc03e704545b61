"""The connection commands: connect, refresh, ping, send, rpc; and the
server API's refresh of a connection.

Each is one function of the session and its parsed request (the table is
:mod:`handlers.commands`). ``connect`` authenticates and asks the session to
become connected (:meth:`~handlers.session.ClientSession.connected_as`), then
joins the server-side channels the token or the on_connect hook grants.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from channels import errors
from channels.errors import Disconnect, SquallError
from handlers.auth import ConnectClaims
from handlers.commands_channel import join
from handlers.expiry import already_expired, server_expiry, ttl_fields
from handlers.hooks import ConnectEvent
from handlers.reply import Reply, Result
from handlers.requests import NO_STREAM_REQUEST, ConnectRequest, Empty, RefreshRequest, RpcRequest, SendRequest, StreamRequest
from handlers.tokens import connection_claims

if TYPE_CHECKING:
    from handlers.session import ClientSession

log = logging.getLogger("squall.client")


async def connect(s: ClientSession, req: ConnectRequest) -> Result:
    ctx = s.ctx
    claims: ConnectClaims | None = None
    if req.token:
        claims = connection_claims(ctx.verifier, req.token, s.client_id)
        if already_expired(claims.expire_at, time.time()):
            raise errors.TokenExpired()
    elif not ctx.options.allow_anonymous_connect_without_token:
        raise Disconnect(errors.BAD_REQUEST, "token required")
    user = claims.user if claims else ""
    info = claims.info if claims else None
    # server-side subscriptions the token grants: no permission checks
    channels = [*claims.channels, *claims.subs] if claims else []
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
    s.connected_as(user, info, claims.expire_at if claims else 0, claims.meta if claims else None)
    result: dict[str, Any] = {
        "client": s.client_id,
        "version": ctx.version,
        "ping": int(ctx.options.ping_interval),
        "pong": True,
        "node": ctx.hub.node_id,
    }
    result.update(ttl_fields(s.expire_at, time.time()))
    subs_out: dict[str, Any] = {}
    after: list[bytes] = []
    for channel in dict.fromkeys(channels):
        raw = req.subs.get(channel) or {}
        try:
            stream = StreamRequest.parse(raw) if isinstance(raw, dict) else NO_STREAM_REQUEST
            subs_out[channel], pending = await join(s, channel, ctx.channel_options(channel), stream, server_side=True)
        except SquallError as e:
            log.warning("server-side subscribe to %s failed: %s", channel, e.message)
            continue
        after.extend(s.encode_push(channel, "pub", p.to_dict()) for p in pending)
    if subs_out:
        result["subs"] = subs_out
    return Reply(result, after)


async def refresh(s: ClientSession, req: RefreshRequest) -> Result:
    claims = connection_claims(s.ctx.verifier, req.token, s.client_id)
    if claims.user != s.user:
        raise Disconnect(errors.INVALID_TOKEN, "user mismatch")
    s.set_expiry(claims.expire_at)
    out: dict[str, Any] = {"client": s.client_id, "version": s.ctx.version}
    out.update(ttl_fields(s.expire_at, time.time()))
    return out


async def ping(s: ClientSession, req: Empty) -> Result:
    return {}


async def send(s: ClientSession, req: SendRequest) -> Result:
    if s.ctx.hooks.on_message is not None:
        await s.ctx.hooks.on_message(s.info, req.data)
    return None


async def rpc(s: ClientSession, req: RpcRequest) -> Result:
    handler = s.ctx.hooks.rpc.get(req.method) if req.method is not None else None
    if handler is None:
        raise errors.MethodNotFound()
    data = await handler(s.info, req.data)
    return {"data": data} if data is not None else {}


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
        s.info = dataclasses.replace(s.info, conn_info=conn_info)
        await s.ctx.hub.update_info(s, list(s.subs), s.info)
