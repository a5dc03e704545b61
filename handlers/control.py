"""Node-to-node control ops that act on local connections.

The server API (or any node) sends ``hub.send_control(op, ...)``; every node,
this one included, runs the handler below for its own connections.
"""

from __future__ import annotations

import logging
from typing import Any

from channels import errors
from channels.errors import DisconnectCode
from handlers.context import Context
from handlers.session import ClientSession

log = logging.getLogger("squall.control")


def _sessions(ctx: Context, msg: dict[str, Any]) -> list[ClientSession]:
    user = str(msg.get("user", ""))
    client = str(msg.get("client", ""))
    out = []
    for s in ctx.hub.user_connections(user):
        if isinstance(s, ClientSession) and (not client or s.client_id == client):
            out.append(s)
    return out


def register_controls(ctx: Context) -> None:
    hub = ctx.hub

    def disconnect(msg: dict[str, Any]) -> None:
        code = int(msg.get("code", errors.FORCE_NO_RECONNECT.code))
        reason = str(msg.get("reason", "")) or errors.FORCE_NO_RECONNECT.reason
        keep = set(msg.get("whitelist") or ())
        for s in _sessions(ctx, msg):
            if s.client_id not in keep:
                s.disconnect(DisconnectCode(code, reason), reason)

    def refresh(msg: dict[str, Any]) -> None:
        expire_at = int(msg.get("expire_at", 0))
        for s in _sessions(ctx, msg):
            hub.spawn(_guard(s.server_side_refresh(expire_at, msg.get("info")), "refresh", s.client_id))

    def subscribe(msg: dict[str, Any]) -> None:
        channel = str(msg.get("channel", ""))
        for s in _sessions(ctx, msg):
            hub.spawn(_guard(s.server_side_subscribe(channel), "subscribe", channel))

    def unsubscribe(msg: dict[str, Any]) -> None:
        channel = str(msg.get("channel", ""))
        for s in _sessions(ctx, msg):
            hub.spawn(_guard(s.server_side_unsubscribe(channel), "unsubscribe", channel))

    hub.register_control("disconnect", disconnect)
    hub.register_control("refresh", refresh)
    hub.register_control("subscribe", subscribe)
    hub.register_control("unsubscribe", unsubscribe)


async def _guard(coro: Any, op: str, channel: str) -> None:
    try:
        await coro
    except errors.SquallError as e:
        log.warning("server-side %s of %s failed: %s", op, channel, e.message)
