"""Latest-value channels end to end: a slow reader gets the newest value, not a backlog.

A reader that stops reading (small socket buffers, nothing read) sits on a fast
feed. On a ``latest_value`` channel the server's queue for it stays at about one
frame, and once it reads again it ends on the newest value, still connected.
On an ordinary channel the same reader is disconnected with 3008 once its queue
passes ``client_queue_max_size``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import struct
import time
from typing import Any

import orjson
import pytest

from tests.handlers.test_sse import UniStream, sse_path
from tests.helpers.squall_process import test_config

QUEUE_MAX = 64 * 1024
PAYLOAD = "x" * 8000  # big frames fill socket buffers in a fraction of a second
SMALL_RCVBUF = 4096
MAX_PUBLISHES = 4000  # every loop below is bounded by count and time
MAX_SECONDS = 30.0
BACKLOGGED_PUBLISHES = 200  # publishes made while the reader is backed up


@pytest.fixture
def squall_config() -> dict[str, Any]:
    reach = {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}
    return test_config(
        client_queue_max_size=QUEUE_MAX,
        namespaces=[
            {"name": "metrics", "history_size": 20, "history_ttl": 600, "latest_value": True, **reach},
            {"name": "feed", "history_size": 20, "history_ttl": 600, **reach},
        ],
    )


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


class SlowWS:
    """A WebSocket client on a raw socket with a tiny receive buffer; reads only when asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.close_code: int | None = None
        self._msgs: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, port: int) -> "SlowWS":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=SMALL_RCVBUF)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /connection/websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b" 101 " in head.split(b"\r\n")[0], head
        return cls(reader, writer)

    def send(self, obj: dict[str, Any]) -> None:
        payload = orjson.dumps(obj)
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def _frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def message(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Next reply or push (pings skipped); None after a close frame."""
        while not self._msgs:
            if self.close_code is not None:
                return None
            op, data = await asyncio.wait_for(self._frame(), timeout)
            if op == 8:
                self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                return None
            self._msgs += [m for m in (orjson.loads(line) for line in data.split(b"\n") if line) if m != {}]
        return self._msgs.pop(0)

    def close(self) -> None:
        self.writer.close()


async def _feed_while_backed_up(hub: Any, channel: str, wire: Any) -> tuple[int, int, bool]:
    """Publish fast until the reader has been backed up for a while.

    Returns (last value published, largest queue seen, whether the queue ever held bytes).
    """
    deadline = time.monotonic() + MAX_SECONDS
    backed_up = 0
    biggest = 0
    value = 0
    for value in range(1, MAX_PUBLISHES + 1):
        await hub.publish(channel, {"v": value, "pad": PAYLOAD})
        await asyncio.sleep(0.002)
        q = wire.queued_bytes()
        biggest = max(biggest, q)
        if q > 0:
            backed_up += 1
        if backed_up >= BACKLOGGED_PUBLISHES or wire.session.closed or time.monotonic() > deadline:
            break
    return value, biggest, backed_up > 0


async def _values_until(next_msg: Any, channel: str, last: int) -> list[int]:
    seen: list[int] = []
    for _ in range(MAX_PUBLISHES + 10):
        msg = await next_msg()
        if msg is None:
            break
        push = msg.get("push", msg)
        if push.get("channel") == channel and "pub" in push:
            seen.append(push["pub"]["data"]["v"])
            if seen[-1] == last:
                break
    return seen


@pytest.mark.gen_test(timeout=60)
async def test_websocket_slow_reader_on_latest_value_gets_newest(http_server, http_port, hub):
    """WebSocket: queue stays about one frame, the reader ends on the newest value and stays connected."""
    ws = await SlowWS.open(http_port)
    ws.send({"id": 1, "connect": {}})
    cid = (await ws.message())["connect"]["client"]
    ws.send({"id": 2, "subscribe": {"channel": "metrics:cpu"}})
    assert "subscribe" in (await ws.message())
    wire = hub.client(cid).wire
    last, biggest, backed_up = await _feed_while_backed_up(hub, "metrics:cpu", wire)
    assert backed_up, "the reader never backed up: the test proves nothing"
    assert biggest <= 2 * (len(PAYLOAD) + 200), biggest  # one conflated frame, not a backlog
    assert not wire.session.closed
    seen = await _values_until(ws.message, "metrics:cpu", last)
    assert seen[-1] == last and seen == sorted(seen) and len(seen) < last
    assert ws.close_code is None and hub.client(cid) is not None
    ws.close()


@pytest.mark.gen_test(timeout=60)
async def test_websocket_slow_reader_on_ordinary_channel_gets_3008(http_server, http_port, hub, caplog):
    """WebSocket: without latest_value the same reader's queue passes the limit and it is closed with 3008."""
    caplog.set_level(logging.INFO, logger="squall.client")
    ws = await SlowWS.open(http_port)
    ws.send({"id": 1, "connect": {}})
    cid = (await ws.message())["connect"]["client"]
    ws.send({"id": 2, "subscribe": {"channel": "feed:cpu"}})
    assert "subscribe" in (await ws.message())
    wire = hub.client(cid).wire
    await _feed_while_backed_up(hub, "feed:cpu", wire)
    assert wire.session.closed
    assert any(f"client={cid}" in r.getMessage() and "code=3008" in r.getMessage() for r in caplog.records)
    for _ in range(MAX_PUBLISHES + 10):
        if await ws.message() is None:
            break
    assert ws.close_code == 3008
    ws.close()


@pytest.mark.gen_test(timeout=60)
async def test_sse_slow_reader_on_latest_value_gets_newest(http_server, http_port, hub):
    """SSE: the uni wire conflates too; the reader ends on the newest value, still connected."""
    s = await UniStream.open(http_port, sse_path({"subs": {"metrics:rps": {}}}), rcvbuf=SMALL_RCVBUF)
    cid = (await s.message())["connect"]["client"]
    wire = hub.client(cid).wire
    last, biggest, backed_up = await _feed_while_backed_up(hub, "metrics:rps", wire)
    assert backed_up, "the reader never backed up: the test proves nothing"
    assert biggest <= 2 * (len(PAYLOAD) + 200), biggest
    seen = await _values_until(s.message, "metrics:rps", last)
    assert seen[-1] == last and seen == sorted(seen) and len(seen) < last
    assert hub.client(cid) is not None
    s.close()


@pytest.mark.gen_test(timeout=60)
async def test_sse_slow_reader_on_ordinary_channel_gets_3008(http_server, http_port, hub):
    """SSE: without latest_value the reader is dropped with a 3008 disconnect message."""
    s = await UniStream.open(http_port, sse_path({"subs": {"feed:rps": {}}}), rcvbuf=SMALL_RCVBUF)
    cid = (await s.message())["connect"]["client"]
    wire = hub.client(cid).wire
    await _feed_while_backed_up(hub, "feed:rps", wire)
    assert wire.session.closed
    last_msg = None
    for _ in range(MAX_PUBLISHES + 10):
        msg = await s.message()
        if msg is None:
            break
        last_msg = msg
    assert last_msg == {"disconnect": {"code": 3008, "reason": "slow"}}
    assert hub.client(cid) is None


@pytest.mark.gen_test
async def test_new_subscriber_gets_latest_value_at_once(http_server, http_port, hub):
    """Subscribing to a latest-value channel returns its newest publication in the reply."""
    for v in range(1, 6):
        await hub.publish("metrics:mem", {"v": v})
    ws = await SlowWS.open(http_port)
    ws.send({"id": 1, "connect": {}})
    await ws.message()
    ws.send({"id": 2, "subscribe": {"channel": "metrics:mem"}})
    reply = (await ws.message())["subscribe"]
    assert [p["data"]["v"] for p in reply["publications"]] == [5]
    s = await UniStream.open(http_port, sse_path({"subs": {"metrics:mem": {}}}))
    sub = (await s.message())["connect"]["subs"]["metrics:mem"]
    assert [p["data"]["v"] for p in sub["publications"]] == [5]
    ws.close()
    s.close()
