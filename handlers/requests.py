"""Typed requests, parsed purely from a command's params (no I/O, no state).

Each client command has one request type here; its ``parse`` raises
:class:`~channels.errors.BadRequest` (or the documented error or disconnect
for that field) on malformed input, so a command function only ever sees
well-typed values. The server API (:mod:`handlers.api_methods`) parses the
fields it shares with the client protocol (channel, history paging) with the
same functions.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from channels import errors
from channels.delta_fanout import DELTA_TYPES
from channels.filters import Filter, FilterError
from channels.filters import parse as parse_filter
from channels.types import HistoryQuery, StreamPosition

NO_HEADERS: Mapping[str, str] = MappingProxyType({})  # a connect without emulated headers: one shared, read-only

Params = Mapping[str, Any]


def channel_param(params: Params, key: str = "channel") -> str:
    """A required, non-empty string (a channel name; checked by the namespaces later)."""
    value = params.get(key)
    if value is None or value == "":
        raise errors.BadRequest(f"{key} required")
    if not isinstance(value, str):
        raise errors.BadRequest(f"{key} must be a string")
    return value


def _position(offset: Any, epoch: Any, what: str) -> StreamPosition:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or not isinstance(epoch, str):
        raise errors.BadRequest(what)
    return StreamPosition(offset, epoch)


def _required_token(params: Params) -> str:
    token = params.get("token")
    if not isinstance(token, str) or not token:
        raise errors.BadRequest("token required")
    return token


@dataclass(frozen=True, slots=True)
class Empty:
    """A command without params (ping)."""

    @classmethod
    def parse(cls, params: Params) -> Empty:
        return EMPTY


EMPTY = Empty()


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What a subscription asks of the channel's stream: a subscribe's params,
    or one entry of a connect's ``subs`` (server-side subscriptions)."""

    since: StreamPosition | None = None  # set when recovering
    flag: int = 0
    join_leave: bool = False
    recoverable: bool = False
    positioned: bool = False

    @classmethod
    def parse(cls, params: Params) -> StreamRequest:
        if not _STREAM_KEYS.intersection(params):
            return NO_STREAM_REQUEST  # a plain subscribe: no frozen instance to build
        since = None
        if params.get("recover"):
            since = _position(params.get("offset", 0), params.get("epoch", ""), "bad recovery position")
        flag = params.get("flag", 0)
        return cls(
            since=since,
            flag=flag if isinstance(flag, int) else 0,
            join_leave=bool(params.get("join_leave")),
            recoverable=bool(params.get("recoverable")),
            positioned=bool(params.get("positioned")),
        )


NO_STREAM_REQUEST = StreamRequest()
_STREAM_KEYS = frozenset(("recover", "offset", "epoch", "flag", "join_leave", "recoverable", "positioned"))


@dataclass(frozen=True, slots=True)
class ServerSubRequest:
    """One entry of a connect's ``subs``: a server-side subscription's
    recovery request and its ``delta`` (Centrifugo reads recover, offset,
    epoch and delta there). A ``tf`` is refused: Centrifugo never reads it
    for server-side subscriptions, and a client must not believe it filters."""

    stream: StreamRequest = NO_STREAM_REQUEST
    delta: str = ""

    @classmethod
    def check(cls, params: Params) -> None:
        """The entry's refusals, before anything is authenticated or joined."""
        if params.get("tf") is not None:
            raise errors.Disconnect(errors.BAD_REQUEST, "tags filter in connect subs")
        delta = params.get("delta") or ""
        if delta and delta not in DELTA_TYPES:
            raise errors.Disconnect(errors.BAD_REQUEST, "unknown delta type")

    @classmethod
    def parse(cls, params: Params) -> ServerSubRequest:
        cls.check(params)
        return cls(stream=StreamRequest.parse(params), delta=params.get("delta") or "")


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    token: str  # "" = none
    data: Any
    # channel -> that channel's raw request (parsed per channel with
    # ServerSubRequest.parse, so one bad position skips one subscription, not the
    # connect; a tf or an unknown delta type is refused here, 3501)
    subs: Mapping[str, Any]
    # for the connect proxy: the SDK's name and version, and its emulated headers
    name: str = ""
    version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Params) -> ConnectRequest:
        token = params.get("token") or ""
        if not isinstance(token, str):
            raise errors.Disconnect(errors.INVALID_TOKEN)
        subs = params.get("subs") or {}
        if not isinstance(subs, dict):
            raise errors.BadRequest("subs must be an object")
        name, version, headers = params.get("name") or "", params.get("version") or "", params.get("headers") or {}
        if not isinstance(name, str) or not isinstance(version, str):
            raise errors.BadRequest("name and version must be strings")
        if not isinstance(headers, dict) or (
            headers and not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise errors.BadRequest("headers must map strings to strings")
        if subs:
            for entry in subs.values():
                if isinstance(entry, dict):
                    ServerSubRequest.check(entry)
        return cls(token=token, data=params.get("data"), subs=subs, name=name, version=version,
                   headers=headers or NO_HEADERS)


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    channel: str
    token: str  # "" = none: the namespace's permissions decide
    stream: StreamRequest
    data: Any = None  # for the subscribe proxy
    delta: str = ""  # "" or a type of DELTA_TYPES (the namespace decides whether it is used)
    tags_filter: Filter | None = None

    @classmethod
    def parse(cls, params: Params) -> SubscribeRequest:
        # interned: the session keeps it as its subscription's key, one str per channel instead of per subscriber
        channel = sys.intern(channel_param(params))
        token = params.get("token") or ""
        if not isinstance(token, str):
            raise errors.PermissionDenied()
        delta = params.get("delta") or ""
        if delta and delta not in DELTA_TYPES:
            # Centrifugo: "unknown delta type in subscribe request"
            raise errors.Disconnect(errors.BAD_REQUEST, "unknown delta type")
        tags_filter = None
        if params.get("tf") is not None:
            try:
                tags_filter = parse_filter(params["tf"])
            except FilterError as e:
                raise errors.Disconnect(errors.BAD_REQUEST, f"invalid tags filter: {e}") from None
            if delta:
                raise errors.Disconnect(errors.BAD_REQUEST, "delta and tags filter together")
        _refuse_unsupported(params)
        return cls(
            channel=channel, token=token, stream=StreamRequest.parse(params), data=params.get("data"),
            delta=delta, tags_filter=tags_filter,
        )


# Subscribe fields of Centrifugo's protocol Squall does not serve; asking for
# them gets Centrifugo's answer for an unavailable feature instead of silence.
_SUBSCRIPTION_TYPES_SERVED = (0,)


def _refuse_unsupported(params: Params) -> None:
    kind = params.get("type", 0)
    if kind not in _SUBSCRIPTION_TYPES_SERVED:  # map, client/user presence, shared poll subscriptions
        raise errors.NotAvailable()


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """unsubscribe, presence, presence_stats (and several server API methods)."""

    channel: str

    @classmethod
    def parse(cls, params: Params) -> ChannelRequest:
        return cls(channel_param(params))


@dataclass(frozen=True, slots=True)
class PublishRequest:
    channel: str
    data: Any
    tags: dict[str, str] | None = None  # Squall's JSON extension, as the server API's

    @classmethod
    def parse(cls, params: Params) -> PublishRequest:
        channel = channel_param(params)
        if "data" not in params:
            raise errors.BadRequest("data required")
        if params.get("type", 0) != 0 or params.get("key") or params.get("removed"):
            raise errors.NotAvailable()  # map publications (type 1, key, removed) are not served
        return cls(channel=channel, data=params["data"], tags=tags_param(params))


def tags_param(params: Params) -> dict[str, str] | None:
    """A publication's ``tags``: a map of strings to strings (None when absent or empty)."""
    tags = params.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise errors.BadRequest("tags must map strings to strings")
    return tags or None


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """Centrifugo's history params; shared by the client and server APIs."""

    channel: str
    limit: int = 0  # < 0: as many as allowed
    since: StreamPosition | None = None
    reverse: bool = False

    @classmethod
    def parse(cls, params: Params) -> HistoryRequest:
        channel = channel_param(params)
        limit = params.get("limit", 0)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise errors.BadRequest("limit must be an integer")
        since = None
        raw = params.get("since")
        if raw is not None:
            if not isinstance(raw, dict):
                raise errors.BadRequest("since must be an object")
            since = _position(raw.get("offset", 0), raw.get("epoch", ""), "bad since")
        reverse = params.get("reverse", False)
        if not isinstance(reverse, bool):
            raise errors.BadRequest("reverse must be a boolean")
        return cls(channel=channel, limit=limit, since=since, reverse=reverse)

    def query(self, max_limit: int) -> HistoryQuery:
        """The store's query; LimitExceeded (106) past ``max_limit``."""
        if self.limit > max_limit:
            raise errors.LimitExceeded(f"limit over {max_limit}")
        limit = max_limit if self.limit < 0 else self.limit
        return HistoryQuery(limit=limit, since=self.since, reverse=self.reverse)


@dataclass(frozen=True, slots=True)
class SendRequest:
    data: Any

    @classmethod
    def parse(cls, params: Params) -> SendRequest:
        return cls(params.get("data"))


@dataclass(frozen=True, slots=True)
class RpcRequest:
    method: str | None  # None: not a string (no handler can match)
    data: Any

    @classmethod
    def parse(cls, params: Params) -> RpcRequest:
        method = params.get("method", "")
        return cls(method if isinstance(method, str) else None, params.get("data"))


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    token: str

    @classmethod
    def parse(cls, params: Params) -> RefreshRequest:
        return cls(_required_token(params))


@dataclass(frozen=True, slots=True)
class SubRefreshRequest:
    channel: str
    token: str

    @classmethod
    def parse(cls, params: Params) -> SubRefreshRequest:
        channel = channel_param(params)
        return cls(channel, _required_token(params))
