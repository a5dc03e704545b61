"""Each per-connection limit crossed, with its documented code."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.auth import make_token
from server.app import Squall
from tests.helpers.squall_process import test_config
from tests.helpers.waiting import until
from tests.helpers.wsclient import RawClient, connected

SECRET = "limits-secret-0123456789-abcdefgh"


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(
        token_hmac_secret_key=SECRET,
        client_channel_limit=3,
        client_user_connection_limit=2,
        client_ip_connection_limit=6,
        channel_max_length=32,
        presence_max_clients=2,
        history_max_limit=5,
        client_stale_timeout=2.0,  # long enough that a loaded machine never turns 3504 into 3502
    )


def code(reply: dict[str, Any]) -> int:
    return int(reply["error"]["code"]) if "error" in reply else 0


@pytest.mark.gen_test
async def test_channel_limit_106(ws_url: str) -> None:
    """Subscribing past client_channel_limit gets 106 and no subscription."""
    c = await connected(ws_url)
    for i in range(3):
        assert code(await c.call("subscribe", {"channel": f"chat:{i}"})) == 0
    assert code(await c.call("subscribe", {"channel": "chat:3"})) == 106
    assert code(await c.call("unsubscribe", {"channel": "chat:0"})) == 0
    assert code(await c.call("subscribe", {"channel": "chat:3"})) == 0
    c.close()


@pytest.mark.gen_test
async def test_user_connection_limit_3504(ws_url: str) -> None:
    """A user's third connection is closed with 3504; the first two stay."""
    token = make_token(SECRET, "alice")
    a = await connected(ws_url, token=token)
    b = await connected(ws_url, token=token)
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": token}})
    got, _ = await c.wait_closed()
    assert got == 3504
    assert code(await a.call("ping", {})) == 0 and code(await b.call("ping", {})) == 0
    a.close()
    b.close()


@pytest.mark.gen_test
async def test_ip_connection_limit_3504(ws_url: str, squall_app: Squall) -> None:
    """The seventh socket from one address is closed with 3504; closing one frees a slot."""
    clients = [await connected(ws_url) for _ in range(6)]
    extra = await RawClient.open(ws_url)
    got, _ = await extra.wait_closed()
    assert got == 3504
    clients.pop().close()
    await until(lambda: squall_app.ctx.limiter.total < 6)
    again = await connected(ws_url)
    again.close()
    for c in clients:
        c.close()


@pytest.mark.parametrize(
    "channel",
    ["chat:" + "x" * 28, "chat:héllo", "chat:a b", "chat:tab\there", "chat:nul\x00"],
    ids=["too-long", "non-ascii", "space", "tab", "nul"],
)
@pytest.mark.gen_test
async def test_channel_name_length_and_characters_107(ws_url: str, channel: str) -> None:
    """Names over channel_max_length or with characters outside printable ASCII get 107."""
    c = await connected(ws_url)
    assert code(await c.call("subscribe", {"channel": channel})) == 107
    assert code(await c.call("publish", {"channel": channel, "data": 1})) == 107
    assert code(await c.call("subscribe", {"channel": "chat:" + "x" * 27})) == 0  # exactly 32
    c.close()


@pytest.mark.gen_test
async def test_presence_size_106(ws_url: str) -> None:
    """Presence of a channel with more clients than presence_max_clients is 106; stats still work."""
    clients = [await connected(ws_url) for _ in range(3)]
    for c in clients:
        await c.call("subscribe", {"channel": "chat:crowd"})
    assert code(await clients[0].call("presence", {"channel": "chat:crowd"})) == 106
    r = await clients[0].call("presence_stats", {"channel": "chat:crowd"})
    assert r["presence_stats"]["num_clients"] == 3
    for c in clients:
        c.close()


@pytest.mark.gen_test
async def test_history_limit_106(ws_url: str) -> None:
    """A history request over history_max_limit is 106; at the limit it is served."""
    c = await connected(ws_url)
    await c.call("subscribe", {"channel": "chat:h"})
    assert code(await c.call("history", {"channel": "chat:h", "limit": 6})) == 106
    assert code(await c.call("history", {"channel": "chat:h", "limit": 5})) == 0
    c.close()


@pytest.mark.gen_test
async def test_stale_socket_without_connect_3502(ws_url: str, squall_app: Squall) -> None:
    """A socket that never sends connect is closed with 3502 and frees its slot."""
    c = await RawClient.open(ws_url)
    got, _ = await c.wait_closed()
    assert got == 3502
    await until(lambda: squall_app.ctx.limiter.total == 0)


@pytest.mark.gen_test
async def test_too_many_commands_in_one_frame_3501(ws_url: str) -> None:
    """More than 100 commands in one frame is a protocol error (3501)."""
    c = await connected(ws_url)
    frame = "\n".join('{"id":%d,"ping":{}}' % i for i in range(10, 112))
    await c.send_raw(frame)
    got, _ = await c.wait_closed()
    assert got == 3501

