"""The server side of the RFC 6455 opening handshake, as pure functions.

Tornado has parsed the request (or :func:`parse_head` has, for the front
door); these checks are the ones Tornado's ``WebSocketHandler.get`` makes
(Upgrade, Connection, key, version 13), so the lean path refuses exactly what
the stock path refuses, and the 101 response is written by hand once the
socket is taken over. Headers are looked up by lower-case name, which both
Tornado's ``HTTPHeaders`` and :func:`parse_head`'s dict answer.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from tornado.netutil import is_valid_ip

from handlers.wsframe import accept_key


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


# header lines, each ending in CRLF: an RFC 9110 token, a colon, a value of
# visible characters, spaces and tabs (no control character: no bare CR or LF)
_HEADER_LINES = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")


@dataclass(frozen=True, slots=True)
class Head:
    """A request head :func:`parse_head` could read: path, query, headers by lower-case name."""

    path: str
    query: str
    headers: dict[str, str]


def parse_head(head: bytes, method: str = "GET") -> Head | None:
    """The ``<method> ... HTTP/1.1`` head (without its blank line) as a :class:`Head`,
    or None for anything less plain: another method or version, a folded or
    repeated header, a name that is not an RFC 9110 token, a line with no
    colon, a control character in a value. None sends the request to
    Tornado, which then answers it as it always did; the front door opens
    only heads read here.

    Why not Tornado's ``HTTPHeaders.parse``: it was ~5% of the server's CPU
    per connect (a normalized, multi-valued header object per request).
    """
    text = head.decode("latin-1")
    line, _, rest = text.partition("\r\n")
    verb, _, target = line.partition(" ")
    target, _, version = target.partition(" ")
    if verb != method or version != "HTTP/1.1" or not target.startswith("/") or " " in target:
        return None
    rest += "\r\n"
    if _HEADER_LINES.fullmatch(rest) is None:  # one pass in C over every line
        return None
    lines = rest.split("\r\n")
    lines.pop()  # the empty string after the last CRLF
    headers: dict[str, str] = {}
    for h in lines:
        name, _, value = h.partition(":")
        headers[name.lower()] = value.strip(" \t")
    if len(headers) != len(lines):  # a repeated name
        return None
    path, _, query = target.partition("?")
    return Head(path, query, headers)


def check_upgrade(headers: Mapping[str, str]) -> Refusal | None:
    """None when the request is a valid WebSocket version 13 upgrade."""
    if headers.get("upgrade", "").lower() != "websocket":
        return Refusal(400, 'Can "Upgrade" only to "WebSocket".')
    connection = headers.get("connection", "").lower()
    if connection != "upgrade" and "upgrade" not in (s.strip() for s in connection.split(",")):
        return Refusal(400, '"Connection" must be "Upgrade".')
    if headers.get("sec-websocket-version", "") != "13":
        return Refusal(426, "Upgrade Required", (("Sec-WebSocket-Version", "13"),))
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except (ValueError, binascii.Error):
        return Refusal(400, "Missing/Invalid WebSocket headers")
    return None


def upgrade_refusal(headers: Mapping[str, str], check_origin: Callable[[str], bool]) -> Refusal | None:
    """Every check of a WebSocket upgrade but the connection rate, in the
    handler's order; None when the lean path may open it."""
    refusal = check_upgrade(headers)
    if refusal is None and cross_origin_refusal(headers, check_origin) is not None:
        refusal = Refusal(403, "Cross origin websockets not allowed")
    return refusal


def switching_protocols(key: str, subprotocol: str | None = None) -> bytes:
    """The complete 101 response for a checked request's key, answering
    ``subprotocol`` (one the client offered) when given."""
    chosen = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"{chosen}"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode("ascii")


def offered_subprotocols(headers: Mapping[str, str]) -> list[str]:
    """The Sec-WebSocket-Protocol values offered, as Tornado reads them for ``select_subprotocol``."""
    header = headers.get("sec-websocket-protocol", "")
    return [s.strip() for s in header.split(",") if s.strip()]


def cross_origin_refusal(headers: Mapping[str, str], check: Callable[[str], bool]) -> str | None:
    """Why a browser's cross-origin upgrade is refused, or None: Tornado 6.6's
    algorithm (``RequestHandler._check_cross_origin``), so both paths agree."""
    site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if site in ("same-origin", "none"):
        return None
    if site is None:
        if origin is None:
            return None  # not a browser
        if urlsplit(origin).netloc.lower() == headers.get("host", "").lower() or check(origin):
            return None
        return f"Origin {origin!r} not allowed"
    if origin and check(origin):
        return None
    return f"Sec-Fetch-Site {site} & origin {origin!r} not allowed"


def client_ip(headers: Mapping[str, str], peer: str) -> str:
    """The client's address as Tornado's ``HTTPServer(xheaders=True)`` sets
    ``request.remote_ip``: X-Real-Ip, else the last X-Forwarded-For entry,
    when valid; else the peer's address."""
    real, forwarded = headers.get("x-real-ip"), headers.get("x-forwarded-for")
    if real is not None:
        ip = real
    elif forwarded is not None:
        ip = forwarded.split(",")[-1].strip()
    else:
        return peer
    return ip if is_valid_ip(ip) else peer


def query_format(query: str) -> str | None:
    """The format a query string asks for, as Centrifugo reads it: ``format``,
    else ``cf_protocol`` (the last value, as ``get_query_argument``); None if neither."""
    if not query:
        return None
    args = parse_qs(query, keep_blank_values=True)
    for name in ("format", "cf_protocol"):
        values = args.get(name)
        if values:
            return values[-1].strip()
    return None
