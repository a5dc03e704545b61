"""A lean WebSocket client on asyncio.Protocol, built for holding 10k+ sockets.

Why hand-written: per delivered message the load generator must cost less
CPU than the server it measures. ``bench/client_choice.py`` compares this
client with the ``websockets`` library on the same traffic; see
docs/LOADTEST.md for the numbers. No Task or Future exists per message: frames
are parsed in ``data_received`` and handed to a synchronous callback.
Only what a Centrifugo client needs is implemented: text frames, ping/pong,
close, fragmented messages; no extensions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from typing import Callable, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect(), not bind()

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024


class HandshakeError(ConnectionError):
    """The server did not answer the upgrade with 101 and a valid accept key.

    ``status`` is the HTTP status it answered instead (503: Squall's connection
    rate limit), 0 when the answer was not a status line or had a bad key.
    """

    def __init__(self, why: str, status: int = 0) -> None:
        self.status = status
        super().__init__(why)


def mask_payload(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` (RFC 6455 5.3) in one big-int step."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One masked, final frame as a client must send it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    return header + mask + mask_payload(mask, payload)


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


MessageCallback = Callable[[bytes], None]
CloseCallback = Callable[[int, str], None]


class WebSocketClient(asyncio.Protocol):
    """One client connection; ``on_message`` gets each complete text message."""

    __slots__ = (
        "transport",
        "_buf",
        "_frag",
        "_key",
        "_handshake",
        "_open",
        "closed",
        "on_message",
        "on_close",
        "_request",
    )

    def __init__(self, request: bytes, key: bytes, on_message: MessageCallback, on_close: CloseCallback) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._frag: bytearray | None = None
        self._key = key
        self._request = request
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._open = False
        self.closed = False
        self.on_message = on_message
        self.on_close = on_close

    # ---------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence no isinstance check
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 16384:
                    self._fail_handshake("response headers too long")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status, _, rest = head.partition("\r\n")
            parts = status.split(" ", 2)
            if len(parts) < 2 or parts[1] != "101":
                code = parts[1] if len(parts) >= 2 else ""
                self._fail_handshake(f"HTTP status {status!r}", int(code) if code.isdigit() else 0)
                return
            headers = {}
            for line in rest.split("\r\n"):
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("sec-websocket-accept", "").encode() != accept_key(self._key):
                self._fail_handshake("bad Sec-WebSocket-Accept")
                return
            self._open = True
            if not self._handshake.done():
                self._handshake.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                hl = 4
            elif n == 127:
                if end - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                hl = 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                hl += 4
            if end - pos < hl + n:
                break
            payload = bytes(buf[pos + hl : pos + hl + n])
            if b1 & 0x80:
                payload = mask_payload(bytes(buf[pos + hl - 4 : pos + hl]), payload)
            pos += hl + n
            opcode = b0 & 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if b0 & 0x80:
                    self.on_message(payload)
                else:
                    self._frag = bytearray(payload)
            elif opcode == OP_CONT:
                if self._frag is None:
                    self.abort(1002, "continuation without start")
                    return
                self._frag += payload
                if len(self._frag) > MAX_MESSAGE:
                    self.abort(1009, "message too big")
                    return
                if b0 & 0x80:
                    msg, self._frag = bytes(self._frag), None
                    self.on_message(msg)
            elif opcode == OP_PING:
                self._write(client_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                self._write(client_frame(payload[:2], OP_CLOSE))
                self._finish(code, reason)
                if self.transport is not None:
                    self.transport.close()
                return
            if self.closed:
                return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError(str(exc) if exc else "connection closed during handshake"))
        self._finish(1006, str(exc) if exc else "connection lost")

    # ---------------------------------------------------------------- API
    async def wait_open(self) -> None:
        await self._handshake

    def send_text(self, payload: bytes) -> None:
        self._write(client_frame(payload, OP_TEXT))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and drop the socket without waiting for the echo."""
        if self.closed:
            return
        self._write(client_frame(struct.pack("!H", code) + reason.encode(), OP_CLOSE))
        self._finish(code, reason, local=True)
        if self.transport is not None:
            self.transport.close()

    def abort(self, code: int, reason: str) -> None:
        self._finish(code, reason)
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- internals
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail_handshake(self, why: str, status: int = 0) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(HandshakeError(why, status))
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, code: int, reason: str, local: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self._open and not local:
            self.on_close(code, reason)


async def open_websocket(
    host: str,
    port: int,
    path: str,
    on_message: MessageCallback,
    on_close: CloseCallback,
    *,
    source: str | None = None,
    timeout: float = 10.0,
) -> WebSocketClient:
    """Connect (from ``source`` when given, so many 127.0.0.x share the load)."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    proto: WebSocketClient | None = None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            try:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            except OSError:
                pass
            sock.bind((source, 0))
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            _, proto = await loop.create_connection(
                lambda: WebSocketClient(request, key, on_message, on_close), sock=sock
            )
            await proto.wait_open()
    except BaseException:
        if proto is not None and proto.transport is not None:
            proto.closed = True
            proto.transport.abort()
        else:
            sock.close()
        raise
    return proto
