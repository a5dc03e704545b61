"""The few options handlers read, passed down by server/ instead of Settings.

handlers/ never imports server/ (data flows one way): ``server.app`` builds one
:class:`HandlerOptions` from its ``Settings`` (same names, same meaning; the
defaults and their documentation live there) and puts it in the
:class:`~handlers.context.Context`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
