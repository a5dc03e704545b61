"""Configured allowed_origins patterns over a live handshake."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest

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
async def test_other_origins_refused(ws_url: str, origin: str, http_port: int) -> None:
    """Origins matching no pattern get 403; with patterns set, even same-origin must be listed."""
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(HTTPRequest(ws_url, headers={"Origin": origin}))  # type: ignore[arg-type]
    assert e.value.code == 403
