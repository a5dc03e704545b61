"""The lean connection stops reading a client whose commands pile up, and resumes once they are handled."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from handlers.flusher import Flusher
from handlers.protocol import codec_for
from handlers.ws_conn import INBOX_PAUSE, WSConnection
from tests.handlers.test_wsframe import client_frame


class Transport(asyncio.Transport):
    """The transport surface WSConnection uses, recording pause/resume."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.pauses = 0
        self.written: list[bytes] = []

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        assert not self.paused
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        assert self.paused
        self.paused = False


class SlowSession:
    """Handles each message only once the gate opens (a slow backend)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.handled: list[Any] = []

    def opened(self) -> None:
        return None

    def start_frame(self, payload: bytes | str) -> list[Any] | None:
        return [payload]  # nothing starts at once here: it all waits for the gate

    async def run_commands(self, payloads: list[Any]) -> None:
        for payload in payloads:
            await self.handle_frame(payload)

    async def handle_frame(self, payload: bytes | str) -> None:
        await self.gate.wait()
        self.handled.append(orjson.loads(payload)["id"])


@pytest.mark.gen_test
async def test_reading_pauses_while_commands_wait_and_resumes_after() -> None:
    """Past INBOX_PAUSE queued messages the socket is paused; all are handled in order, then reading resumes."""
    session = SlowSession()
    conn = WSConnection(codec_for("json"), Flusher(), 1 << 20, 1 << 20)
    conn.start(b"", b"", session)  # type: ignore[arg-type]
    transport = Transport()
    conn.connection_made(transport)
    n = 2 * INBOX_PAUSE
    conn.data_received(b"".join(client_frame(orjson.dumps({"id": i + 1, "ping": {}})) for i in range(n)))
    await asyncio.sleep(0)
    assert transport.paused and transport.pauses == 1
    session.gate.set()
    for _ in range(200):
        if len(session.handled) == n:
            break
        await asyncio.sleep(0)
    assert session.handled == list(range(1, n + 1))
    assert not transport.paused
