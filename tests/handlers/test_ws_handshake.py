"""parse_head: the front door reads only plain upgrade heads; anything else is Tornado's."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from handlers.ws_handshake import check_upgrade, client_ip, cross_origin_refusal, parse_head

PLAIN = (
    b"GET /connection/websocket?format=protobuf HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version:13\r\n"
    b"X-Forwarded-For: 10.0.0.1, 10.0.0.2 \t"
)


def test_plain_head_is_read() -> None:
    """Path, query and headers by lower-case name, values stripped of spaces and tabs."""
    head = parse_head(PLAIN)
    assert head is not None
    assert (head.path, head.query) == ("/connection/websocket", "format=protobuf")
    assert head.headers["sec-websocket-version"] == "13"
    assert head.headers["x-forwarded-for"] == "10.0.0.1, 10.0.0.2"
    assert check_upgrade(head.headers) is None
    assert client_ip(head.headers, "127.0.0.1") == "10.0.0.2"


def test_checks_agree_with_tornados_headers() -> None:
    """The same checks give the same answers on Tornado's HTTPHeaders and on parse_head's dict."""
    text = PLAIN.decode("latin-1").partition("\r\n")[2]
    for origin in ("", "\r\nOrigin: http://evil.example", "\r\nOrigin: http://127.0.0.1:8000"):
        ours = parse_head(PLAIN + origin.encode())
        assert ours is not None
        tornados = HTTPHeaders.parse(text + origin)
        assert cross_origin_refusal(ours.headers, lambda o: False) == cross_origin_refusal(tornados, lambda o: False)
        assert check_upgrade(ours.headers) == check_upgrade(tornados)
        assert client_ip(ours.headers, "1.2.3.4") == client_ip(tornados, "1.2.3.4")


@pytest.mark.parametrize(
    "head",
    [
        PLAIN.replace(b"GET ", b"POST "),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.1 extra"),
        PLAIN.replace(b"GET /", b"GET http://x/"),
        PLAIN + b"\r\n  folded continuation",
        PLAIN + b"\r\nupgrade: websocket",
        PLAIN + b"\r\nBad Name: x",
        PLAIN + b"\r\nno-colon",
        PLAIN + b"\r\n: empty name",
        PLAIN + b"\r\nX-Bad: a\x00b",
        PLAIN + b"\r\nX-Bad: a\nInjected: b",
    ],
    ids=["method", "version", "start-line", "absolute-form", "folded", "repeated", "name-space", "no-colon",
         "empty-name", "nul", "bare-lf"],
)
def test_anything_less_plain_is_left_to_tornado(head: bytes) -> None:
    """Heads the door does not read exactly as Tornado would are None: Tornado answers them."""
    assert parse_head(head) is None
