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

The session logic is :class:`handlers.session.ClientSession`'s, fed synthetic
commands: a ``connect`` (auth, the token's ``channels`` claim, recovery
positions from ``subs``), then, Squall's extension, a ``subscribe`` for each
channel in ``subs`` not already subscribed by the token, with the same
permission checks a bidirectional client's subscribe gets. Their results are
merged into the single connect message, so the first message lists every
subscription with its stream position (and recovered publications).

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
from channels.errors import DisconnectCode, SquallError
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.ws_handshake import cross_origin_refusal
from handlers.protocol import MAX_COMMANDS_PER_FRAME, Codec
from handlers.session import ClientSession
from handlers.ws_queue import OutQueue

log = logging.getLogger("squall.uni")

# A slow reader's disconnect message sits behind its backlog; drop the socket
# if it is still not written after this long.
SLOW_ABORT_SECONDS = 5.0


class UniCodec(Codec):
    """JSON codec whose pushes carry no ``{"push": ...}`` wrapper."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("json")

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({"channel": channel, kind: body})

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({kind: body})


UNI_JSON = UniCodec()


def uni_disconnect_for(err: SquallError) -> DisconnectCode:
    """A connect error becomes a disconnect: uni clients cannot read replies."""
    if err.code in (errors.TokenExpired.code, errors.Expired.code):
        return errors.EXPIRED
    if err.code == errors.TooManyRequests.code:
        return errors.TOO_MANY_REQUESTS
    if err.code in (errors.PermissionDenied.code, errors.Unauthorized.code):
        return errors.PERMISSION_DENIED
    if err.code in (errors.BadRequest.code, errors.UnknownChannel.code):
        return errors.BAD_REQUEST
    return errors.SERVER_ERROR


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
    ``client_queue_max_size`` bytes the client is dropped with 3008.
    """

    __slots__ = ("codec", "key", "positions", "_handler", "_framing", "_moved", "_inflight", "_done")

    def __init__(self, handler: "UniHandler", ctx: Context, framing: Framing) -> None:
        super().__init__(ctx.flusher, ctx.settings.client_queue_max_size)
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


class UniSession(ClientSession):
    """A ClientSession that listens only: replies become uni messages."""

    __slots__ = ("_sub_ids", "_held", "_held_bytes", "_connect_result", "_refused")

    wire: UniWire

    def __init__(self, ctx: Context, wire: UniWire, remote_ip: str) -> None:
        super().__init__(ctx, wire, remote_ip)
        self._sub_ids: dict[int, str] = {}
        # While connecting, frames wait here so the connect message goes first.
        self._held: list[tuple[bytes, str | None]] | None = []
        self._held_bytes = 0
        self._connect_result: dict[str, Any] | None = None
        self._refused: list[tuple[str, SquallError]] = []

    async def start(self, request: dict[str, Any]) -> None:
        """Run the connect request as synthetic commands, then release output."""
        subs = request.get("subs") or {}
        if not isinstance(subs, dict):
            self.disconnect(errors.BAD_REQUEST, "subs must be an object")
            return
        await self.handle_frame(orjson.dumps({"id": 1, "connect": request}))
        if self.closed or not self.connected:
            return
        wanted = [c for c in subs if isinstance(c, str) and c not in self.subs]
        cid = 1
        for i in range(0, len(wanted), MAX_COMMANDS_PER_FRAME - 1):
            lines = []
            for channel in wanted[i : i + MAX_COMMANDS_PER_FRAME - 1]:
                cid += 1
                self._sub_ids[cid] = channel
                req = subs.get(channel)
                params = {k: v for k, v in req.items() if k in ("recover", "offset", "epoch")} if isinstance(req, dict) else {}
                lines.append(orjson.dumps({"id": cid, "subscribe": {**params, "channel": channel}}))
            await self.handle_frame(b"\n".join(lines))
            if self.closed:
                return
        self._send_held()

    def _send_held(self) -> None:
        result = self._connect_result or {}
        self._connect_result = None
        held, self._held = self._held or [], None
        w = self.wire
        super().write_wire(w.frame(w.codec.encode({"connect": result})))
        for channel, err in self._refused:
            body = {"code": 2000, "reason": err.message}
            super().write_wire(w.frame(w.codec.push(channel, "unsubscribe", body)))
        self._refused.clear()
        for data, conflate in held:
            super().write_wire(data, conflate)

    # ------------------------------------------------------------ output
    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        if self._held is not None:
            if not self.closed:
                self._held.append((data, conflate))
                self._held_bytes += len(data)
                if self._held_bytes > self.ctx.settings.client_queue_max_size:
                    self.disconnect(errors.SLOW)  # a flood while still subscribing
            return
        super().write_wire(data, conflate)

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        # The wire key is per connection, so this push is written to this
        # connection right after it is encoded: its offset is our position.
        if kind == "pub":
            offset = body.get("offset", 0)
            pos = self.wire.positions.get(channel)
            if offset and pos is not None and offset > pos[0]:
                pos[0] = offset
                self.wire.moved()
        return super().encode_push(channel, kind, body)

    def _track(self, channel: str, result: dict[str, Any]) -> None:
        epoch = result.get("epoch")
        if not epoch:
            return
        offset = int(result.get("offset", 0))
        for p in result.get("publications") or ():
            offset = max(offset, int(p.get("offset", 0)))
        self.wire.positions[channel] = [offset, epoch]
        self.wire.moved()

    def _reply(self, cid: int, method: str, result: dict[str, Any]) -> None:
        if method == "connect":
            result.pop("pong", None)
            for channel, sub in (result.get("subs") or {}).items():
                self._track(channel, sub)
            self._connect_result = result
        elif method == "subscribe":
            channel = self._sub_ids.pop(cid, "")
            self._track(channel, result)
            if self._connect_result is not None:
                self._connect_result.setdefault("subs", {})[channel] = result

    def _reply_error(self, cid: int, err: SquallError) -> None:
        channel = self._sub_ids.pop(cid, None)
        if channel is None:  # the connect itself failed
            log.info("uni connect from %s refused: %d %s", self.remote_ip, err.code, err.message)
            self.disconnect(uni_disconnect_for(err), err.message)
            return
        log.info("uni client=%s may not subscribe %s: %d %s", self.client_id, channel, err.code, err.message)
        self._refused.append((channel, err))

    # ------------------------------------------------------------ pinger
    def pong_overdue(self, sent_at: float) -> bool:
        """Uni clients never answer pings; a dead peer shows as a write error."""
        return False


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
        host, allowed = self.request.host, self.ctx.settings.allowed_origins
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
        if len(raw) > self.ctx.settings.max_message_size:
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
        session = UniSession(self.ctx, wire, self.request.remote_ip or "")
        wire.session = session
        self.wire = wire
        try:
            session.opened()
        except errors.Disconnect as d:
            session.closed = True
            wire.close(d.code, d.reason)
            return
        try:
            await session.start(request)
            await wire.wait_done()
        finally:
            await session.closed_by_peer()

    def on_connection_close(self) -> None:
        if self.wire is not None:
            self.wire.discard()

    def abort_if_stuck(self) -> None:
        """Close the socket of a slow reader whose last bytes never drained."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None and not stream.closed() and stream.writing():
            stream.close()

