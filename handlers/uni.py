"""Shared logic of the unidirectional transports (uni SSE, uni HTTP streaming).

Centrifugo's unidirectional protocol: the client sends one connect request
(the JSON of a ConnectRequest: token, data, subs, ...) and then only listens.
The server sends, one message each:

* ``{"connect": {...connect result, with "subs"...}}`` first;
* pushes *without* the bidirectional ``{"push": ...}`` wrapper:
  ``{"channel": "metrics:cpu", "pub": {...}}``, ``{"channel": c, "join": ...}``,
  ``{"channel": c, "unsubscribe": {...}}``, ``{"channel": c, "subscribe": ...}``;
* ``{}`` as a ping (the client does not answer);
* ``{"disconnect": {"code": n, "reason": "..."}}`` last, before the response ends.

The session is an ordinary :class:`handlers.session.ClientSession` with
:class:`handlers.uni_output.UniOutput` as its Output: it runs the connect
request as commands (auth, the token's ``channels`` claim, recovery positions
from ``subs``; then, Squall's extension, a ``subscribe`` for each channel in
``subs`` not already subscribed by the token, with the same permission checks
a bidirectional client's subscribe gets) and merges their results into the
single connect message, so the first message lists every subscription with
its stream position (and recovered publications).

Each connection keeps the stream position of its history channels. The SSE
transport sends it as the event id (see :mod:`handlers.sse`), so a browser's
EventSource reconnects with ``Last-Event-ID`` and misses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Hashable

import orjson
import tornado.web
from tornado.iostream import StreamClosedError

from channels import errors
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.out_queue import OutQueue
from handlers.protocol import Codec
from handlers.proxy import kept_headers
from handlers.session import ClientSession
from handlers import uni_output
from handlers.uni_output import UNI_JSON, UniOutput
from handlers.ws_handshake import cross_origin_refusal

log = logging.getLogger("squall.uni")

# A slow reader's disconnect message sits behind its backlog; drop the socket
# if it is still not written after this long.
SLOW_ABORT_SECONDS = 5.0


class Framing:
    """How a transport wraps one message, and what ends a flushed batch."""

    content_type = "application/json"

    def frame(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def trailer(self, positions: dict[str, list[Any]]) -> bytes:
        """Bytes written after each batch whose stream positions changed."""
        return b""


class UniWire(OutQueue):
    """The session's Wire over a streaming HTTP response.

    The queue discipline is the WebSocket wires' (:class:`OutQueue`): frames
    are written once per loop turn; while the previous write has not drained
    they wait (latest-value channels replace their queued frame); past
    ``client_queue_max_size`` bytes the client is dropped with 3008. Until
    :meth:`release` (the connect message is ready) frames are held, under the
    same bound, so that message goes first.
    """

    __slots__ = ("codec", "key", "positions", "_handler", "_framing", "_moved", "_inflight", "_done", "_held", "_held_bytes")

    def __init__(self, handler: "UniHandler", ctx: Context, framing: Framing) -> None:
        super().__init__(ctx.flusher, ctx.options.client_queue_max_size)
        self.codec: Codec = UNI_JSON
        # Frames carry per-connection stream positions: never share encodings.
        self.key: Hashable = object()
        # channel -> [offset, epoch] for channels with a stream
        self.positions: dict[str, list[Any]] = {}
        self._handler = handler
        self._framing = framing
        self._moved = False
        self._inflight = 0  # bytes of the write not yet drained
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held: list[tuple[bytes, str | None]] | None = []
        self._held_bytes = 0

    def write(self, data: bytes, conflate: str | None = None) -> None:
        held = self._held
        if held is None:
            super().write(data, conflate)
            return
        held.append((data, conflate))
        self._held_bytes += len(data)
        if self._held_bytes > self._limit and self.session is not None:
            self.session.disconnect(errors.SLOW)  # a flood while still subscribing

    def release(self) -> list[tuple[bytes, str | None]]:
        """Stop holding; what was held, for the session to write after the connect message."""
        held, self._held = self._held or [], None
        self._held_bytes = 0
        return held

    def frame(self, payload: bytes) -> bytes:
        return self._framing.frame(payload)

    def moved(self) -> None:
        """A stream position changed: the next write carries it."""
        self._moved = True

    def _join(self, frames: list[bytes]) -> bytes:
        data = b"".join(frames)
        if self._moved:
            self._moved = False
            data += self._framing.trailer(self.positions)
        return data

    def _send(self, frames: list[bytes]) -> None:
        data = self._join(frames)
        h = self._handler
        try:
            h.write(data)
            fut = h.flush()
        except (RuntimeError, StreamClosedError):
            return
        # Hold further frames (bounded, conflatable) until this write drained.
        self._draining = True
        self._inflight = len(data)
        fut.add_done_callback(self._drained)

    def _drained(self, fut: "asyncio.Future[None]") -> None:
        self._draining = False
        self._inflight = 0
        if fut.cancelled() or fut.exception() is not None:
            return
        if self._out:
            self.flush()

    def _buffered(self) -> int:
        return self._inflight

    def close(self, code: int, reason: str) -> None:
        """Write what is queued and the disconnect message, then end the response."""
        if self._closing:
            return
        self._closing = True
        data = self._join(self._take()) + self.frame(self.codec.disconnect_push(code, reason))
        h = self._handler
        try:
            h.write(data)
            h.finish()
        except (RuntimeError, StreamClosedError):
            pass  # the client is already gone
        if code == errors.SLOW.code:
            asyncio.get_running_loop().call_later(SLOW_ABORT_SECONDS, h.abort_if_stuck)
        self._finish()

    def discard(self) -> None:
        """The client went away: drop everything queued."""
        self._closing = True
        self._take()
        self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def wait_done(self) -> None:
        await self._done


class UniHandler(tornado.web.RequestHandler):
    """Base of the uni transports: origin, limits, session lifetime."""

    framing: Framing = Framing()

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.wire: UniWire | None = None

    def check_xsrf_cookie(self) -> None:
        """Nothing here changes state on the user's behalf; origins are checked."""

    def _origin_ok(self) -> bool:
        """The WebSocket handshake's rule (handlers.ws_handshake), so all transports agree."""
        headers = self.request.headers
        origin = headers.get("Origin")
        host, allowed = self.request.host, self.ctx.options.allowed_origins
        why = cross_origin_refusal(headers, lambda o: origin_allowed(o, host, allowed))
        if why is not None:
            log.info("refused %s (host %s)", why, host)
            return False
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            self.set_header("Vary", "Origin")
        return True

    def options(self, *args: Any) -> None:
        """CORS preflight for POST with a JSON body from an allowed origin."""
        if not self._origin_ok():
            self.set_status(403)
            self.finish()
            return
        self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type, Last-Event-ID, Authorization")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def _parse(self, raw: bytes | str) -> dict[str, Any] | None:
        """The connect request; None after answering 400 when it is not a JSON object."""
        if len(raw) > self.ctx.options.max_message_size:
            self.set_status(413)
            self.finish("connect request too large")
            return None
        if not raw or (isinstance(raw, bytes) and not raw.strip()):
            return {}
        try:
            req = orjson.loads(raw)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            self.set_status(400)
            self.finish("connect request must be a JSON object")
            return None
        return req

    def adjust_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Transport-specific changes to the connect request (SSE: Last-Event-ID)."""
        return request

    async def serve(self, raw: bytes | str) -> None:
        if not self._origin_ok():
            self.set_status(403)
            self.finish("origin not allowed")
            return
        if not self.ctx.limiter.admit_socket():
            self.set_status(503)
            self.set_header("Retry-After", str(self.ctx.limiter.retry_after()))
            self.finish("too many new connections")
            return
        request = self._parse(raw)
        if request is None:
            return
        request = self.adjust_request(request)
        self.set_header("Content-Type", self.framing.content_type)
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        wire = UniWire(self, self.ctx, self.framing)
        out = UniOutput(wire)
        session = ClientSession(self.ctx, wire, self.request.remote_ip or "", out)
        # Centrifugo's names for its unidirectional transports (what the proxy is told)
        session.transport = "uni_sse" if self.framing.content_type.startswith("text/event-stream") else "uni_http_stream"
        session.request_headers = kept_headers(self.ctx.proxy, self.request.headers)
        self.wire = wire
        await uni_output.run(session, wire, out, request)

    def on_connection_close(self) -> None:
        if self.wire is not None:
            self.wire.discard()

    def abort_if_stuck(self) -> None:
        """Close the socket of a slow reader whose last bytes never drained."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None and not stream.closed() and stream.writing():
            stream.close()

