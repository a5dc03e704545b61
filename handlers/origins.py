"""Origin checks against cross-site WebSocket hijacking.

Browsers always send ``Origin``; a page from another site must not ride the
user's cookies into our socket. Non-browser clients send none and are let
through (they carry no ambient credentials).
"""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    if not origin:
        return True
    if "*" in allowed:
        return True
    o = origin.lower().rstrip("/")
    if allowed:
        return any(fnmatch.fnmatchcase(o, pattern.lower().rstrip("/")) for pattern in allowed)
    try:
        netloc = urlsplit(o).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc == host.lower()
