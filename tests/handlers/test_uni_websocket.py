"""Unidirectional WebSocket at /connection/uni_websocket (Centrifugo's uni_websocket)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
from tornado.websocket import websocket_connect

from channels.errors import FORCE_NO_RECONNECT
from tests.handlers.test_sse import wait_clients


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


def url(port: int, query: str = "") -> str:
    return f"ws://127.0.0.1:{port}/connection/uni_websocket{query}"


async def read(ws: Any) -> Any:
    while True:
        msg = await ws.read_message()
        if msg is None:
            return None
        obj = orjson.loads(msg)
        if obj != {}:  # pings
            return obj


@pytest.mark.gen_test
async def test_connect_in_first_frame_then_unwrapped_pushes(http_server, http_port, hub):
    """The first frame is the connect request; the connect message comes first, then pushes without wrapper."""
    ws = await websocket_connect(url(http_port))
    await ws.write_message(orjson.dumps({"subs": {"chat:u": {}}}).decode())
    connect = (await read(ws))["connect"]
    assert connect["client"] and "chat:u" in connect["subs"]
    await hub.publish("chat:u", {"a": 1})
    msg = await read(ws)
    assert msg["channel"] == "chat:u" and msg["pub"]["data"] == {"a": 1} and msg["pub"]["offset"] == 1
    await ws.write_message("ignored")  # later frames are read and ignored, as Centrifugo
    await hub.publish("chat:u", 2)
    assert (await read(ws))["pub"]["data"] == 2
    ws.close()
    await wait_clients(hub, 0)


@pytest.mark.gen_test
async def test_connect_in_query_and_server_disconnect(http_server, http_port, hub, squall_app):
    """cf_connect works too; a server-side disconnect is the close frame's code and reason."""
    ws = await websocket_connect(url(http_port, "?cf_connect=" + quote(orjson.dumps({}).decode())))
    client = (await read(ws))["connect"]["client"]
    hub.client(client).disconnect(FORCE_NO_RECONNECT)
    assert await read(ws) is None
    assert (ws.close_code, ws.close_reason) == (3503, "force disconnect")
    await wait_clients(hub, 0)


@pytest.mark.gen_test
async def test_bad_first_frames_close_with_codes(http_server, http_port, hub):
    """A first frame that is not a JSON object closes with 3501; one over max_message_size with 1009."""
    for frame, code in (("[1]", 3501), ("{nope", 3501), ("x" * 70000, 1009)):
        ws = await websocket_connect(url(http_port), max_message_size=1 << 20)
        await ws.write_message(frame)
        assert await ws.read_message() is None
        assert ws.close_code == code, frame[:10]
    assert hub.num_clients == 0
