"""Protobuf over the lean WebSocket path: selection as the SDKs make it, binary frames, the configured size limit.

Both lean entries are covered: the front door (the whole head in one read)
and the handler's take-over (a head split over segments reaches Tornado first).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import orjson
import pytest
from tornado.httputil import HTTPHeaders

from handlers import wsframe
from handlers.codec_protobuf import varint
from handlers.front_door import FrontDoor
from handlers.proto import client_pb2 as pb
from handlers.protocol import JSON, PROTOBUF, ProtocolError, formats, negotiate
from handlers.ws_handshake import offered_subprotocols, query_format, switching_protocols
from tests.handlers.test_wsframe import client_frame
from tests.handlers.test_ws_conn import Raw
from tests.helpers.squall_process import test_config

MAX = 4096


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(max_message_size=MAX)


def request(port: int, query: str = "", protocols: str = "") -> bytes:
    lines = [
        f"GET /connection/websocket{query} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
        "Connection: Upgrade", f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def upgrade(port: int, query: str, protocols: str, split: bool) -> tuple[Raw, dict[str, str]]:
    """Handshake; ``split`` sends the head in two segments (the handler's path, not the door's)."""
    c = await Raw.connect(port)
    req = request(port, query, protocols)
    if split:
        c.writer.write(req[:20])
        await c.writer.drain()
        await asyncio.sleep(0.1)
        req = req[20:]
    c.writer.write(req)
    head = (await c.head()).decode()
    assert head.startswith("HTTP/1.1 101 "), head
    headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
    return c, headers


def pb_connect(cid: int = 1) -> bytes:
    body = pb.Command(id=cid, connect=pb.ConnectRequest(name="test")).SerializeToString()
    return varint(len(body)) + body


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", None), ("format=protobuf", "protobuf"), ("cf_protocol=protobuf", "protobuf"),
     ("format=json&cf_protocol=protobuf", "json"), ("format=a&format=msgpack", "msgpack"), ("format=", "")],
)
def test_query_format(query: str, expected: str | None) -> None:
    """``format`` first, else ``cf_protocol`` (Centrifugo's names), the last value of either; None without both."""
    assert query_format(query) == expected


def test_offered_subprotocols_and_the_101() -> None:
    """The offer is read as Tornado reads it; the 101 answers one subprotocol, or none."""
    h = HTTPHeaders()
    h.add("Sec-WebSocket-Protocol", "chat, centrifuge-protobuf")
    h.add("Sec-WebSocket-Protocol", "x")
    assert offered_subprotocols(h) == ["chat", "centrifuge-protobuf", "x"]
    assert offered_subprotocols(HTTPHeaders()) == []
    key = base64.b64encode(b"k" * 16).decode()
    assert b"Sec-WebSocket-Protocol: centrifuge-protobuf\r\n" in switching_protocols(key, "centrifuge-protobuf")
    assert b"Sec-WebSocket-Protocol" not in switching_protocols(key)
    assert switching_protocols(key, "centrifuge-protobuf").endswith(b"\r\n\r\n")


def test_codecs_follow_max_message_size() -> None:
    """negotiate hands out a protobuf codec whose declared-length limit is the server's max_message_size."""
    small, _ = negotiate(None, ["centrifuge-protobuf"], 100)
    assert small is formats(100)["protobuf"] and small.name == "protobuf"
    with pytest.raises(ProtocolError) as e:
        small.decode_commands(varint(101) + b"\x08\x01")
    assert e.value.disconnect.code == 1009
    default, _ = negotiate(None, ["centrifuge-protobuf"])
    assert default is PROTOBUF and formats(100)["json"] is JSON


@pytest.mark.gen_test
@pytest.mark.parametrize("split", [False, True], ids=["door", "handler"])
@pytest.mark.parametrize(
    ("query", "protocols", "answer", "fmt"),
    [
        ("", "centrifuge-protobuf", "centrifuge-protobuf", "protobuf"),  # centrifuge-js protobuf build, use_protobuf=True
        ("", "chat, centrifuge-protobuf", "centrifuge-protobuf", "protobuf"),
        ("?format=protobuf", "", None, "protobuf"),  # older SDKs
        ("?cf_protocol=protobuf", "", None, "protobuf"),
        ("", "centrifuge-json", "centrifuge-json", "json"),
        ("", "", None, "json"),
    ],
)
async def test_selection_and_binary_frames(
    http_server: FrontDoor, http_port: int, split: bool, query: str, protocols: str, answer: str | None, fmt: str,
) -> None:
    """The subprotocol or ?format/?cf_protocol picks the codec; the chosen subprotocol is answered; protobuf is binary."""
    c, headers = await upgrade(http_port, query, protocols, split)
    assert headers.get("Sec-WebSocket-Protocol") == answer
    if fmt == "protobuf":
        c.writer.write(client_frame(pb_connect(), wsframe.OP_BINARY))
        op, payload = await c.frame()
        assert op == wsframe.OP_BINARY
        [reply] = PROTOBUF.decode_replies(payload)
    else:
        c.writer.write(client_frame(orjson.dumps({"id": 1, "connect": {}})))
        op, payload = await c.frame()
        assert op == wsframe.OP_TEXT
        [reply] = JSON.decode_replies(payload)
    assert reply["id"] == 1 and reply["connect"]["client"]
    assert http_server.upgrades == (0 if split else 1)
    c.writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("split", [False, True], ids=["door", "handler"])
async def test_declared_length_over_configured_limit_is_1009(http_server: FrontDoor, http_port: int, split: bool) -> None:
    """The protobuf codec is built from max_message_size: a declared length over it closes 1009, not 3501."""
    c, _ = await upgrade(http_port, "", "centrifuge-protobuf", split)
    frame = varint(MAX + 1) + b"\x08\x01"  # a small frame claiming a message over the configured limit
    c.writer.write(client_frame(frame, wsframe.OP_BINARY))
    op, payload = await c.frame()
    assert op == wsframe.OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 1009
    c.writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("split", [False, True], ids=["door", "handler"])
async def test_unknown_format_closes_3501(http_server: FrontDoor, http_port: int, split: bool) -> None:
    """An unknown ?format is answered 101 and closed with 3501, on either lean entry."""
    c, headers = await upgrade(http_port, "?format=xml", "", split)
    assert "Sec-WebSocket-Protocol" not in headers
    op, payload = await c.frame()
    assert op == wsframe.OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 3501
    c.writer.close()
