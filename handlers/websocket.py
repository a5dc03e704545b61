"""The WebSocket transport at /connection/websocket.

Writes bypass ``write_message``: the hub hands every subscriber the same
pre-built frame bytes, which are queued per connection and flushed with one
``stream.write`` per loop turn. While the socket is backed up, frames wait in
the queue (where latest-value channels conflate them); past
``client_queue_max_size`` bytes the client is disconnected with 3008.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Hashable

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler as _TornadoWS

from channels import errors
from handlers import wsframe
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.protocol import Codec, codec_for
from handlers.session import ClientSession

log = logging.getLogger("squall.ws")


class WebSocketHandler(_TornadoWS):
    """One client connection; implements the session's Wire."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.codec: Codec = codec_for("json")
        self.session: ClientSession | None = None
        self._key: Hashable = ("ws", "json")
        self._opcode = wsframe.OP_TEXT
        self._raw = not ctx.settings.websocket_compression
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._conflate: dict[str, int] = {}
        self._marked = False
        self._draining = False
        self._closing = False
        self._stream: Any = None

    # ------------------------------------------------------------ handshake
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
        self.codec = codec_for(fmt)
        self._opcode = wsframe.OP_BINARY if self.codec.binary else wsframe.OP_TEXT
        self._key = ("ws", fmt) if self._raw else None
        self.set_nodelay(True)
        assert self.ws_connection is not None
        self._stream = self.ws_connection.stream  # type: ignore[attr-defined]
        session = ClientSession(self.ctx, self, self.request.remote_ip or "")
        try:
            session.opened()
        except errors.Disconnect as d:
            self.close(d.code, d.reason)
            return
        self.session = session

    # ------------------------------------------------------------ input
    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        if isinstance(message, bytes) and not self.codec.binary:
            session.disconnect(errors.INAPPROPRIATE_PROTOCOL, "binary frame on a JSON connection")
            return
        await session.handle_frame(message)

    def on_close(self) -> None:
        self._out.clear()
        self._out_bytes = 0
        session = self.session
        if session is not None:
            self.session = None
            self.ctx.hub.spawn(session.closed_by_peer())

    # ------------------------------------------------------------ Wire
    @property
    def key(self) -> Hashable:
        return self._key

    def frame(self, payload: bytes) -> bytes:
        if self._raw:
            return wsframe.frame(payload, self._opcode)
        return payload

    def write(self, data: bytes, conflate: str | None = None) -> None:
        if self._closing:
            return
        if not self._raw:
            try:
                self.write_message(data, binary=self.codec.binary)
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
        if self._out_bytes > self.ctx.settings.client_queue_max_size:
            self._slow()
            return
        if not self._marked and not self._draining:
            self._marked = True
            self.ctx.flusher.mark(self)

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
        if fut.exception() is None and self._out:
            self.flush()

    def _slow(self) -> None:
        session = self.session
        self._out.clear()
        self._out_bytes = 0
        self._conflate.clear()
        if session is not None:
            session.disconnect(errors.SLOW)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._closing:
            return
        self._closing = True
        if self._out and self._stream is not None and not self._stream.closed():
            data, self._out = b"".join(self._out), []
            self._out_bytes = 0
            try:
                self._stream.write(data)
            except StreamClosedError:
                pass
        super().close(code, reason)

    def set_nodelay(self, value: bool) -> None:
        try:
            super().set_nodelay(value)
        except (OSError, AttributeError, socket.error):
            pass
