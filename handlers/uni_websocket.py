"""Unidirectional WebSocket at ``/connection/uni_websocket`` (Centrifugo's uni_websocket).

The client sends the connect request (the JSON of a ConnectRequest: token,
data, subs, ...) in its first frame, or as the ``cf_connect`` query
parameter, and then only listens; as Centrifugo, later frames are read and
ignored. Every message is one text frame in the unidirectional protocol of
:mod:`handlers.uni` (the ``{"connect": ...}`` message first, then pushes
without the ``{"push": ...}`` wrapper, ``{}`` pings); the disconnect is the
WebSocket close frame with its code and reason. A first frame that is not a
JSON object closes with 3501; one over ``max_message_size`` with 1009.

Served by Tornado's WebSocket handler (not the lean path of
:mod:`handlers.websocket`): it is a fallback transport, not the hot one.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import tornado.websocket

from channels import errors
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.session import ClientSession
from handlers.uni import Framing, UniWire
from handlers import uni_output
from handlers.proxy import kept_headers
from handlers.uni_output import UniOutput

log = logging.getLogger("squall.uni")

MESSAGE_TOO_BIG = 1009


class _Frames(Framing):
    """A WebSocket frame carries one message as it is."""

    def frame(self, payload: bytes) -> bytes:
        return payload


FRAMES = _Frames()


class UniWSWire(UniWire):
    """The uni wire over WebSocket frames: one message per frame, close frame last."""

    __slots__ = ()

    def _send(self, frames: list[bytes]) -> None:
        h: Any = self._handler
        try:
            fut = None
            for f in frames:
                fut = h.write_message(f)
        except tornado.websocket.WebSocketClosedError:
            return
        if fut is not None:
            self._draining = True
            self._inflight = sum(len(f) for f in frames)
            fut.add_done_callback(self._drained)

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        h: Any = self._handler
        try:
            for f in self._take():
                h.write_message(f)
            h.close(code, reason[:120])
        except tornado.websocket.WebSocketClosedError:
            pass
        self._finish()


class UniWebSocketHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.wire: UniWSWire | None = None
        self._started = False

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.ctx.options.allowed_origins)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.ctx.limiter.admit_socket():
            self.set_status(503)
            self.set_header("Retry-After", str(self.ctx.limiter.retry_after()))
            self.finish("too many new connections")
            return
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        raw = self.get_query_argument("cf_connect", "")
        if raw:
            self._start(raw)

    def on_message(self, message: str | bytes) -> None:
        if not self._started:
            self._start(message)

    def _start(self, raw: str | bytes) -> None:
        self._started = True
        if len(raw) > self.ctx.options.max_message_size:
            self.close(MESSAGE_TOO_BIG, "message too big")
            return
        try:
            req = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            req = "bad"
        if req is None:
            req = {}  # a literal null: an empty connect request, as Centrifugo
        if not isinstance(req, dict):
            self.close(errors.BAD_REQUEST.code, errors.BAD_REQUEST.reason)
            return
        self.ctx.hub.spawn(self._serve(req))

    async def _serve(self, request: dict[str, Any]) -> None:
        wire = UniWSWire(self, self.ctx, FRAMES)  # type: ignore[arg-type]  # a WebSocket, not an HTTP stream
        out = UniOutput(wire)
        session = ClientSession(self.ctx, wire, self.request.remote_ip or "", out)
        session.transport = "uni_websocket"
        session.request_headers = kept_headers(self.ctx.proxy, self.request.headers)
        self.wire = wire
        await uni_output.run(session, wire, out, request)

    def on_close(self) -> None:
        if self.wire is not None:
            self.wire.discard()


