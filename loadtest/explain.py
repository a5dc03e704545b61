"""One line per refusal code seen in a run: what it means and what to change.

A load test against a server on its default settings meets the server's
protections (rate limits, publish permissions) and would otherwise report
bare codes like ``publish:103``. The knob names are Squall's (most are
Centrifugo's too); the load tester's own flags are named where one fixes it.
"""

from __future__ import annotations

from typing import Any

API_FIX = "or publish through the server API as a backend does: --publish-via api --api-key KEY"

# error replies: code -> (meaning, what to change); keyed by method where it matters
_REPLY: dict[str, tuple[str, str]] = {
    "100": ("internal server error (often a backend: Redis or MongoDB unreachable)", "check the server's log and /ready"),
    "101": ("unauthorized", "give a token the server accepts: --token or --hmac-secret (its token_hmac_secret_key)"),
    "102": ("unknown channel: no such namespace on the server", "use --namespace of one the server configures (bench/squall.toml: bench, stream)"),
    "subscribe:103": (
        "permission denied: the namespace does not let clients subscribe",
        "set allow_subscribe_for_client (allow_subscribe_for_anonymous without a token) in the namespace",
    ),
    "publish:103": (
        "permission denied: the namespace does not let clients publish",
        "set allow_publish_for_subscriber or allow_publish_for_client in the namespace, " + API_FIX,
    ),
    "103": ("permission denied", "check the namespace's allow_* options for this command"),
    "106": ("limit exceeded", "raise client_channel_limit (channels per connection) or lower --per-client"),
    "107": ("bad request", "the server rejected the command's form; check --namespace and --message-size against max_message_size"),
    "108": ("not available: the namespace lacks the feature (history, presence or recovery)", "enable it in the namespace"),
    "109": ("token expired", "give a token without exp or a longer one"),
    "111": (
        "too many requests: the per-connection command rate limit",
        "raise client_command_rate_limit / client_command_burst (0 = unlimited), lower --rate or --window, " + API_FIX,
    ),
    "-1": ("no reply before the load tester closed the connection (end of the drain)", "raise --drain, or lower the load"),
    "-2": ("the server closed the connection while the command waited", "see the disconnect codes below"),
    "TimeoutError": ("no reply within --connect-timeout: the server is overloaded or stalled", "lower --ramp or raise --connect-timeout"),
    "timeout": ("no reply within --connect-timeout: the server is overloaded or stalled", "lower --ramp or raise --connect-timeout"),
    "http-503": (
        "the server refused the WebSocket upgrade (HTTP 503): its connection rate limit, or it is shutting down",
        "lower --ramp below client_connection_rate_limit (default 1000/s) or raise that limit (0 = unlimited)",
    ),
    "http-401": ("the server API refused the key", "pass the server's api_key as --api-key"),
    "http-404": ("the server API is off or not at --api-url", "set api_key on the server, or fix --api-url"),
    "ConnectionRefusedError": ("nothing listens at --url", "start the server, or fix --url"),
    "HandshakeError": ("the server did not accept the WebSocket upgrade", "check --url's path (/connection/websocket)"),
}

# disconnect codes -> (meaning, what to change)
_DISCONNECT: dict[str, tuple[str, str]] = {
    "3001": ("server shutdown", "the server was stopped during the run"),
    "3005": ("connection token expired", "give a token without exp or a longer one"),
    "3008": ("slow consumer: the client's outbound queue overflowed", "raise client_queue_max_size, or give the load tester more --workers"),
    "3012": ("no pong in time: the load tester was too busy to answer pings", "give it more --workers, or raise pong_timeout"),
    "3013": (
        "too many requests: the server disconnected a client over its command rate limit (after 111 replies)",
        "raise client_command_rate_limit / client_command_burst (0 = unlimited), lower --rate or --window, " + API_FIX,
    ),
    "3500": ("invalid token", "sign with the server's token_hmac_secret_key (--hmac-secret) or fix --token"),
    "3501": ("bad request: a token is required", "give --token or --hmac-secret, or allow_anonymous_connect_without_token on the server"),
    "3502": ("stale: no connect command in time", "lower --ramp or raise --connect-concurrency's headroom (client_stale_timeout)"),
    "3504": (
        "connection limit",
        "raise client_connection_limit / client_user_connection_limit / client_ip_connection_limit (0 = unlimited); "
        "--hmac-secret gives each client its own user, --sources spreads client IPs",
    ),
    "3505": ("channel limit", "raise client_channel_limit or lower --per-client"),
    "3507": ("permission denied", "check the namespace's allow_* options"),
    "1009": ("message too big", "lower --message-size below the server's max_message_size"),
}


def _reply_text(key: str) -> tuple[str, str] | None:
    method, _, code = key.partition(":")
    return _REPLY.get(key) or _REPLY.get(code)


def explain(errors: dict[str, int], disconnects: dict[str, int]) -> list[tuple[str, str]]:
    """(label, one line) for every error key and disconnect code the load tester can explain."""
    out = []
    for key, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        text = _reply_text(key)
        if text is not None:
            out.append((f"{key} x{n}", f"{text[0]}: {text[1]}"))
    for code, n in sorted(disconnects.items(), key=lambda kv: -kv[1]):
        text = _DISCONNECT.get(code)
        if text is not None:
            out.append((f"disconnect {code} x{n}", f"{text[0]}: {text[1]}"))
    return out


def explanations(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return explain(summary.get("errors", {}), summary.get("disconnects", {}))
