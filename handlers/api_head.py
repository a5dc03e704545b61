"""Server API requests and responses as bytes, for the front door's lean
keep-alive path (:mod:`handlers.api_conn`); pure functions, no socket.

Only the plainest request is read here: ``POST /api[/<method>][/]`` over
HTTP/1.1 with a ``Content-Length`` body and no ``Transfer-Encoding`` or
``Expect``. Anything else returns None and the connection goes to Tornado
before a byte of that request is consumed, so Tornado answers it exactly as
it would without the door (chunked bodies, ``100-continue``, HTTP/1.0, an
escaped path, a body over the limit: its 400s and 413s included). Two
``Content-Length`` headers, the classic smuggling vector, are a repeated
header, which :func:`handlers.ws_handshake.parse_head` already refuses.
"""

from __future__ import annotations

import email.utils
import http.client
from dataclasses import dataclass

from handlers.ws_handshake import parse_head

_KEEP_ALIVE_TOKENS = frozenset(("keep-alive", "close"))


@dataclass(frozen=True, slots=True)
class ApiHead:
    """A request head the lean path serves."""

    method: str  # the API method named by the path; "" for the legacy ``POST /api``
    headers: dict[str, str]  # by lower-case name
    length: int  # of the body, from Content-Length
    close: bool  # the client asked for ``Connection: close``


def read_api_head(head: bytes, max_body: int) -> ApiHead | None:
    """The head (without its blank line) of a plain API request, or None."""
    parsed = parse_head(head, "POST")
    if parsed is None or "transfer-encoding" in parsed.headers or "expect" in parsed.headers:
        return None
    path = parsed.path  # Tornado's routes: /api/?, /api/([^/]+)/? on the raw (escaped) path
    if path in ("/api", "/api/"):
        method = ""
    elif path.startswith("/api/") and "%" not in path:
        method = path[5:-1] if path.endswith("/") else path[5:]
        if not method or "/" in method:
            return None
    else:
        return None
    length_text = parsed.headers.get("content-length")
    if length_text is None or not length_text.isdigit() or not length_text.isascii():
        return None
    length = int(length_text)
    if length > max_body:
        return None
    tokens = {t.strip().lower() for t in parsed.headers.get("connection", "keep-alive").split(",")}
    if not tokens <= _KEEP_ALIVE_TOKENS:
        return None
    return ApiHead(method, parsed.headers, length, "close" in tokens)


def api_response(status: int, body: bytes, date: str, close: bool) -> bytes:
    """A complete response with the headers Tornado's ``ApiHandler`` sends."""
    reason = http.client.responses.get(status, "Unknown")
    connection = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nDate: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
        status, reason.encode(), date.encode(), connection, len(body), body,
    )


class HttpDate:
    """The ``Date`` header's value, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def at(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._text = second, email.utils.formatdate(second, usegmt=True)
        return self._text
