"""Origin checks against cross-site WebSocket hijacking: same origin by default."""

from __future__ import annotations

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest

from handlers.origins import normalize, origin_allowed
from tests.helpers.wsclient import RawClient


def request(ws_url: str, origin: str | None) -> HTTPRequest:
    headers = {"Origin": origin} if origin is not None else {}
    return HTTPRequest(ws_url, headers=headers)


@pytest.mark.gen_test
async def test_foreign_origin_refused_403(ws_url: str) -> None:
    """A page from another site gets HTTP 403 at the handshake (default: same origin only)."""
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(request(ws_url, "https://evil.example"))  # type: ignore[arg-type]
    assert e.value.code == 403


@pytest.mark.gen_test
async def test_same_origin_accepted(ws_url: str, http_port: int) -> None:
    """A page served by this host and port may connect."""
    c = await RawClient.open(request(ws_url, f"http://127.0.0.1:{http_port}"))  # type: ignore[arg-type]
    r = await c.call("connect", {})
    assert "connect" in r
    c.close()


@pytest.mark.gen_test
async def test_same_host_other_port_refused(ws_url: str, http_port: int) -> None:
    """Another port on the same host is another origin."""
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(request(ws_url, f"http://127.0.0.1:{http_port + 1}"))  # type: ignore[arg-type]
    assert e.value.code == 403


@pytest.mark.gen_test
async def test_null_origin_refused(ws_url: str) -> None:
    """'null' (sandboxed iframes, file:// pages) is not our origin."""
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(request(ws_url, "null"))  # type: ignore[arg-type]
    assert e.value.code == 403


@pytest.mark.gen_test
async def test_no_origin_accepted(ws_url: str) -> None:
    """Non-browser clients send no Origin and carry no cookies: accepted."""
    c = await RawClient.open(request(ws_url, None))  # type: ignore[arg-type]
    assert "connect" in await c.call("connect", {})
    c.close()


@pytest.mark.parametrize(
    "origin,host,allowed,ok",
    [
        ("https://example.com", "example.com", (), True),
        ("https://example.com:443", "example.com", (), True),  # default port
        ("https://Example.COM", "example.com:443", (), True),
        ("http://example.com:8000", "example.com:8000", (), True),
        ("https://example.com.evil.net", "example.com", (), False),
        ("https://evil.net", "example.com", (), False),
        ("https://app.example.com", "x", ("https://*.example.com",), True),
        ("https://a.b.example.com", "x", ("https://*.example.com",), True),
        ("https://example.com", "x", ("https://*.example.com",), False),
        ("http://app.example.com", "x", ("https://*.example.com",), False),  # scheme is part of it
        ("https://app.example.com:8443", "x", ("https://*.example.com",), False),  # '*' stops at ':'
        ("https://evil.com/.example.com", "x", ("https://*.example.com",), False),  # not an origin
        ("https://evilexample.com", "x", ("https://*.example.com",), False),
        ("https://anything.net", "x", ("*",), True),
        ("https://user@example.com", "example.com", (), False),
        ("javascript:alert(1)", "example.com", (), False),
        ("", "example.com", (), True),  # absent
    ],
)
def test_origin_rules(origin: str, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    """Same-origin default, wildcard patterns that never cross ':' or '/', and garbage refused."""
    assert origin_allowed(origin, host, allowed) is ok


def test_normalize() -> None:
    """Origins are lowercased with the default port dropped; non-origins give None."""
    assert normalize("HTTPS://Example.com:443/") == "https://example.com"
    assert normalize("http://[::1]:8000") == "http://[::1]:8000"
    assert normalize("null") is None
    assert normalize("https://x.com/path") is None
