"""Typed requests of the server API's own methods, parsed purely from params.

Fields the server API shares with the client protocol (channel, history
paging) are parsed by :mod:`handlers.requests`; these are the rest.
Centrifugo's clients (``cent``) send unset fields as ``null``: a ``None`` is
read as absent.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from channels import errors
from handlers.requests import Params, channel_param, tags_param

BATCH_MAX_COMMANDS = 1000


def string_param(params: Params, key: str, *, required: bool = True) -> str:
    value = params.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise errors.BadRequest(f"{key} must be a string")
    if required and not value:
        raise errors.BadRequest(f"{key} required")
    return value


def data_param(params: Params) -> Any:
    """``data`` (any JSON) or ``b64data`` (bytes, delivered base64 to JSON clients)."""
    b64 = params.get("b64data")
    if b64:
        if not isinstance(b64, str):
            raise errors.BadRequest("b64data must be a string")
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise errors.BadRequest("b64data is not base64") from None
    if "data" not in params:
        raise errors.BadRequest("data required")
    return params["data"]


@dataclass(frozen=True, slots=True)
class PublishRequest:
    channel: str
    data: Any
    tags: dict[str, str] | None
    idempotency_key: str  # "" = none
    skip_history: bool

    @classmethod
    def parse(cls, params: Params) -> PublishRequest:
        return cls(
            channel=channel_param(params),
            data=data_param(params),
            tags=tags_param(params),
            idempotency_key=string_param(params, "idempotency_key", required=False),
            skip_history=bool(params.get("skip_history")),
        )


@dataclass(frozen=True, slots=True)
class BroadcastRequest:
    channels: tuple[str, ...]

    @classmethod
    def parse(cls, params: Params) -> BroadcastRequest:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            raise errors.BadRequest("channels must be a non-empty list of strings")
        data_param(params)  # validate once before publishing anywhere
        return cls(tuple(channels))


@dataclass(frozen=True, slots=True)
class MembershipRequest:
    """subscribe / unsubscribe a user's (or one client's) connections."""

    user: str
    client: str
    channel: str

    @classmethod
    def parse(cls, params: Params) -> MembershipRequest:
        user = string_param(params, "user", required=False)
        channel = channel_param(params)
        return cls(user, string_param(params, "client", required=False), channel)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """send: a ``message`` push with ``data`` to a user's (or one client's) connections."""

    user: str
    client: str
    data: Any

    @classmethod
    def parse(cls, params: Params) -> SendRequest:
        user = string_param(params, "user", required=False)
        client = string_param(params, "client", required=False)
        if not user and not client:
            raise errors.BadRequest("user or client required")
        if "data" not in params:
            raise errors.BadRequest("data required")
        return cls(user, client, params["data"])


@dataclass(frozen=True, slots=True)
class DisconnectRequest:
    user: str
    client: str
    whitelist: list[str]  # client IDs kept connected
    code: int
    reason: str

    @classmethod
    def parse(cls, params: Params) -> DisconnectRequest:
        user = string_param(params, "user", required=False)
        client = string_param(params, "client", required=False)
        whitelist = params.get("whitelist") or []
        if not isinstance(whitelist, list) or not all(isinstance(c, str) for c in whitelist):
            raise errors.BadRequest("whitelist must be a list of client IDs")
        d = params.get("disconnect") or {}
        if not isinstance(d, dict):
            raise errors.BadRequest("disconnect must be an object")
        code = d.get("code") or errors.FORCE_NO_RECONNECT.code
        reason = d.get("reason") or errors.FORCE_NO_RECONNECT.reason
        if isinstance(code, bool) or not isinstance(code, int) or not 3000 <= code <= 4999:
            raise errors.BadRequest("disconnect code must be 3000..4999")
        if not isinstance(reason, str):
            raise errors.BadRequest("disconnect reason must be a string")
        return cls(user, client, whitelist, code, reason)


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    user: str
    client: str
    expired: bool  # end the connections now (3005)
    expire_at: int  # unix seconds; 0 = never
    info: Any  # None = keep the connections' info

    @classmethod
    def parse(cls, params: Params) -> RefreshRequest:
        user = string_param(params, "user", required=False)
        client = string_param(params, "client", required=False)
        expired = params.get("expired") or False
        expire_at = params.get("expire_at") or 0
        if not isinstance(expired, bool):
            raise errors.BadRequest("expired must be a boolean")
        if isinstance(expire_at, bool) or not isinstance(expire_at, int) or expire_at < 0:
            raise errors.BadRequest("expire_at must be a unix time in seconds")
        return cls(user, client, expired, expire_at, params.get("info"))


@dataclass(frozen=True, slots=True)
class BatchRequest:
    commands: list[Any]  # each {method: params}, checked one by one
    parallel: bool

    @classmethod
    def parse(cls, params: Params) -> BatchRequest:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise errors.BadRequest("commands must be a list")
        if len(commands) > BATCH_MAX_COMMANDS:
            raise errors.LimitExceeded(f"more than {BATCH_MAX_COMMANDS} commands")
        return cls(commands, bool(params.get("parallel")))
