"""Baseline: the practical floor for a Python WebSocket fan-out server.

Plain asyncio.Protocol, no framework: each publication is JSON-encoded once,
framed once, and the same bytes are written to every member's transport.
Speaks just enough of Centrifugo's client protocol for ``loadtest``.
``GET /stats`` returns the delivery counters as JSON.

    python -m bench.baseline_asyncio --port 8101 [--drop-every N]
"""

from __future__ import annotations

import asyncio
import signal
import struct
from typing import Any

import orjson

from bench.baseline_core import Core, parse_args
from loadtest.websocket import accept_key, mask_payload

def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


class Peer(asyncio.Protocol):
    __slots__ = ("core", "transport", "buf", "ws")

    def __init__(self, core: "Core[Peer]") -> None:
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ws = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ws:
            self.core.closed(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.ws and not self._handshake():
            return
        self._frames()

    def _handshake(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        t = self.transport
        assert t is not None
        line, _, rest = head.partition("\r\n")
        path = line.split(" ")[1] if line.count(" ") >= 2 else ""
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest.split("\r\n"))}
        if path.startswith("/stats"):
            body = orjson.dumps(self.core.stats())
            t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            t.close()
            return False
        key = headers.get("sec-websocket-key", "").encode()
        if not key:
            t.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            t.close()
            return False
        accept = accept_key(key)
        t.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.ws = True
        self.core.opened(self)
        return True

    def _frames(self) -> None:
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 6:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                n = struct.unpack_from("!H", buf, pos + 2)[0]
                hl = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                hl = 10
            hl += 4  # clients always mask
            if len(buf) - pos < hl + n:
                break
            payload = mask_payload(bytes(buf[pos + hl - 4 : pos + hl]), bytes(buf[pos + hl : pos + hl + n]))
            pos += hl + n
            op = b0 & 0x0F
            if op == 0x1:
                self._message(payload)
            elif op == 0x8:
                if self.transport is not None:
                    self.transport.write(frame(payload[:2], 0x8))
                    self.transport.close()
                break
            elif op == 0x9 and self.transport is not None:
                self.transport.write(frame(payload, 0xA))
        del buf[:pos]

    def _message(self, payload: bytes) -> None:
        replies = []
        for line in payload.split(b"\n"):
            if line:
                reply = self.core.handle(self, orjson.loads(line))
                if reply is not None:
                    replies.append(orjson.dumps(reply))
        if replies and self.transport is not None:
            self.transport.write(frame(b"\n".join(replies)))


def send_all(members: list[Peer], push: dict[str, Any]) -> None:
    """Encode once, frame once, write the same bytes everywhere."""
    data = frame(orjson.dumps(push))
    for m in members:
        t = m.transport
        if t is not None:
            t.write(data)


async def serve(host: str, port: int, ping_interval: float, drop_every: int) -> None:
    core: Core[Peer] = Core(send_all, ping_interval, drop_every)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Peer(core), host, port, backlog=4096)
    ping = frame(b"{}")
    stop = loop.create_future()
    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    print(f"baseline_asyncio listening on {host}:{port}", flush=True)
    while not stop.done():
        await asyncio.wait([stop], timeout=ping_interval)
        for peer in list(core.subs_of):
            if peer.transport is not None:
                peer.transport.write(ping)
    server.close()


def main() -> None:
    args = parse_args("Minimal asyncio fan-out baseline (frame once, write everywhere).")
    asyncio.run(serve(args.host, args.port, args.ping_interval, args.drop_every))


if __name__ == "__main__":
    main()
