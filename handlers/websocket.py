"""The WebSocket transport at /connection/websocket.

Writes bypass ``write_message``: the hub hands every subscriber the same
pre-built frame bytes (see :mod:`handlers.wsframe`), which :class:`WSWire`
queues per connection and flushes with one ``stream.write`` per loop turn.
While the socket is backed up, frames wait in the queue (where latest-value
channels conflate them); past ``client_queue_max_size`` bytes the client is
disconnected with 3008.
"""

from __future__ import annotations

import logging
from typing import Any, Hashable

from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler as _TornadoWS

from channels import errors
from handlers import wsframe
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.protocol import Codec, codec_for
from handlers.session import ClientSession

log = logging.getLogger("squall.ws")


class WSWire:
    """The session's view of one WebSocket: framing, queue, flush, close."""

    __slots__ = (
        "codec", "key", "_handler", "_stream", "_flusher", "_limit", "_opcode", "_raw",
        "_out", "_out_bytes", "_conflate", "_marked", "_draining", "_closing", "session",
    )

    def __init__(self, handler: "WebSocketHandler", stream: IOStream, codec: Codec, ctx: Context) -> None:
        self.codec = codec
        self._raw = not ctx.settings.websocket_compression
        self.key: Hashable = ("ws", codec.name) if self._raw else object()
        self._handler = handler
        self._stream = stream
        self._flusher = ctx.flusher
        self._limit = ctx.settings.client_queue_max_size
        self._opcode = wsframe.OP_BINARY if codec.binary else wsframe.OP_TEXT
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._conflate: dict[str, int] = {}
        self._marked = False
        self._draining = False
        self._closing = False
        self.session: ClientSession | None = None

    def frame(self, payload: bytes) -> bytes:
        if self._raw:
            return wsframe.frame(payload, self._opcode)
        return payload

    def write(self, data: bytes, conflate: str | None = None) -> None:
        if self._closing:
            return
        if not self._raw:
            try:
                self._handler.write_message(data, binary=self.codec.binary)
            except WebSocketClosedError:
                pass
            return
        out = self._out
        if conflate is not None:
            i = self._conflate.get(conflate)
            if i is not None:
                self._out_bytes += len(data) - len(out[i])
                out[i] = data
                return
            self._conflate[conflate] = len(out)
        out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > self._limit:
            self._slow()
            return
        if not self._marked and not self._draining:
            self._marked = True
            self._flusher.mark(self)

    def flush(self) -> None:
        self._marked = False
        if self._draining or not self._out or self._closing:
            return
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._out_bytes = 0
        self._conflate.clear()
        stream = self._stream
        try:
            fut = stream.write(data)
        except StreamClosedError:
            return
        if stream.writing():
            # The kernel buffer is full: hold further frames in our queue
            # (bounded, conflatable) until this write drains.
            self._draining = True
            fut.add_done_callback(self._drained)

    def _drained(self, fut: Any) -> None:
        self._draining = False
        if not fut.cancelled() and fut.exception() is None and self._out:
            self.flush()

    def queued_bytes(self) -> int:
        return self._out_bytes

    def _slow(self) -> None:
        self._out.clear()
        self._out_bytes = 0
        self._conflate.clear()
        if self.session is not None:
            self.session.disconnect(errors.SLOW)

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued (replies already acknowledged), then close."""
        if self._closing:
            return
        self._closing = True
        if self._out and not self._stream.closed():
            data, self._out = b"".join(self._out), []
            self._out_bytes = 0
            try:
                self._stream.write(data)
            except StreamClosedError:
                pass
        self._handler.close(code, reason)

    def discard(self) -> None:
        self._closing = True
        self._out.clear()
        self._out_bytes = 0


class WebSocketHandler(_TornadoWS):
    """Accepts the socket and feeds frames to a :class:`ClientSession`."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.session: ClientSession | None = None
        self.wire: WSWire | None = None

    def check_origin(self, origin: str) -> bool:
        ok = origin_allowed(origin, self.request.host, self.ctx.settings.allowed_origins)
        if not ok:
            log.info("refused origin %s (host %s)", origin, self.request.host)
        return ok

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.ctx.settings.websocket_compression else None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.ctx.limiter.admit_socket():
            # A reconnect storm: refuse cheaply before the upgrade; SDKs back
            # off with jitter on a failed handshake.
            self.set_status(503)
            self.set_header("Retry-After", "1")
            self.finish("too many new connections")
            return
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        fmt = self.get_query_argument("format", "json")
        if fmt not in ("json", "msgpack"):
            self.close(errors.BAD_REQUEST.code, "unknown format")
            return
        self.set_nodelay(True)
        assert self.ws_connection is not None
        stream = self.ws_connection.stream  # type: ignore[attr-defined]
        assert stream is not None
        wire = WSWire(self, stream, codec_for(fmt), self.ctx)
        session = ClientSession(self.ctx, wire, self.request.remote_ip or "")
        wire.session = session
        try:
            session.opened()
        except errors.Disconnect as d:
            self.close(d.code, d.reason)
            return
        self.wire = wire
        self.session = session

    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        if isinstance(message, bytes) and not session.wire.codec.binary:
            session.disconnect(errors.INAPPROPRIATE_PROTOCOL, "binary frame on a JSON connection")
            return
        await session.handle_frame(message)

    def on_close(self) -> None:
        if self.wire is not None:
            self.wire.discard()
        session = self.session
        if session is not None:
            self.session = None
            self.ctx.hub.spawn(session.closed_by_peer())
