"""The lean WebSocket connection: an ``asyncio.Protocol`` that is the session's Wire.

After the handshake (:mod:`handlers.websocket`) nothing of Tornado's request,
handler or stream is kept: one object per connection (``__slots__``), driven
by the event loop's callbacks, holds the asyncio transport, an incremental
:class:`~handlers.wsframe.FrameParser` and the outbound queue. No coroutine or
Task waits on an idle socket; incoming messages run through the session in
order, in one Task that exists only while the connection has input queued.

The transport's write-buffer limits are (0, 0): ``pause_writing`` means the
kernel did not take everything (frames then wait in our queue, where they can
be conflated and are bounded) and ``resume_writing`` means it drained.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from typing import Hashable

from channels import errors
from handlers import wsframe
from handlers.flusher import Flusher
from handlers.protocol import Codec, Command
from handlers.session import ClientSession
from handlers.out_queue import OutQueue

log = logging.getLogger("squall.ws")

CLOSE_TIMEOUT = 5.0  # seconds a peer gets to answer our close frame
INBOX_PAUSE = 64  # messages waiting for the session before the socket stops being read

_OPEN, _CLOSING, _CLOSED = 0, 1, 2


class WSConnection(OutQueue, asyncio.Protocol):
    """One client socket after the upgrade."""

    __slots__ = (
        "codec", "key", "_stream", "_parser", "_opcode", "_state", "_inbox", "_task", "_timer", "_pending", "_paused",
    )

    def __init__(self, codec: Codec, flusher: Flusher, queue_limit: int, max_message_size: int) -> None:
        OutQueue.__init__(self, flusher, queue_limit)
        self.codec = codec
        self.key: Hashable = sys.intern(f"ws:{codec.name}")  # one shared str per format: hashed once
        self._stream: asyncio.Transport | None = None
        self._parser = wsframe.FrameParser(max_message_size)
        self._opcode = wsframe.OP_BINARY if codec.binary else wsframe.OP_TEXT
        self._state = _OPEN
        self._inbox: deque[bytes | str] | None = None
        self._paused = False  # reading paused until the session catches up
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending: tuple[bytes, bytes, int, str] | None = None

    def start(self, response: bytes, early: bytes, session: ClientSession | None, code: int = 0, reason: str = "") -> None:
        """What ``connection_made`` does first: write the 101 ``response``,
        open ``session`` (or close with ``code``), then parse ``early`` input.
        Done there, not after ``connect_accepted_socket`` returns, because the
        loop may call ``data_received`` before that coroutine resumes."""
        self.session = session
        self._pending = (response, early, code, reason)

    # ------------------------------------------------------------ Wire
    def frame(self, payload: bytes) -> bytes:
        return wsframe.frame(payload, self._opcode)

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued (replies already acknowledged), send the close
        frame, and give the peer ``CLOSE_TIMEOUT`` to answer it."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._closing = True
        frames = self._take()
        frames.append(wsframe.close_frame(code, reason))
        stream = self._stream
        if stream is None or stream.is_closing():
            return
        stream.write(b"".join(frames))
        self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    def abort(self) -> None:
        """Drop the socket without a close frame (a peer that never answered)."""
        if self._stream is not None:
            self._stream.abort()

    # ------------------------------------------------------------ OutQueue
    def _send(self, frames: list[bytes]) -> None:
        assert self._stream is not None
        self._stream.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _buffered(self) -> int:
        stream = self._stream
        return stream.get_write_buffer_size() if stream is not None and self._draining else 0

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._stream = transport
        transport.set_write_buffer_limits(0, 0)
        pending, self._pending = self._pending, None
        if pending is None:
            return
        response, early, code, reason = pending
        transport.write(response)
        session = self.session
        if session is None:
            self.close(code, reason)
            return
        try:
            session.opened()
        except errors.Disconnect as d:
            self.close(d.code, d.reason)
            return
        if early:
            self.data_received(early)

    def pause_writing(self) -> None:
        self._draining = True

    def resume_writing(self) -> None:
        self._draining = False
        if self._out and not self._closing:
            self.flush()

    def data_received(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        try:
            frames = self._parser.feed(data)
        except wsframe.Violation as v:
            self._fail(v.code, v.reason)
            return
        for op, payload in frames:
            if op <= wsframe.OP_BINARY:
                if self._state == _OPEN:
                    self._received(op, payload)
            elif op == wsframe.OP_PING:
                if self._state == _OPEN:
                    assert self._stream is not None and isinstance(payload, bytes)
                    self._stream.write(wsframe.frame(payload, wsframe.OP_PONG))
            elif op == wsframe.OP_CLOSE:
                self._peer_closed(payload)
                return

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        self._closing = True
        self._take()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session = self.session
        if session is not None:
            session.ctx.hub.spawn(session.closed_by_peer())
        # Break the session <-> connection <-> transport cycle so a closed
        # connection is freed by reference counting, never left to the cyclic
        # collector (the server freezes long-lived objects; see server/gc_policy.py).
        self.session = None
        stream, self._stream = self._stream, None
        if stream is not None and hasattr(stream, "_read_ready_cb"):
            # asyncio's selector transport keeps a bound method of itself
            # (a cycle) after it closed; it never reads again, so drop it.
            stream._read_ready_cb = None

    # ------------------------------------------------------------ input
    def _received(self, op: int, payload: bytes | str) -> None:
        session = self.session
        if session is None:
            return
        if op == wsframe.OP_BINARY and not self.codec.binary:
            session.disconnect(errors.INAPPROPRIATE_PROTOCOL, "binary frame on a JSON connection")
            return
        if self._task is not None:
            assert self._inbox is not None
            self._inbox.append(payload)
            if len(self._inbox) >= INBOX_PAUSE and not self._paused and self._stream is not None:
                # A client sending faster than its commands complete (a slow
                # history write, say) waits in its socket, not in our memory.
                self._paused = True
                self._stream.pause_reading()
            return
        # Nothing of this connection's is running: what can start at once does
        # (a publishing client's frame, usually), and a Task runs the rest.
        try:
            rest = session.start_frame(payload)
        except Exception:  # as _consume treats a failure in handling
            log.exception("client=%s: message handling failed", session.client_id)
            self._fail(1011, "internal error")
            return
        if rest is None:
            return
        self._inbox = deque()
        self._task = asyncio.get_running_loop().create_task(self._consume(session, rest))

    async def _consume(self, session: ClientSession, first: list[Command]) -> None:
        """Run the commands left of the first message, then queued messages,
        through the session one at a time, in order."""
        inbox = self._inbox
        assert inbox is not None
        try:
            await session.run_commands(first)
            while inbox:
                await session.handle_frame(inbox.popleft())
                if self._paused and len(inbox) <= INBOX_PAUSE // 2:
                    self._resume_reading()
        except Exception:
            log.exception("client=%s: message handling failed", session.client_id)
            self._fail(1011, "internal error")
        finally:
            self._task = None
            self._inbox = None
            if self._paused:
                self._resume_reading()

    def _resume_reading(self) -> None:
        self._paused = False
        stream = self._stream
        if stream is not None and not stream.is_closing():
            stream.resume_reading()

    def _peer_closed(self, payload: bytes | str) -> None:
        """The peer's close frame: answer it (if we had not sent ours) and close."""
        assert self._stream is not None and isinstance(payload, bytes)
        try:
            code, _ = wsframe.parse_close(payload)
        except wsframe.Violation as v:
            self._fail(v.code, v.reason)
            return
        if self._state == _OPEN:
            self._closing = True
            self._take()
            self._stream.write(wsframe.close_frame(code))
        self._state = _CLOSED
        self._stream.close()

    def _fail(self, code: int, reason: str) -> None:
        """Input we cannot go on parsing: send the close frame and hang up."""
        log.info("closing WebSocket %d: %s", code, reason)
        stream = self._stream
        if self._state == _OPEN and stream is not None:
            self._closing = True
            self._take()
            stream.write(wsframe.close_frame(code, reason))
        self._state = _CLOSED
        if stream is not None:
            stream.close()
