"""Configured allowed_origins patterns over a live handshake."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(allowed_origins=["https://*.example.com", "https://chat.example.org"])


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://chat.example.org"])
@pytest.mark.gen_test
async def test_configured_origins_accepted(ws_url: str, origin: str) -> None:
    """Origins matching a configured pattern connect."""
    c = await RawClient.open(HTTPRequest(ws_url, headers={"Origin": origin}))  # type: ignore[arg-type]
    assert "connect" in await c.call("connect", {})
    c.close()


@pytest.mark.parametrize("origin", ["https://example.org", "http://app.example.com", "https://evil.net"])
@pytest.mark.gen_test
async def test_other_origins_refused(ws_url: str, origin: str) -> None:
    """Origins matching no pattern get 403."""
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(HTTPRequest(ws_url, headers={"Origin": origin}))  # type: ignore[arg-type]
    assert e.value.code == 403


@pytest.mark.gen_test
async def test_same_origin_accepted_though_not_listed(ws_url: str, http_port: int) -> None:
    """An Origin equal to the Host connects even when no pattern lists it (Tornado's same-origin rule)."""
    origin = f"http://127.0.0.1:{http_port}"
    c = await RawClient.open(HTTPRequest(ws_url, headers={"Origin": origin}))  # type: ignore[arg-type]
    assert "connect" in await c.call("connect", {})
    c.close()


@pytest.mark.gen_test
async def test_same_origin_sse_accepted_though_not_listed(http_port: int, http_server: Any) -> None:
    """SSE follows the WebSocket's rule: same origin is accepted, an unlisted other origin gets 403."""
    client = AsyncHTTPClient()
    url = f"http://127.0.0.1:{http_port}/connection/uni_sse?cf_connect=%7B%7D"
    ok = await client.fetch(url, method="OPTIONS", headers={"Origin": f"http://127.0.0.1:{http_port}"}, raise_error=False)
    assert ok.code == 204
    refused = await client.fetch(url, method="OPTIONS", headers={"Origin": "https://evil.net"}, raise_error=False)
    assert refused.code == 403
