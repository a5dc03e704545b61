"""Centrifugo's HTTP proxy JSON, built and parsed purely (bytes in, bytes out).

The bodies are Centrifugo's (``internal/proxyproto/proxy.proto`` in JSON form,
as its HTTP proxy sends them): every request carries ``client``,
``transport``, ``protocol`` and ``encoding``; payloads go as ``data`` (the
JSON itself) or, for bytes that are not JSON or with binary encoding, as
``b64data``. A response holds one of ``result``, ``error`` or
``disconnect``.

Errors::

    MalformedResponse      the backend's answer is not Centrifugo's schema
                           (the caller answers error 100, as Centrifugo does)

A backend's ``error`` becomes :class:`~channels.errors.SquallError` with its
code, message and temporary flag; its ``disconnect`` becomes
:class:`~channels.errors.Disconnect`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from channels.errors import Disconnect, DisconnectCode, SquallError

# Centrifugo's "encoding" field: payloads inline as JSON, or base64 strings
ENCODING_JSON = "json"
ENCODING_BINARY = "binary"


class MalformedResponse(Exception):
    """The backend answered something that is not Centrifugo's proxy JSON."""


class BackendError(SquallError):
    """An ``error`` the backend returned: its own code, message and temporary flag."""

    def __init__(self, code: int, message: str, temporary: bool) -> None:
        self.code = code
        super().__init__(message, temporary=temporary)


# ------------------------------------------------------------------ requests
def payload_fields(value: Any, binary: bool, name: str = "data") -> dict[str, Any]:
    """A payload as Centrifugo sends it: ``data`` inline, or ``b64data``.

    Bytes that are not JSON (a protobuf client's) always go as ``b64data``;
    with binary encoding every payload does."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64" + name: base64.b64encode(bytes(value)).decode()}
    if value is None:
        return {}
    if binary:
        return {"b64" + name: base64.b64encode(orjson.dumps(value)).decode()}
    return {name: value}


@dataclass(frozen=True, slots=True)
class ClientFields:
    """The fields every proxy request starts with."""

    client: str
    transport: str
    protocol: str
    encoding: str = ENCODING_JSON

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "transport": self.transport, "protocol": self.protocol, "encoding": self.encoding}


def connect_request(base: ClientFields, data: Any, name: str, version: str, channels: list[str]) -> bytes:
    body = base.to_dict()
    body.update(payload_fields(data, base.encoding == ENCODING_BINARY))
    if name:
        body["name"] = name
    if version:
        body["version"] = version
    if channels:
        body["channels"] = channels
    return orjson.dumps(body)


def _with_user(base: ClientFields, user: str, meta: Any) -> dict[str, Any]:
    body = base.to_dict()
    body["user"] = user
    if meta is not None:
        body["meta"] = meta
    return body


def refresh_request(base: ClientFields, user: str, meta: Any) -> bytes:
    return orjson.dumps(_with_user(base, user, meta))


def subscribe_request(base: ClientFields, user: str, meta: Any, channel: str, token: str, data: Any) -> bytes:
    body = _with_user(base, user, meta)
    body["channel"] = channel
    if token:
        body["token"] = token
    body.update(payload_fields(data, base.encoding == ENCODING_BINARY))
    return orjson.dumps(body)


def publish_request(base: ClientFields, user: str, meta: Any, channel: str, data: Any) -> bytes:
    body = _with_user(base, user, meta)
    body["channel"] = channel
    body.update(payload_fields(data, base.encoding == ENCODING_BINARY))
    return orjson.dumps(body)


def sub_refresh_request(base: ClientFields, user: str, meta: Any, channel: str) -> bytes:
    body = _with_user(base, user, meta)
    body["channel"] = channel
    return orjson.dumps(body)


def rpc_request(base: ClientFields, user: str, meta: Any, method: str, data: Any) -> bytes:
    body = _with_user(base, user, meta)
    body["method"] = method
    body.update(payload_fields(data, base.encoding == ENCODING_BINARY))
    return orjson.dumps(body)


# ------------------------------------------------------------------ responses
def parse_response(body: bytes) -> dict[str, Any] | None:
    """The ``result`` object of a response (None when absent or null).

    Raises the backend's ``error`` (:class:`BackendError`) or ``disconnect``
    (:class:`Disconnect`), and :class:`MalformedResponse` for anything else
    than a JSON object of Centrifugo's shape."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedResponse("not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedResponse("not a JSON object")
    disconnect = doc.get("disconnect")
    if disconnect is not None:
        code, reason = _code(disconnect, "disconnect"), disconnect.get("reason", "")
        if not isinstance(reason, str):
            raise MalformedResponse("disconnect.reason must be a string")
        raise Disconnect(DisconnectCode(code, reason or "disconnect"), reason or None)
    error = doc.get("error")
    if error is not None:
        code, message = _code(error, "error"), error.get("message", "")
        temporary = error.get("temporary", False)
        if not isinstance(message, str) or not isinstance(temporary, bool):
            raise MalformedResponse("error.message must be a string, error.temporary a boolean")
        raise BackendError(code, message, temporary)
    result = doc.get("result")
    if result is not None and not isinstance(result, dict):
        raise MalformedResponse("result must be an object")
    return result


def _code(obj: Any, what: str) -> int:
    if not isinstance(obj, dict):
        raise MalformedResponse(f"{what} must be an object")
    code = obj.get("code")
    if isinstance(code, bool) or not isinstance(code, int) or not 0 < code < 2**32:
        raise MalformedResponse(f"{what}.code must be a positive integer")
    return code


def _str(r: Mapping[str, Any], key: str) -> str:
    v = r.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise MalformedResponse(f"result.{key} must be a string")
    return v


def _int(r: Mapping[str, Any], key: str) -> int:
    v = r.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise MalformedResponse(f"result.{key} must be a non-negative integer")
    return v


def _bool(r: Mapping[str, Any], key: str) -> bool:
    v = r.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise MalformedResponse(f"result.{key} must be a boolean")
    return v


def payload(r: Mapping[str, Any], name: str) -> Any:
    """``b64<name>`` decoded (JSON bytes become their value) or ``<name>`` as given; None if neither."""
    b64 = _str(r, "b64" + name)
    if b64:
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponse(f"result.b64{name} is not base64") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return r.get(name)


@dataclass(frozen=True, slots=True)
class Override:
    """A subscription's namespace options the backend overrides (None = keep)."""

    presence: bool | None = None
    join_leave: bool | None = None
    force_recovery: bool | None = None
    force_positioning: bool | None = None
    force_push_join_leave: bool | None = None

    @classmethod
    def parse(cls, raw: Any) -> Override:
        if raw is None:
            return NO_OVERRIDE
        if not isinstance(raw, dict):
            raise MalformedResponse("override must be an object")
        out: dict[str, bool] = {}
        for name in ("presence", "join_leave", "force_recovery", "force_positioning", "force_push_join_leave"):
            v = raw.get(name)
            if v is None:
                continue
            if not isinstance(v, dict) or not isinstance(v.get("value", False), bool):
                raise MalformedResponse(f"override.{name} must be {{\"value\": bool}}")
            out[name] = bool(v.get("value", False))
        return cls(**out)

    def changes(self) -> dict[str, Any]:
        """The namespace option names to replace, as Squall's NamespaceOptions spells them."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}  # type: ignore[attr-defined]


NO_OVERRIDE = Override()


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """A channel the backend subscribes the connection to, or allows it to."""

    expire_at: int = 0
    info: Any = None
    data: Any = None
    override: Override = NO_OVERRIDE

    @classmethod
    def parse(cls, r: Any) -> SubscribeOptions:
        if r is None:
            return cls()
        if not isinstance(r, dict):
            raise MalformedResponse("subscribe options must be an object")
        return cls(_int(r, "expire_at"), payload(r, "info"), payload(r, "data"), Override.parse(r.get("override")))


@dataclass(frozen=True, slots=True)
class ConnectResult:
    user: str
    expire_at: int = 0
    info: Any = None
    data: Any = None
    channels: tuple[str, ...] = ()
    subs: Mapping[str, SubscribeOptions] = field(default_factory=dict)
    meta: Any = None

    @classmethod
    def parse(cls, r: Mapping[str, Any]) -> ConnectResult:
        channels = r.get("channels") or []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise MalformedResponse("result.channels must be a list of strings")
        subs = r.get("subs") or {}
        if not isinstance(subs, dict):
            raise MalformedResponse("result.subs must be an object")
        return cls(
            user=_str(r, "user"),
            expire_at=_int(r, "expire_at"),
            info=payload(r, "info"),
            data=payload(r, "data"),
            channels=tuple(channels),
            subs={str(k): SubscribeOptions.parse(v) for k, v in subs.items()},
            meta=r.get("meta"),
        )


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """refresh and sub_refresh: ``expired`` ends it, else it lives to ``expire_at``."""

    expired: bool = False
    expire_at: int = 0
    info: Any = None

    @classmethod
    def parse(cls, r: Mapping[str, Any] | None) -> RefreshResult:
        if r is None:
            return cls()
        return cls(_bool(r, "expired"), _int(r, "expire_at"), payload(r, "info"))


@dataclass(frozen=True, slots=True)
class PublishResult:
    """``data`` set: publish this instead of what the client sent."""

    data: Any = None
    replaced: bool = False
    skip_history: bool = False

    @classmethod
    def parse(cls, r: Mapping[str, Any] | None) -> PublishResult:
        if r is None:
            return cls()
        replaced = bool(_str(r, "b64data")) or r.get("data") is not None
        return cls(payload(r, "data"), replaced, _bool(r, "skip_history"))


def rpc_data(r: Mapping[str, Any] | None) -> Any:
    """An rpc result's payload (None: none)."""
    return None if r is None else payload(r, "data")
