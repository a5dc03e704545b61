"""A WebSocket client on a bare TCP socket, for peers that misbehave on purpose.

Tornado's client answers pings and reads in the background; these tests need a
peer that goes silent (a vanished laptop) or stops reading (a stalled
browser) while the socket stays open, so frames are built here by hand.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import orjson

OP_TEXT = 0x1
OP_CLOSE = 0x8


class RawWS:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str = "/connection/websocket", rcvbuf: int = 0) -> "RawWS":
        """Handshake over a fresh socket; ``rcvbuf`` shrinks the kernel receive buffer."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # a small limit: asyncio stops reading the socket past 2 * limit, like a stalled peer
        reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        return cls(reader, writer)

    async def send(self, obj: object, opcode: int = OP_TEXT) -> None:
        payload = orjson.dumps(obj)
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Next (opcode, payload) from the server (server frames are unmasked)."""
        return await read_frame(self.reader, timeout)

    async def until_close(self, timeout: float = 10.0, max_frames: int = 1_000_000) -> tuple[int, int]:
        """Read until the close frame: (close code, data frames read before it)."""
        for i in range(max_frames):
            op, payload = await self.frame(timeout)
            if op == OP_CLOSE:
                return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), i
        raise AssertionError("no close frame")

    def close(self) -> None:
        self.writer.close()


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes]:
    """Read one unmasked server frame: (opcode, payload)."""
    b1, b2 = await asyncio.wait_for(reader.readexactly(2), timeout)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b1 & 0x0F, await asyncio.wait_for(reader.readexactly(n), timeout)

