"""The WebSocket transport at /connection/websocket.

Two paths, one contract (the session's Wire: frame, write, close; queue bound
3008, conflation, one write per connection per loop turn):

* the lean path (default): Tornado parses the upgrade request, the checks of
  :mod:`handlers.ws_handshake` run here, then the socket is taken from
  Tornado and handed to a :class:`~handlers.ws_conn.WSConnection` on the
  asyncio loop; nothing of Tornado's request, handler or stream is kept.
  See docs/FASTPATH.md.
* the stock path, when ``websocket_compression`` is on (permessage-deflate is
  Tornado's): Tornado's ``WebSocketHandler`` with :class:`WSWire`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Hashable, Mapping

from tornado.iostream import IOStream
from tornado.websocket import WebSocketClosedError, WebSocketHandler as _TornadoWS

from channels import errors
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.protocol import Codec, codec_for, negotiate
from handlers.proxy import NO_HEADERS, kept_headers
from handlers.session import ClientSession
from handlers.ws_conn import WSConnection
from handlers.ws_handshake import Refusal, offered_subprotocols, query_format, switching_protocols, upgrade_refusal
from handlers.out_queue import OutQueue

log = logging.getLogger("squall.ws")

WS_PATH = "/connection/websocket"


class WSWire(OutQueue):
    """The session's Wire on Tornado's stock WebSocket (compression on).

    Frames are compressed per connection by ``write_message``, so the hub
    shares the encoded payload, not the frame; queued messages are written
    one ``write_message`` each when the flusher runs.
    """

    __slots__ = ("codec", "key", "_handler", "_stream")

    def __init__(self, handler: "WebSocketHandler", stream: IOStream, codec: Codec, ctx: Context) -> None:
        super().__init__(ctx.flusher, ctx.options.client_queue_max_size)
        self.codec = codec
        self.key: Hashable = sys.intern(f"ws-deflate:{codec.name}")
        self._handler = handler
        self._stream = stream

    def frame(self, payload: bytes) -> bytes:
        return payload

    def _send(self, frames: list[bytes]) -> None:
        binary = self.codec.binary
        fut = None
        try:
            for data in frames:
                fut = self._handler.write_message(data, binary=binary)
        except WebSocketClosedError:
            return
        if fut is not None and self._stream.writing():
            # The kernel buffer is full: hold further frames in our queue
            # (bounded, conflatable) until this write drains.
            self._draining = True
            fut.add_done_callback(self._drained)

    def _drained(self, fut: Any) -> None:
        self._draining = False
        if not fut.cancelled() and fut.exception() is None and self._out:
            self.flush()

    def _buffered(self) -> int:
        buf = self._stream._write_buffer  # Tornado internal: what the IOStream still holds
        return len(buf) if buf is not None else 0

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued (replies already acknowledged), then close."""
        if self._closing:
            return
        frames = self._take()
        if frames and not self._stream.closed():
            self._send(frames)
        self._closing = True
        self._handler.close(code, reason)

    def abort(self) -> None:
        """Drop the socket without a close frame."""
        self._stream.close()

    def discard(self) -> None:
        self._closing = True
        self._take()


class WebSocketHandler(_TornadoWS):
    """Checks the upgrade and hands the socket to the lean path (or Tornado's)."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.session: ClientSession | None = None
        self.wire: WSWire | None = None
        self._codec: Codec | None = None  # the stock path's, chosen in the handshake (None: unknown format)
        self._negotiated = False

    def check_origin(self, origin: str) -> bool:
        ok = origin_allowed(origin, self.request.host, self.ctx.options.allowed_origins)
        if not ok:
            log.info("refused origin %s (host %s)", origin, self.request.host)
        return ok

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.ctx.options.websocket_compression else None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.ctx.limiter.admit_socket():
            # A reconnect storm: refuse cheaply before the upgrade; SDKs back
            # off with jitter on a failed handshake.
            self._refuse(Refusal(503, "too many new connections", (("Retry-After", str(self.ctx.limiter.retry_after())),)))
            return
        stream = getattr(self.request.connection, "stream", None)
        if self.ctx.options.websocket_compression or type(stream) is not IOStream:
            await super().get(*args, **kwargs)  # deflate, or TLS served by Tornado itself
            return
        await self._take_over()

    def _refuse(self, r: Refusal) -> None:
        self.set_status(r.status)
        for name, value in r.headers:
            self.set_header(name, value)
        self.finish(r.message)

    async def _take_over(self) -> None:
        headers = self.request.headers
        refusal = upgrade_refusal(headers, self.check_origin)
        if refusal is not None:
            log.debug("refused upgrade: %d %s", refusal.status, refusal.message)
            self._refuse(refusal)
            return
        taken = _release(self.detach())
        if taken is None:
            return
        sock, early = taken
        conn = lean_connection(
            self.ctx, headers["Sec-WebSocket-Key"], query_format(self.request.query), offered_subprotocols(headers),
            self.request.remote_ip or "", early, headers,
        )
        await adopt(conn, sock)

    # ------------------------------------------------------------ stock path
    def _negotiate(self, offered: list[str]) -> str | None:
        self._negotiated = True
        try:
            self._codec, answer = negotiate(query_format(self.request.query), offered, self.ctx.options.max_message_size)
        except ValueError:
            self._codec, answer = None, None
        return answer

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Tornado asks this during the handshake when the client offered subprotocols."""
        return self._negotiate(subprotocols)

    def open(self, *args: str, **kwargs: str) -> None:
        if not self._negotiated:
            self._negotiate([])  # select_subprotocol is not called without an offer
        codec = self._codec
        if codec is None:
            self.close(errors.BAD_REQUEST.code, "unknown format")
            return
        self.set_nodelay(True)
        assert self.ws_connection is not None
        stream = self.ws_connection.stream  # type: ignore[attr-defined]
        assert stream is not None
        wire = WSWire(self, stream, codec, self.ctx)
        session = ClientSession(self.ctx, wire, self.request.remote_ip or "")
        session.request_headers = kept_headers(self.ctx.proxy, self.request.headers)
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


def lean_connection(
    ctx: Context, key: str, fmt: str | None, offered: list[str], remote_ip: str, early: bytes,
    headers: Mapping[str, str] = NO_HEADERS,
) -> WSConnection:
    """The lean path's connection for a checked upgrade (the handler's and
    :mod:`handlers.front_door`'s): the codec is chosen from the query's
    ``fmt`` and the ``offered`` subprotocols (:func:`handlers.protocol.negotiate`);
    it answers 101 (with the chosen subprotocol) and opens the session when
    the loop gives it the socket; an unknown ``format`` closes it with 3501
    right after the 101, as the stock path does."""
    s = ctx.options
    try:
        codec, answer = negotiate(fmt, offered, s.max_message_size)
    except ValueError:
        codec, answer = None, None
    conn = WSConnection(codec or codec_for("json"), ctx.flusher, s.client_queue_max_size, s.max_message_size)
    response = switching_protocols(key, answer)
    if codec is None:
        conn.start(response, early, None, errors.BAD_REQUEST.code, "unknown format")
    else:
        session = ClientSession(ctx, conn, remote_ip)
        session.request_headers = kept_headers(ctx.proxy, headers)
        conn.start(response, early, session)
    return conn


async def adopt(conn: WSConnection, sock: socket.socket) -> None:
    """Give ``sock`` (connected, request head consumed) to ``conn`` on the asyncio loop."""
    try:
        await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock)
    except OSError as e:
        log.info("lost a socket during the upgrade: %s", e)
        sock.close()


def _release(stream: IOStream) -> tuple[socket.socket, bytes] | None:
    """Take the connected socket out of a detached IOStream, still open,
    with the bytes the client sent after its request head (already read).

    The IOStream has no API to let go of its socket, so the socket is
    duplicated and the IOStream closed: closing unregisters its fd from the
    loop and closes that fd only; the connection lives on in the duplicate.
    The unread bytes are Tornado internals (``_read_buffer`` holds
    ``_read_buffer_size`` unconsumed bytes from its start). None when the
    peer is already gone.
    """
    if stream.closed() or stream.socket is None:
        return None
    early = bytes(stream._read_buffer[: stream._read_buffer_size])
    try:
        sock = stream.socket.dup()
    except OSError:
        stream.close()
        return None
    stream.close()
    return sock, early
