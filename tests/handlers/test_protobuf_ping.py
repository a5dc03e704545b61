"""Ping and pong in protobuf: the server's ping is an empty Reply (0x00 in a binary frame), the pong an empty Command."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import Client, ClientEventHandler, DisconnectedContext
from tornado.websocket import websocket_connect

from handlers.codec_protobuf import varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import PROTOBUF
from server.app import Squall
from tests.helpers.squall_process import test_config

PING_INTERVAL = 1.0
PONG_TIMEOUT = 1.0
ROUNDS = 3 * (PING_INTERVAL + PONG_TIMEOUT)


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(ping_interval=PING_INTERVAL, pong_timeout=PONG_TIMEOUT)


def connect_frame() -> bytes:
    body = pb.Command(id=1, connect=pb.ConnectRequest()).SerializeToString()
    return varint(len(body)) + body


@pytest.mark.gen_test(timeout=30)
async def test_silent_protobuf_peer_gets_pings_then_3012(ws_url: str) -> None:
    """A protobuf peer that never answers hears binary 0x00 pings, then is closed with 3012."""
    conn = await websocket_connect(ws_url, subprotocols=["centrifuge-protobuf"])
    await conn.write_message(connect_frame(), binary=True)
    first = await conn.read_message()
    assert isinstance(first, bytes) and "connect" in PROTOBUF.decode_replies(first)[0]
    pings = 0
    while (msg := await asyncio.wait_for(conn.read_message(), 10)) is not None:
        assert msg == b"\x00"
        pings += 1
    assert pings >= 1 and conn.close_code == 3012


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.disconnects: list[int] = []

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnects.append(ctx.code)


@pytest.mark.gen_test(timeout=30)
async def test_centrifuge_python_protobuf_stays_over_ping_rounds(ws_url: str, squall_app: Squall) -> None:
    """centrifuge-python (use_protobuf=True) answers the server's pings, and reads them as pings: it stays connected."""
    ev = Events()
    # max_server_ping_delay 1 s: a client that did not understand the pings would drop itself within 2 s
    c = Client(ws_url, events=ev, use_protobuf=True, max_server_ping_delay=1.0, timeout=5)
    await c.connect()
    [sess] = squall_app.ctx.hub.clients()
    assert sess.wire.codec.name == "protobuf"
    await asyncio.sleep(ROUNDS)
    assert ev.disconnects == [] and not sess.closed and squall_app.ctx.hub.clients() == [sess]
    await c.disconnect()
