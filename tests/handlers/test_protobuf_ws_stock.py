"""Protobuf on Tornado's stock WebSocket path (websocket_compression on): ``select_subprotocol`` and ?format."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.websocket import websocket_connect

from handlers.codec_protobuf import varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import PROTOBUF
from server.app import Squall
from tests.helpers.squall_process import test_config

MAX = 4096


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(websocket_compression=True, max_message_size=MAX)


def connect_frame() -> bytes:
    body = pb.Command(id=1, connect=pb.ConnectRequest()).SerializeToString()
    return varint(len(body)) + body


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("query", "offered", "answer"),
    [
        ("", ["centrifuge-protobuf"], "centrifuge-protobuf"),
        ("?format=protobuf", None, None),
        ("?cf_protocol=protobuf", None, None),
    ],
)
async def test_stock_path_protobuf(ws_url: str, squall_app: Squall, query: str, offered: list[str] | None, answer: str | None) -> None:
    """Tornado's handshake answers centrifuge-protobuf; replies are binary protobuf; the session's codec is protobuf."""
    conn = await websocket_connect(ws_url + query, subprotocols=offered, compression_options={})
    assert conn.selected_subprotocol == answer
    await conn.write_message(connect_frame(), binary=True)
    msg = await conn.read_message()
    assert isinstance(msg, bytes)
    [reply] = PROTOBUF.decode_replies(msg)
    assert reply["id"] == 1 and reply["connect"]["client"]
    assert [s.wire.codec.name for s in squall_app.ctx.hub.clients()] == ["protobuf"]
    conn.close()


@pytest.mark.gen_test
async def test_stock_path_json_subprotocol_answered(ws_url: str) -> None:
    """centrifuge-json is answered when offered; the connection speaks JSON text."""
    conn = await websocket_connect(ws_url, subprotocols=["centrifuge-json"])
    assert conn.selected_subprotocol == "centrifuge-json"
    await conn.write_message('{"id":1,"connect":{}}')
    msg = await conn.read_message()
    assert isinstance(msg, str) and '"client"' in msg
    conn.close()


@pytest.mark.gen_test
async def test_stock_path_limit_and_unknown_format(ws_url: str) -> None:
    """A declared length over the configured max_message_size is 1009; ?format=xml is 3501."""
    conn = await websocket_connect(ws_url, subprotocols=["centrifuge-protobuf"])
    await conn.write_message(varint(MAX + 1) + b"\x08\x01", binary=True)
    assert await conn.read_message() is None
    assert conn.close_code == 1009
    bad = await websocket_connect(ws_url + "?format=xml")
    assert await bad.read_message() is None
    assert bad.close_code == 3501
