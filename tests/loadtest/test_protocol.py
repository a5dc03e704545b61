"""The load tester's client protocol: replies matched to commands, closes that fail what waits."""

from __future__ import annotations

import asyncio

import pytest

from loadtest.protocol import CommandError, Conn
from loadtest.tracker import Tracker
from loadtest.websocket import accept_key, open_websocket


async def silent_server() -> tuple[asyncio.Server, int]:
    """Completes the WebSocket handshake, then never answers a command."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key"))
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
        await reader.read()  # swallow everything until the client leaves
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.gen_test(timeout=15)
async def test_close_fails_a_pending_command_at_once() -> None:
    """A command waiting for its reply fails with code -1 when we close, not after its timeout."""
    server, port = await silent_server()
    try:
        conn = Conn(0, Tracker())
        conn.ws = await open_websocket("127.0.0.1", port, "/", conn._on_message, conn._on_close)
        call = asyncio.ensure_future(conn.call("connect", {}, timeout=10.0))
        await asyncio.sleep(0.05)
        assert not call.done()
        conn.close()
        with pytest.raises(CommandError) as err:
            await asyncio.wait_for(call, 1.0)
        assert err.value.code == -1
    finally:
        server.close()
        await server.wait_closed()
