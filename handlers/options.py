"""The few options handlers read, passed down by server/ instead of Settings.

handlers/ never imports server/ (data flows one way): ``server.app`` builds one
:class:`HandlerOptions` from its ``Settings`` (same names, same meaning; the
defaults and their documentation live there) and puts it in the
:class:`~handlers.context.Context`. The HTTP proxy's settings arrive parsed the
same way, as one :class:`ProxyConfig` (built by ``server.app.proxy_config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from channels.errors import DisconnectCode

PROXY_EVENTS = ("connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc")


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    # connecting
    allow_anonymous_connect_without_token: bool
    allowed_origins: tuple[str, ...]
    client_stale_timeout: float
    ping_interval: float
    # tokens
    client_expired_close_delay: float
    client_expired_sub_close_delay: float
    # limits
    client_channel_limit: int
    client_command_rate_limit: float
    client_command_burst: int
    client_queue_max_size: int
    max_message_size: int
    history_max_limit: int
    presence_max_clients: int
    # transports
    websocket_compression: bool
    # server API and admin UI
    api_key: str
    api_insecure: bool
    admin_password: str
    admin_secret: str
    # shown by /ready
    engine: str
    history: str


# ------------------------------------------------------------ the HTTP proxy (handlers.proxy)
@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    timeout: float  # seconds for the whole call, waiting for a connection included


@dataclass(frozen=True, slots=True)
class StatusTransform:
    """Centrifugo's http_status_code_transforms entry: an HTTP status -> a client error or disconnect."""

    status_code: int
    error: tuple[int, str, bool] | None = None  # code, message, temporary
    disconnect: DisconnectCode | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> StatusTransform:
        """From ``{status_code, to_error: {code, message, temporary}}`` or ``{..., to_disconnect: {code, reason}}``."""
        status = raw.get("status_code")
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError("status_code must be an integer")
        to_error, to_disconnect = raw.get("to_error"), raw.get("to_disconnect")
        if isinstance(to_error, Mapping) and isinstance(to_error.get("code"), int) and to_error["code"] > 0:
            return cls(status, error=(to_error["code"], str(to_error.get("message", "")), bool(to_error.get("temporary", False))))
        if isinstance(to_disconnect, Mapping) and isinstance(to_disconnect.get("code"), int) and to_disconnect["code"] > 0:
            return cls(status, disconnect=DisconnectCode(to_disconnect["code"], str(to_disconnect.get("reason", ""))))
        raise ValueError("needs to_error.code or to_disconnect.code > 0")


@dataclass(frozen=True)
class ProxyConfig:
    """Which events are proxied where; None: not proxied."""

    connect: Endpoint | None = None
    refresh: Endpoint | None = None
    subscribe: Endpoint | None = None
    publish: Endpoint | None = None
    sub_refresh: Endpoint | None = None
    rpc: Endpoint | None = None  # every rpc method not in rpc_methods
    rpc_methods: Mapping[str, Endpoint] = field(default_factory=dict)
    http_headers: tuple[str, ...] = ()  # lowercase; from the client's HTTP request only
    emulated_headers: tuple[str, ...] = ()  # lowercase; from the connect command's `headers` only
    static_headers: Mapping[str, str] = field(default_factory=dict)
    binary_encoding: bool = False
    max_inflight: int = 1000
    status_transforms: tuple[StatusTransform, ...] = ()

    @property
    def enabled(self) -> bool:
        return any(getattr(self, e) is not None for e in PROXY_EVENTS) or bool(self.rpc_methods)

    def rpc_endpoint(self, method: str) -> Endpoint | None:
        return self.rpc_methods.get(method, self.rpc)
