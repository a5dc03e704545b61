"""The WebSocket connection seen from a raw socket: handshake, control frames, close, the queue bound.

Both paths run every test that applies to both: the lean asyncio path
(default) and Tornado's stock path (``websocket_compression`` on; a raw client
offers no extension, so frames stay uncompressed and comparable).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

import orjson
import pytest

from handlers import wsframe
from tests.handlers.test_wsframe import client_frame
from tests.helpers.rawws import read_frame
from tests.helpers.squall_process import test_config

QUEUE_MAX = 64 * 1024
PAYLOAD = "x" * 8000


@pytest.fixture(params=[False, True], ids=["lean", "tornado"])
def squall_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return test_config(client_queue_max_size=QUEUE_MAX, websocket_compression=request.param)


def upgrade_request(port: int, **headers: str) -> bytes:
    h = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = "".join(f"{k}: {v}\r\n" for k, v in h.items() if v)
    return f"GET /connection/websocket HTTP/1.1\r\n{lines}\r\n".encode()


class Raw:
    """A client on a bare socket: writes exact bytes, reads server frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, rcvbuf: int = 0) -> "Raw":
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=max(rcvbuf, 16384))
        return cls(reader, writer)

    @classmethod
    async def upgraded(cls, port: int, first: bytes = b"", rcvbuf: int = 0) -> "Raw":
        """Handshake; ``first`` goes in the same write (and TCP segment) as the request."""
        c = await cls.connect(port, rcvbuf)
        c.writer.write(upgrade_request(port) + first)
        head = await c.head()
        assert head.startswith(b"HTTP/1.1 101 "), head
        return c

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)

    def send(self, obj: object, opcode: int = wsframe.OP_TEXT) -> None:
        self.writer.write(client_frame(orjson.dumps(obj), opcode))

    async def frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        return await read_frame(self.reader, timeout)

    async def message(self) -> dict[str, Any]:
        op, data = await self.frame()
        assert op == wsframe.OP_TEXT, (op, data)
        return orjson.loads(data.split(b"\n")[0])

    async def eof(self, timeout: float = 5.0) -> bool:
        """True once the server closed TCP (after its frames)."""
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    def close(self) -> None:
        self.writer.close()


def close_code(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


@pytest.mark.gen_test
async def test_frame_in_the_same_segment_as_the_handshake(http_server: Any, http_port: int, squall_app: Any) -> None:
    """A connect command sent together with the upgrade request is answered."""
    c = await Raw.upgraded(http_port, first=client_frame(b'{"id":1,"connect":{}}'))
    reply = await c.message()
    assert reply["id"] == 1 and "client" in reply["connect"]
    c.close()


@pytest.mark.gen_test
async def test_ping_gets_pong_with_the_same_payload(http_server: Any, http_port: int, squall_app: Any) -> None:
    """A WebSocket ping is answered by a pong carrying its payload, between messages."""
    c = await Raw.upgraded(http_port)
    c.send({"id": 1, "connect": {}})
    await c.message()
    c.writer.write(client_frame(b"are you there", wsframe.OP_PING))
    assert await c.frame() == (wsframe.OP_PONG, b"are you there")
    c.send({"id": 2, "presence_stats": {"channel": "chat:x"}})
    assert (await c.message())["id"] == 2
    c.close()


@pytest.mark.gen_test
async def test_client_close_is_echoed_then_the_session_goes(http_server: Any, http_port: int, squall_app: Any) -> None:
    """The client's close code comes back in the server's close frame, TCP ends, the session is forgotten."""
    hub = squall_app.ctx.hub
    c = await Raw.upgraded(http_port)
    c.send({"id": 1, "connect": {}})
    await c.message()
    c.send({"id": 2, "subscribe": {"channel": "chat:bye"}})
    await c.message()
    assert len(hub.clients()) == 1
    c.writer.write(client_frame((4000).to_bytes(2, "big") + b"bye", wsframe.OP_CLOSE))
    op, payload = await c.frame()
    assert op == wsframe.OP_CLOSE and close_code(payload) == 4000
    assert await c.eof()
    for _ in range(100):
        if not hub.clients() and hub.num_subscriptions == 0:
            break
        await asyncio.sleep(0.01)
    assert hub.clients() == [] and hub.num_subscriptions == 0
    assert squall_app.ctx.limiter.total == 0  # the connection's count was released


@pytest.mark.gen_test
async def test_server_close_flushes_replies_then_closes_after_the_answer(http_server: Any, http_port: int, squall_app: Any) -> None:
    """A disconnect (3501 here) sends queued replies first, then the close frame; TCP ends after the client answers."""
    c = await Raw.upgraded(http_port)
    c.send({"id": 1, "connect": {}})
    await c.message()
    c.writer.write(client_frame(b'{"id":2,"ping":{}}\n{"id":3,"connect":{}}'))
    assert (await c.message())["id"] == 2  # the reply written before the disconnect
    op, payload = await c.frame()
    assert op == wsframe.OP_CLOSE and close_code(payload) == 3501
    c.writer.write(client_frame(payload, wsframe.OP_CLOSE))
    assert await c.eof()


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers,status",
    [
        ({"Sec-WebSocket-Key": ""}, 400),
        ({"Sec-WebSocket-Version": "9"}, 426),
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Origin": "http://evil.example"}, 403),
    ],
)
async def test_bad_upgrades_are_refused_like_tornado(http_server: Any, http_port: int, squall_app: Any, headers: dict[str, str], status: int) -> None:
    """Missing key, wrong version, Upgrade, Connection or a foreign Origin get Tornado's status codes."""
    c = await Raw.connect(http_port)
    c.writer.write(upgrade_request(http_port, **headers))
    head = await c.head()
    assert head.split(b" ")[1] == str(status).encode(), head
    if status == 426:
        assert b"sec-websocket-version: 13" in head.lower()
    c.close()


@pytest.mark.gen_test(timeout=60)
async def test_stalled_reader_bound_and_3008(http_server: Any, http_port: int, squall_app: Any) -> None:
    """A reader that stops reading: bytes held never pass the bound plus one frame; it reads 3008 after its frames."""
    hub = squall_app.ctx.hub
    slow = await Raw.upgraded(http_port, rcvbuf=4096)
    slow.send({"id": 1, "connect": {}})
    await slow.message()
    slow.send({"id": 2, "subscribe": {"channel": "live:firehose"}})
    await slow.message()
    (session,) = hub.clients()
    wire = session.wire
    frame_size = len(PAYLOAD) + 200
    held_max = sent = 0
    for sent in range(1, 8001):
        await hub.publish("live:firehose", PAYLOAD)
        held_max = max(held_max, wire.held_bytes())
        if session.closed:
            break
        await asyncio.sleep(0)
    assert session.closed
    assert held_max <= QUEUE_MAX + frame_size
    frames = 0
    for frames in range(sent + 10):
        op, payload = await slow.frame(timeout=10)
        if op == wsframe.OP_CLOSE:
            assert close_code(payload) == 3008
            break
    else:
        raise AssertionError("no close frame")
    assert frames < sent
    slow.close()


@pytest.mark.gen_test
async def test_abrupt_drop_forgets_the_session(http_server: Any, http_port: int, squall_app: Any) -> None:
    """A peer that vanishes without a close frame is forgotten (closed_by_peer ran)."""
    hub = squall_app.ctx.hub
    c = await Raw.upgraded(http_port)
    c.send({"id": 1, "connect": {}})
    await c.message()
    c.send({"id": 2, "subscribe": {"channel": "chat:gone"}})
    await c.message()
    (session,) = hub.clients()
    c.writer.transport.abort()
    for _ in range(200):
        if session.closed and hub.num_subscriptions == 0:
            break
        await asyncio.sleep(0.01)
    assert session.closed and hub.clients() == [] and hub.num_subscriptions == 0
