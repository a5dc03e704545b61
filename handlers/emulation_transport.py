"""Bidirectional HTTP streaming (``/connection/http_stream``) and SSE
(``/connection/sse``): centrifuge-js's ``http_stream`` and ``sse`` transports.

The client opens one long response carrying its first commands (the connect
command: the ``POST`` body for HTTP streaming, the ``cf_connect`` query
parameter for SSE, newline-separated JSON commands as on WebSocket). The
response is the session's ordinary reply and push stream, in the JSON
protocol: one reply or push per line (HTTP streaming) or per ``data:`` event
(SSE), ``{}`` pings, and a ``{"push": {"disconnect": ...}}`` before it ends.
The connect reply adds ``session`` (a secret) to ``client`` and ``node``;
every later command is a ``POST /emulation`` naming them
(:mod:`handlers.emulation`).

The uni transports (``/connection/uni_http_stream``, ``/connection/uni_sse``,
:mod:`handlers.uni`) are separate routes with their own framing, as in
Centrifugo. HTTP streaming also serves the protobuf protocol, as
centrifuge-js's protobuf build uses it: ``Content-Type:
application/octet-stream``, the body and the response varint-delimited
protobuf Commands and Replies. SSE is JSON only (as in Centrifugo).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from channels import errors
from handlers.context import Context
from handlers.emulation_sessions import EmulationSessions
from handlers.protocol import Codec
from handlers.proxy import kept_headers
from handlers.session import ClientSession
from handlers.uni import Framing, UniHandler, UniWire
from handlers.wire import WireOutput

log = logging.getLogger("squall.emulation")

JSON_PROTOCOL = Codec("json")  # the bidirectional JSON protocol, as on WebSocket
PROTOBUF_PROTOCOL = Codec("protobuf")
OCTET_STREAM = "application/octet-stream"


class EmulationOutput(WireOutput):
    """Replies as on WebSocket; the connect reply also names the session."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def reply(self, s: ClientSession, cid: int, method: str, result: dict[str, Any]) -> None:
        if method == "connect":
            result = {**result, "session": self.session_id}
        super().reply(s, cid, method, result)


class LineFraming(Framing):
    content_type = "application/json"

    def frame(self, payload: bytes) -> bytes:
        return payload + b"\n"


class EventFraming(Framing):
    content_type = "text/event-stream; charset=utf-8"

    def frame(self, payload: bytes) -> bytes:
        return b"data: " + payload + b"\n\n"


class RawFraming(Framing):
    """Protobuf replies are varint-delimited already: written as they are."""

    content_type = OCTET_STREAM

    def frame(self, payload: bytes) -> bytes:
        return payload


RAW = RawFraming()


class EmulatedStreamHandler(UniHandler):
    """Base of the two bidirectional streams: origin, limits, the session's life."""

    transport = ""
    serves_protobuf = False

    def initialize(self, ctx: Context, sessions: EmulationSessions) -> None:  # type: ignore[override]
        super().initialize(ctx)
        self.sessions = sessions

    def _first_commands(self, raw: bytes) -> bool:
        """False after answering when the first commands cannot start a session."""
        if len(raw) > self.ctx.options.max_message_size:
            self.set_status(413)
            self.finish("connect command too large")
            return False
        if not raw.strip():
            self.set_status(400)
            self.finish("no connect command")
            return False
        return True

    async def stream(self, raw: bytes) -> None:
        if not self._origin_ok():
            self.set_status(403)
            self.finish("origin not allowed")
            return
        protobuf = self.request.headers.get("Content-Type", "").startswith(OCTET_STREAM)
        if protobuf and not self.serves_protobuf:
            self.set_status(415)
            self.finish("only the JSON protocol is served on this transport")
            return
        if not self._first_commands(raw):
            return
        ctx = self.ctx
        if not ctx.limiter.admit_socket():
            self.set_status(503)
            self.set_header("Retry-After", str(ctx.limiter.retry_after()))
            self.finish("too many new connections")
            return
        framing = RAW if protobuf else self.framing
        self.set_header("Content-Type", framing.content_type)
        self.set_header("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
        self.set_header("X-Accel-Buffering", "no")
        wire = UniWire(self, ctx, framing)
        wire.codec = PROTOBUF_PROTOCOL if protobuf else JSON_PROTOCOL
        # replies and pushes carry nothing per connection: share encodings per framing
        wire.key = sys.intern(f"emu:{self.transport}:{wire.codec.name}")
        wire.release()  # nothing to hold back: the connect reply is an ordinary reply
        # the session id is known before the session exists: the output carries it
        out = EmulationOutput("")
        session = ClientSession(ctx, wire, self.request.remote_ip or "", out)
        session.transport = self.transport  # what the proxy reports (handlers.proxy)
        session.request_headers = kept_headers(ctx.proxy, self.request.headers)
        out.session_id = sid = self.sessions.add(session)
        wire.session = session
        self.wire = wire
        try:
            try:
                session.opened()
            except errors.Disconnect as d:
                wire.close(d.code, d.reason)
                return
            await session.handle_frame(raw)
            if not session.connected and not session.closed:
                session.disconnect(errors.BAD_REQUEST, "connect first")
            await wire.wait_done()
        finally:
            self.sessions.remove(sid)
            await session.closed_by_peer()


class HttpStreamBidiHandler(EmulatedStreamHandler):
    framing = LineFraming()
    transport = "http_stream"
    serves_protobuf = True

    async def post(self) -> None:
        await self.stream(self.request.body)


class SSEBidiHandler(EmulatedStreamHandler):
    framing = EventFraming()
    transport = "sse"

    async def get(self) -> None:
        raw = self.get_query_argument("cf_connect", "")
        await self.stream(raw.encode("utf-8", "surrogatepass"))

    async def post(self) -> None:
        await self.stream(self.request.body)
