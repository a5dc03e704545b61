"""In-process Python hooks: what Squall offers that Centrifugo's proxies can't.

Load them with the ``hooks`` setting (``"package.module:factory"``; the
factory returns a :class:`Hooks`). Every hook is optional and async; raising a
:class:`channels.errors.SquallError` turns into that error reply, raising
:class:`channels.errors.Disconnect` ends the connection.

With the HTTP proxy (:mod:`handlers.proxy`) configured for the same event,
the proxy is called first and the hook after it, seeing what the backend
decided (the user it authenticated, the data it rewrote); a refusal by either
ends the command (docs/PROXY.md, "Proxy and hooks").

A hook that acts on clients outside its own call (a direct message, a
notification) gets a :class:`ClientSender` once, when the node is assembled,
through ``Hooks(setup=...)``; keep it and ``await sender.send(client_id,
data)`` from any hook: the client receives a ``message`` push (the SDKs'
``message`` event) on whichever node holds it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from channels.types import ClientInfo


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    client: str
    user: str
    remote_ip: str
    data: Any
    info: Any


@dataclass(slots=True)
class ConnectDecision:
    """What an on_connect hook may change."""

    user: str | None = None
    info: Any = None
    channels: list[str] = field(default_factory=list)


# (client info, channel, data) -> new data (or the same); raise to refuse
PublishHook = Callable[[ClientInfo, str, Any], Awaitable[Any]]
SubscribeHook = Callable[[ClientInfo, str], Awaitable[None]]
ConnectHook = Callable[[ConnectEvent], Awaitable["ConnectDecision | None"]]
RPCHandler = Callable[[ClientInfo, Any], Awaitable[Any]]
# (client info, data of the client's send) -> None, or data sent back to that client as a message push
MessageHook = Callable[[ClientInfo, Any], Awaitable[Any]]
# (client info, disconnect code: 3000 when the client went away, else the server's)
DisconnectHook = Callable[[ClientInfo, int], Awaitable[None]]
# one lifecycle event in its webhook form ({id, type, time_ms, node, ...}: docs/EVENTS.md);
# raise to have it (and its batch) delivered again
EventHook = Callable[[dict[str, Any]], Awaitable[None]]


class ClientSender(Protocol):
    """What ``Hooks.setup`` is given: sends to any client, not only as the
    answer to that client's own ``send``."""

    async def send(self, client_id: str, data: Any) -> None:
        """A ``message`` push of ``data`` (a JSON value) to the connection
        ``client_id``: written at once when it is on this node, else sent
        through the broker's control path to every node (the Redis engine
        across nodes), where the one holding it writes it. Nothing happens for
        a client no node holds (it is not an error: it may have just left)."""
        ...


# called once per node built, with its ClientSender, before it serves (keep it for later hooks)
SetupHook = Callable[[ClientSender], None]


@dataclass(frozen=True)
class Hooks:
    on_connect: ConnectHook | None = None
    on_subscribe: SubscribeHook | None = None
    on_publish: PublishHook | None = None
    on_message: MessageHook | None = None
    on_disconnect: DisconnectHook | None = None
    rpc: dict[str, RPCHandler] = field(default_factory=dict)
    on_event: EventHook | None = None
    setup: SetupHook | None = None


def load_hooks(spec: str) -> Hooks:
    """Import ``module:factory`` and call the factory; '' gives no hooks."""
    if not spec:
        return Hooks()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError("hooks: expected 'module:factory'")
    factory = getattr(importlib.import_module(module_name), attr)
    hooks = factory()
    if not isinstance(hooks, Hooks):
        raise ValueError("hooks: factory must return handlers.hooks.Hooks")
    return hooks
