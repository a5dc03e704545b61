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
import re
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


# the Content-Length line in the casings clients send; a head with any other
# casing is simply read in full every time
_LENGTH = re.compile(rb"\r\n[Cc]ontent-[Ll]ength:[ \t]*([0-9]+)[ \t]*(?=\r\n|\Z)")


class HeadReader:
    """:func:`read_api_head` for one connection, remembering the last head read.

    Why: a backend's requests on one connection usually differ only in
    ``Content-Length``, and reading the rest again was most of the lean
    path's parsing cost. A head equal to the last one but for the digits of
    that line is the same request shape: the last head read had exactly one
    ``Content-Length`` line (a repeated one is refused), so the digits stand
    at the same place, and any digits are a valid value. Its length is
    checked against the limit again.
    """

    __slots__ = ("_max_body", "_key", "_last")

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._key = b""
        self._last: ApiHead | None = None

    def read(self, head: bytes) -> ApiHead | None:
        m = _LENGTH.search(head)
        if m is None:
            return read_api_head(head, self._max_body)
        key = head[: m.start(1)] + head[m.end(1) :]
        last = self._last
        if last is not None and key == self._key:
            digits = m.group(1)
            length = int(digits)
            if length > self._max_body:
                return None
            headers = last.headers.copy()  # a copy in C, the one header that differs set
            headers["content-length"] = digits.decode()
            return ApiHead(last.method, headers, length, last.close)
        parsed = read_api_head(head, self._max_body)
        if parsed is not None:
            self._key, self._last = key, parsed
        return parsed


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
