"""Node-to-node control ops that act on local connections.

The server API (or any node) sends ``hub.send_control(op, ...)``; every node,
this one included, runs the handler below for its own connections. They act
on a connection through :class:`Controllable`, what every client session
offers; the hub's clients are only ever sessions (``ClientSession`` is the one
caller of ``Hub.add_client``), so no type is checked here.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Protocol, cast

from channels import errors
from channels.errors import DisconnectCode
from channels.hub import Hub
from handlers.hooks import Hooks

log = logging.getLogger("squall.control")


class Controllable(Protocol):
    """The server side's handle on one client connection."""

    client_id: str

    def disconnect(self, code: DisconnectCode, reason: str | None = None) -> None: ...

    def server_side_refresh(self, expire_at: int, conn_info: Any = None) -> Awaitable[None]: ...

    def server_side_subscribe(self, channel: str) -> Awaitable[None]: ...

    def server_side_unsubscribe(self, channel: str) -> Awaitable[None]: ...

    def send_message(self, data: Any) -> None: ...


def _sessions(hub: Hub, msg: dict[str, Any]) -> list[Controllable]:
    user = str(msg.get("user", ""))
    client = str(msg.get("client", ""))
    return [
        cast(Controllable, s) for s in hub.user_connections(user) if not client or s.client_id == client
    ]


class HookSender:
    """The :class:`handlers.hooks.ClientSender` hooks get. A client of this
    node is written to directly and the broker is not used, so it cannot get
    a second copy from the ``message`` op; any other id goes through that op
    to every node."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def send(self, client_id: str, data: Any) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("send: client_id must be a non-empty string")
        local = self._hub.client(client_id)
        if local is not None:
            cast(Controllable, local).send_message(data)
            return
        await self._hub.send_control("message", client=client_id, data=data)


def register_controls(hub: Hub, hooks: Hooks | None = None) -> None:
    """The control ops of this node; hands ``hooks.setup`` its ClientSender."""
    if hooks is not None and hooks.setup is not None:
        hooks.setup(HookSender(hub))

    def disconnect(msg: dict[str, Any]) -> None:
        code = int(msg.get("code", errors.FORCE_NO_RECONNECT.code))
        reason = str(msg.get("reason", "")) or errors.FORCE_NO_RECONNECT.reason
        keep = set(msg.get("whitelist") or ())
        for s in _sessions(hub, msg):
            if s.client_id not in keep:
                s.disconnect(DisconnectCode(code, reason), reason)

    def refresh(msg: dict[str, Any]) -> None:
        expire_at = int(msg.get("expire_at", 0))
        for s in _sessions(hub, msg):
            hub.spawn(_guard(s.server_side_refresh(expire_at, msg.get("info")), "refresh", s.client_id))

    def subscribe(msg: dict[str, Any]) -> None:
        channel = str(msg.get("channel", ""))
        for s in _sessions(hub, msg):
            hub.spawn(_guard(s.server_side_subscribe(channel), "subscribe", channel))

    def unsubscribe(msg: dict[str, Any]) -> None:
        channel = str(msg.get("channel", ""))
        for s in _sessions(hub, msg):
            hub.spawn(_guard(s.server_side_unsubscribe(channel), "unsubscribe", channel))

    def message(msg: dict[str, Any]) -> None:
        """The server API's send: a message push (the client's 'message' event)."""
        user, client = str(msg.get("user", "")), str(msg.get("client", ""))
        if user:
            targets = _sessions(hub, msg)
        else:
            one = hub.client(client)
            targets = [cast(Controllable, one)] if one is not None else []
        for s in targets:
            s.send_message(msg.get("data"))

    hub.register_control("disconnect", disconnect)
    hub.register_control("message", message)
    hub.register_control("refresh", refresh)
    hub.register_control("subscribe", subscribe)
    hub.register_control("unsubscribe", unsubscribe)


async def _guard(coro: Awaitable[None], op: str, channel: str) -> None:
    try:
        await coro
    except errors.SquallError as e:
        log.warning("server-side %s of %s failed: %s", op, channel, e.message)
