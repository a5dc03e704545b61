"""The server API's connection controls through `cent`: disconnect with a whitelist, refresh with expire_at and info."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from cent import AsyncClient, DisconnectRequest, PresenceRequest, RefreshRequest
from cent.dto import Disconnect as CentDisconnect
from tornado.httpclient import AsyncHTTPClient

from handlers.auth import make_token
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected

KEY = "test-api-key"
SECRET = "test-secret-long-enough-for-hs256-keys!"


@pytest.fixture
def squall_config() -> dict[str, Any]:
    # no grace after exp, so an unextended connection ends right at its token's exp
    return test_config(api_key=KEY, token_hmac_secret_key=SECRET, client_expired_close_delay=0)


@pytest.fixture
def api_url(http_server: Any, http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}/api"


def cent(api_url: str) -> AsyncClient:
    return AsyncClient(api_url, KEY, timeout=5)


async def user(ws_url: str, name: str, ttl: int | None = None) -> RawClient:
    return await connected(ws_url, token=make_token(SECRET, name, ttl=ttl))


async def raw_api(api_url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One API call as plain HTTP: for values `cent` would refuse to send."""
    r = await AsyncHTTPClient().fetch(f"{api_url}/{method}", method="POST", body=orjson.dumps(params),
                                      headers={"X-API-Key": KEY}, raise_error=False)
    out: dict[str, Any] = orjson.loads(r.body)
    return out


async def refresh_push(c: RawClient) -> dict[str, Any]:
    push = (await c.next_push(5))["push"]
    assert set(push) == {"refresh"}, push  # a push about the connection: no channel
    return push["refresh"]


async def alive(c: RawClient) -> bool:
    """The connection still answers a command."""
    try:
        return "error" not in await c.call("presence_stats", {"channel": "chat:alive"}, timeout=2)
    except Exception:
        return False


@pytest.mark.gen_test
async def test_disconnect_whitelist_keeps_the_listed_connections(api_url, ws_url):
    """Of a user's three connections, the two whitelisted stay; the third closes with the code given."""
    conns = [await user(ws_url, "gina") for _ in range(3)]
    keep = [c.last_connect["connect"]["client"] for c in conns[:2]]
    async with cent(api_url) as api:
        await api.disconnect(DisconnectRequest(user="gina", whitelist=keep,
                                               disconnect=CentDisconnect(code=4003, reason="others out")))
    assert await conns[2].wait_closed() == (4003, "others out")
    assert await alive(conns[0]) and await alive(conns[1])
    for c in conns[:2]:
        c.close()


@pytest.mark.gen_test
async def test_disconnect_whitelist_must_be_client_ids(api_url, ws_url):
    """A whitelist that is not a list of strings is a bad request (107), and nobody is disconnected."""
    c = await user(ws_url, "gina")
    for whitelist in ("abc", [1, 2]):
        r = await raw_api(api_url, "disconnect", {"user": "gina", "whitelist": whitelist})
        assert r["error"]["code"] == 107
    assert await alive(c)
    c.close()


@pytest.mark.gen_test(timeout=20)
async def test_refresh_extends_or_stops_expiry(api_url, ws_url):
    """Three connections whose tokens expire in 2 s: refreshed with expire_at, one outlives the token and hears
    its new ttl; refreshed without, one never expires (as in Centrifugo); the untouched one ends with 3005."""
    extended, unbounded, untouched = [await user(ws_url, name, ttl=2) for name in ("hank", "ivy", "lou")]
    assert extended.last_connect["connect"]["expires"] is True
    async with cent(api_url) as api:
        await api.refresh(RefreshRequest(user="hank", expire_at=int(time.time()) + 120))
        await api.refresh(RefreshRequest(user="ivy"))
    r = await refresh_push(extended)
    assert r["expires"] is True and 115 <= r["ttl"] <= 120
    assert await refresh_push(unbounded) == {}  # expires: false is left out, as every false field
    code, _ = await untouched.wait_closed(timeout=6)  # the close delay is 0
    assert code == 3005
    await asyncio.sleep(1.0)  # all three tokens are now past their exp
    assert await alive(extended) and await alive(unbounded)
    extended.close()
    unbounded.close()


@pytest.mark.gen_test
async def test_refresh_expire_at_in_the_past_ends_it_3005(api_url, ws_url):
    """An expire_at already past ends the connection as expired (3005), as expired=true does."""
    c = await user(ws_url, "jack", ttl=600)
    async with cent(api_url) as api:
        await api.refresh(RefreshRequest(user="jack", expire_at=int(time.time()) - 5))
    code, _ = await c.wait_closed()
    assert code == 3005


@pytest.mark.gen_test
async def test_refresh_info_is_what_presence_shows(api_url, ws_url):
    """refresh with info replaces the connection info others see in presence."""
    c = await user(ws_url, "kim")
    await c.call("subscribe", {"channel": "chat:info"})
    r = await raw_api(api_url, "refresh", {"user": "kim", "expire_at": int(time.time()) + 60, "info": {"status": "away"}})
    assert r == {"result": {}}  # cent has no info field: plain HTTP
    await refresh_push(c)
    async with cent(api_url) as api:
        p = await api.presence(PresenceRequest(channel="chat:info"))
    assert [i.conn_info for i in p.presence.values()] == [{"status": "away"}]
    c.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("params", [{"user": "x", "expire_at": "soon"}, {"user": "x", "expire_at": True},
                                    {"user": "x", "expire_at": -1}, {"user": "x", "expired": "yes"}])
async def test_refresh_refuses_bad_values(api_url, params):
    """expire_at must be a non-negative integer and expired a boolean: anything else is 107."""
    r = await raw_api(api_url, "refresh", params)
    assert r["error"]["code"] == 107
