"""The one table of client commands; ``handlers.protocol.METHODS`` is built from it.

A command is a request type (:mod:`handlers.requests`: ``parse`` from params),
one async function of the session and that request, returning the reply's
result (:mod:`handlers.reply`), and one entry below. The decoder knows a
method only if it is here, and the session runs only what is here, so the two
cannot disagree.

This module imports no codec and no session at run time (the protocol module
imports it for ``METHODS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, Mapping, TypeVar

from handlers import commands_channel as channel
from handlers import commands_connection as connection
from handlers.reply import Result
from handlers.requests import (
    ChannelRequest,
    ConnectRequest,
    Empty,
    HistoryRequest,
    Params,
    PublishRequest,
    RefreshRequest,
    RpcRequest,
    SendRequest,
    SubRefreshRequest,
    SubscribeRequest,
)

if TYPE_CHECKING:
    from handlers.session import ClientSession

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Command(Generic[R]):
    parse: Callable[[Params], R]
    run: Callable[[ClientSession, R], Awaitable[Result]]
    needs_id: bool = True  # False: fire-and-forget (send), never replied to


# method -> command; read-only and shared by every session
COMMANDS: Mapping[str, Command[Any]] = MappingProxyType(
    {
        "connect": Command(ConnectRequest.parse, connection.connect),
        "subscribe": Command(SubscribeRequest.parse, channel.subscribe),
        "unsubscribe": Command(ChannelRequest.parse, channel.unsubscribe),
        "publish": Command(PublishRequest.parse, channel.publish),
        "presence": Command(ChannelRequest.parse, channel.presence),
        "presence_stats": Command(ChannelRequest.parse, channel.presence_stats),
        "history": Command(HistoryRequest.parse, channel.history),
        "ping": Command(Empty.parse, connection.ping),
        "send": Command(SendRequest.parse, connection.send, needs_id=False),
        "rpc": Command(RpcRequest.parse, connection.rpc),
        "refresh": Command(RefreshRequest.parse, connection.refresh),
        "sub_refresh": Command(SubRefreshRequest.parse, channel.sub_refresh),
    }
)

METHODS: tuple[str, ...] = tuple(COMMANDS)
