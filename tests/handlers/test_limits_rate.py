"""Rate limits: commands per connection (111, then 3013) and new connections (HTTP 503)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected


@pytest.fixture
def squall_config() -> dict[str, Any]:
    # one new connection per 20 s (burst 1): each test's single connection fits, and no refill can
    # land inside a test, however slow the machine
    return test_config(client_command_rate_limit=0.5, client_command_burst=5, client_connection_rate_limit=0.05)


@pytest.mark.gen_test
async def test_command_rate_111_then_3013(ws_url: str) -> None:
    """Past the bucket, commands get 111 (temporary); 50 refusals in a row end the connection with 3013."""
    c = await connected(ws_url)  # the connect took one token
    frame = "\n".join('{"id":%d,"ping":{}}' % i for i in range(10, 70))
    await c.send_raw(frame)
    replies = []
    while True:
        r = await c.read()
        if r is None:
            break
        replies.append(r)
    errors = [r["error"] for r in replies if "error" in r]
    assert sum(1 for r in replies if "ping" in r) == 4
    assert len(errors) == 50 and all(e["code"] == 111 and e["temporary"] for e in errors)
    assert c.close_code == 3013


@pytest.mark.gen_test
async def test_command_rate_recovers_after_a_pause(ws_url: str) -> None:
    """A client that hits 111 and slows down is served again."""
    c = await connected(ws_url)
    codes = []
    for _ in range(8):
        r = await c.call("ping", {})
        codes.append(r.get("error", {}).get("code", 0))
    assert 111 in codes
    await asyncio.sleep(2.2)  # one token refills
    r = await c.call("ping", {})
    assert "error" not in r
    c.close()


@pytest.mark.gen_test
async def test_new_connection_rate_503_with_retry_after(ws_url: str, http_port: int) -> None:
    """Past client_connection_rate_limit new handshakes get HTTP 503 with Retry-After, before the upgrade."""
    opened = [await RawClient.open(ws_url)]
    with pytest.raises(HTTPClientError) as e:
        await RawClient.open(ws_url)
    assert e.value.code == 503
    # the same refusal seen as a plain HTTP request: Retry-After is set
    with pytest.raises(HTTPClientError) as e2:
        await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/connection/websocket")
    assert e2.value.code == 503
    assert e2.value.response is not None
    assert int(e2.value.response.headers["Retry-After"]) >= 1
    for c in opened:
        c.close()
