"""Origin checks against cross-site WebSocket hijacking (CSWSH).

Browsers always send ``Origin``; a page from another site must not ride the
user's cookies into our socket. Non-browser clients send none and are let
through (they carry no ambient credentials). Shared by every transport that a
browser can open with cookies: WebSocket, SSE, HTTP streaming.

``allowed`` patterns are full origins (``https://app.example.com``) with
optional ``*`` wildcards (``https://*.example.com``); a wildcard never matches
across the scheme or port separators. Empty means same origin only (the
``Origin`` host and port equal the request's ``Host``); ``*`` allows any.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def normalize(origin: str) -> str | None:
    """``scheme://host[:port]`` lowercased, default port dropped; None if not an origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def _host_key(netloc: str, scheme: str) -> str:
    host, sep, port = netloc.lower().rpartition(":")
    if not sep or "]" in port:  # no port (or an IPv6 literal without one)
        return netloc.lower()
    return host if port == _DEFAULT_PORTS.get(scheme) else netloc.lower()


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    p = pattern.strip().lower().rstrip("/")
    return re.compile("".join("[^:/]*" if ch == "*" else re.escape(ch) for ch in p) + r"\Z")


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """True when a request with this ``Origin`` header may open a connection."""
    if origin is None or origin == "":
        return True
    if "*" in allowed:
        return True
    o = normalize(origin)
    if o is None:
        return False  # "null" (sandboxed frames, file://) and garbage
    if allowed:
        return any(_pattern(p).match(o) for p in allowed)
    scheme, _, netloc = o.partition("://")
    return _host_key(netloc, scheme) == _host_key(host, scheme)
