"""The lean API path's request heads and responses, bytes in and bytes out."""

from __future__ import annotations

import pytest

from handlers import api_head
from handlers.api_head import HeadReader, HttpDate, api_response, read_api_head

MAX = 1000


def head(target: str = "/api/publish", *lines: str, method: str = "POST", version: str = "HTTP/1.1") -> bytes:
    fields = lines or ("Host: x", "Content-Length: 2")
    return f"{method} {target} {version}\r\n".encode() + "\r\n".join(fields).encode() + b"\r\n"


def without_blank(raw: bytes) -> bytes:
    return raw[:-2]  # read_api_head takes the head without its final CRLF pair


@pytest.mark.parametrize(
    "target,method",
    [("/api", ""), ("/api/", ""), ("/api/publish", "publish"), ("/api/publish/", "publish"), ("/api/x?y=1", "x")],
)
def test_paths_tornado_routes_to_the_api(target: str, method: str) -> None:
    """Every path form the API routes match is read, with the method the route would pass."""
    got = read_api_head(without_blank(head(target)), MAX)
    assert got is not None and got.method == method and got.length == 2 and not got.close


@pytest.mark.parametrize(
    "raw",
    [
        head(method="GET"),
        head(version="HTTP/1.0"),
        head("/api//"),
        head("/api/a/b"),
        head("/apix"),
        head("/api/pub%6Cish"),
        head("/health"),
        head("/api/publish", "Host: x", "Transfer-Encoding: chunked"),
        head("/api/publish", "Host: x", "Content-Length: 2", "Transfer-Encoding: chunked"),
        head("/api/publish", "Host: x", "Content-Length: 2", "Expect: 100-continue"),
        head("/api/publish", "Host: x", "Content-Length: 2", "Content-Length: 5"),
        head("/api/publish", "Host: x"),
        head("/api/publish", "Host: x", "Content-Length: -1"),
        head("/api/publish", "Host: x", "Content-Length: 0x10"),
        head("/api/publish", "Host: x", "Content-Length: \u0661"),
        head("/api/publish", "Host: x", f"Content-Length: {MAX + 1}"),
        head("/api/publish", "Host: x", "Content-Length: 2", "Connection: upgrade"),
        head("/api/publish", "Host: x", "Content-Length: 2", " folded"),
        head("/api/publish", "Host: x", "Content-Length: 2", "Bad Name: v"),
    ],
    ids=[
        "get", "http10", "empty-method", "two-segments", "prefix-only", "escaped", "other-path", "chunked",
        "chunked-and-length", "expect", "two-lengths", "no-length", "negative", "hex", "non-ascii-digit",
        "too-long", "connection-upgrade", "folded", "non-token-name",
    ],
)
def test_anything_less_plain_is_left_to_tornado(raw: bytes) -> None:
    """A head the lean path might read differently from Tornado is not read at all."""
    assert read_api_head(without_blank(raw), MAX) is None


def test_connection_close_and_the_limit_itself() -> None:
    """``Connection: close`` is noted (any case, in a list); a body exactly at the limit is read."""
    got = read_api_head(without_blank(head("/api", "Host: x", f"Content-Length: {MAX}", "Connection: Keep-Alive, CLOSE")), MAX)
    assert got is not None and got.close and got.length == MAX
    assert got.headers["host"] == "x"


def test_response_bytes() -> None:
    """Status line, Tornado's headers for the API, the length and the body, keep-alive or closing."""
    out = api_response(401, b'{"a":1}', "Wed, 02 Dec 2026 21:00:00 GMT", close=False)
    assert out == (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
        b"Date: Wed, 02 Dec 2026 21:00:00 GMT\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
    )
    closing = api_response(200, b"{}", "D", close=True)
    assert b"\r\nConnection: close\r\n" in closing and closing.startswith(b"HTTP/1.1 200 OK\r\n")


def test_date_is_formatted_per_second() -> None:
    """The same second gives the same text; the next second a new one, in HTTP's format."""
    d = HttpDate()
    assert d.at(0.2) == d.at(0.9) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert d.at(1.0) == "Thu, 01 Jan 1970 00:00:01 GMT"


def test_a_connection_reads_a_repeated_head_shape_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heads that differ only in Content-Length reuse the last read; the length is each one's own."""
    calls: list[bytes] = []
    monkeypatch.setattr(api_head, "read_api_head", lambda raw, limit: calls.append(raw) or read_api_head(raw, limit))
    reader = HeadReader(MAX)
    first = reader.read(without_blank(head("/api/publish", "Host: x", "Content-Length: 12")))
    again = reader.read(without_blank(head("/api/publish", "Host: x", "Content-Length: 345")))
    assert first is not None and again is not None
    assert (again.method, again.length, again.close) == ("publish", 345, False)
    assert again.headers == {**first.headers, "content-length": "345"}
    assert first.length == 12 and len(calls) == 1


def test_a_remembered_shape_still_checks_the_limit() -> None:
    """A reused head over the body limit is refused, as read_api_head refuses it."""
    reader = HeadReader(MAX)
    assert reader.read(without_blank(head("/api", "Host: x", "Content-Length: 2"))) is not None
    assert reader.read(without_blank(head("/api", "Host: x", f"Content-Length: {MAX + 1}"))) is None
    assert reader.read(without_blank(head("/api", "Host: x", f"Content-Length: {MAX}"))) is not None


@pytest.mark.parametrize(
    "second",
    [
        head("/api/broadcast", "Host: x", "Content-Length: 7"),  # another method
        head("/api/publish", "Host: x", "Content-Length: 7", "Connection: close"),
        head("/api/publish", "Host: x", "Content-Length: 7", "Content-Length: 7"),  # repeated: refused
        head("/api/publish", "Host: x", "Content-Length: 7", "Transfer-Encoding: chunked"),
        head("/api/publish", "Host: y", "Content-Length: 7 7"),
        head("/api/publish", "Host: x", "Content-Length: 07", "X: 1"),
        head("/api/publish", "Host: x", "content-length: 7"),
        head("/api/publish", "Content-Length: 7", "Host: x"),
        head("/api/publish", "Host: x", "Content-Length:7"),
        head("/api/publish", "Host: x", "Content-Length: ٧"),  # a non-ASCII digit
    ],
)
def test_any_other_difference_reads_the_head_in_full(second: bytes) -> None:
    """After a remembered head, any head that is not the same shape gets read_api_head's own answer."""
    reader = HeadReader(MAX)
    assert reader.read(without_blank(head("/api/publish", "Host: x", "Content-Length: 12"))) is not None
    assert reader.read(without_blank(second)) == read_api_head(without_blank(second), MAX)


def test_reader_agrees_with_read_api_head_on_every_sequence() -> None:
    """Over a run of mixed heads, some refused, the reader answers exactly what read_api_head answers."""
    shapes = [
        ("/api/publish", "Host: x", "Content-Length: {n}"),
        ("/api/publish", "Host: x", "Content-Length: {n}", "Connection: close"),
        ("/api/publish", "Host: x", "Content-Length: {n}", "Expect: 100-continue"),
        ("/api/publish", "Host: x", "Content-Length: {n}", "Content-Length: {n}"),
        ("/api", "Content-Length: {n}", "X-API-Key: k"),
        ("/api/a/b", "Host: x", "Content-Length: {n}"),
    ]
    reader = HeadReader(MAX)
    for i in range(600):
        target, *lines = shapes[(i * 7 + i // 5) % len(shapes)]
        n = (i * 37) % (MAX + 50)
        raw = without_blank(head(target, *(line.format(n=n) for line in lines)))
        assert reader.read(raw) == read_api_head(raw, MAX), raw
