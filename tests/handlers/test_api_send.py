"""The server API's send: a message push to a user's or one client's connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handlers.auth import make_token
from tests.handlers.test_api_connections import KEY, SECRET, api_url, raw_api, squall_config  # noqa: F401
from tests.helpers.wsclient import connected


@pytest.mark.gen_test
async def test_send_reaches_the_user_or_one_client(http_server, ws_url, api_url):  # noqa: F811
    """send with user pushes {"message": {"data"}} to each of its connections; with client to that one only."""
    a1 = await connected(ws_url, token=make_token(SECRET, "alice"))
    a2 = await connected(ws_url, token=make_token(SECRET, "alice"))
    bob = await connected(ws_url, token=make_token(SECRET, "bob"))
    assert await raw_api(api_url, "send", {"user": "alice", "data": {"hi": 1}}) == {"result": {}}
    for c in (a1, a2):
        assert (await c.next_push())["push"] == {"message": {"data": {"hi": 1}}}
    client_id = a2.last_connect["connect"]["client"]
    assert await raw_api(api_url, "send", {"client": client_id, "data": "only you"}) == {"result": {}}
    assert (await a2.next_push())["push"] == {"message": {"data": "only you"}}
    for c in (a1, bob):
        with pytest.raises(asyncio.TimeoutError):
            await c.next_push(timeout=0.3)


@pytest.mark.gen_test
async def test_send_refuses_bad_params(http_server, api_url):  # noqa: F811
    """No user or client, or no data: error 107 saying which."""
    out: Any = await raw_api(api_url, "send", {"data": 1})
    assert out["error"]["code"] == 107 and "user or client" in out["error"]["message"]
    out = await raw_api(api_url, "send", {"user": "u"})
    assert out["error"]["code"] == 107 and "data" in out["error"]["message"]
