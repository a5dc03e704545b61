"""The listening sockets' first reader: client WebSocket upgrades skip
Tornado's HTTP machinery, every other connection goes to Tornado unchanged.

Why: for each new WebSocket Tornado builds an IOStream, an HTTP1Connection
with its coroutine, routes the request, builds a RequestHandler, and then the
lean path gives all of it up again to keep only the socket (about a third of
the server's CPU per connect; docs/FASTPATH.md). The door accepts the socket
itself and peeks at the request head (``MSG_PEEK``, so nothing is consumed):

* ``GET`` of the WebSocket path whose head :func:`handlers.ws_handshake.parse_head`
  reads and that passes every check the handler makes (rate limit, upgrade
  headers, origin) is consumed here and handed to
  :func:`handlers.websocket.lean_connection`, the same code the handler uses;
* ``POST`` of the server API whose head :func:`handlers.api_head.read_api_head`
  reads starts a lean keep-alive API connection (:mod:`handlers.api_conn`),
  which gives the socket to Tornado at the first request it cannot read;
* anything else (other paths, a head split over several segments, a refused
  upgrade, a client that sends nothing for ``HEAD_WAIT``) goes on to
  Tornado's own handling untouched, so Tornado answers it exactly as it
  would have without the door, refusals included.

The door is an ``HTTPServer`` subclass overriding ``TCPServer._handle_connection``
(Tornado internal, 6.x): listening, stopping and TLS stay Tornado's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Mapping

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders

from handlers.api_conn import ApiConnection
from handlers.api_head import HttpDate
from handlers.api_methods import ServerApi
from handlers.context import Context
from handlers.origins import origin_allowed
from handlers.proxy import NO_HEADERS
from handlers.websocket import WS_PATH, adopt, lean_connection
from handlers.ws_conn import WSConnection
from handlers.ws_handshake import client_ip, offered_subprotocols, parse_head, query_format, upgrade_refusal

log = logging.getLogger("squall.ws")

HEAD_MAX = 8192  # a longer upgrade head is Tornado's to read
HEAD_WAIT = 5.0  # seconds a new socket may stay silent before Tornado takes it
API_IDLE_TIMEOUT = 3600.0  # seconds a lean API connection may idle: Tornado's idle_connection_timeout default


class FrontDoor(HTTPServer):
    """Tornado's HTTPServer, except that an accepted socket is first peeked at:
    a client WebSocket upgrade is opened here, anything else is served as usual."""

    def initialize(  # type: ignore[override]
        self,
        *args: Any,
        ctx: Context,
        lean: bool = True,
        api: ServerApi | None = None,
        api_idle_timeout: float = API_IDLE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.ctx = ctx
        self.lean = lean  # False: every WebSocket upgrade goes to Tornado (e.g. permessage-deflate on)
        self.api = api  # None: server API requests go to Tornado
        self.api_idle_timeout = api_idle_timeout
        self.upgrades = 0  # WebSockets opened by the door itself (tests tell the paths apart by it)
        self.api_connections = 0  # lean API connections opened (likewise)
        self._loop = asyncio.get_running_loop()
        self._waiting: dict[int, tuple[socket.socket, Any, asyncio.TimerHandle]] = {}
        self._api_conns: set[ApiConnection] = set()
        self._api_date = HttpDate()
        self._api_sweep: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        """Stop accepting; sockets still silent are closed."""
        super().stop()
        for fd in list(self._waiting):
            sock, _, timer = self._waiting.pop(fd)
            timer.cancel()
            self._loop.remove_reader(fd)
            sock.close()

    async def close_all_connections(self) -> None:
        """Tornado's, and the lean API connections: idle ones now, busy ones
        after the response in hand (as Tornado closes its keep-alive ones)."""
        for conn in list(self._api_conns):
            conn.close_when_idle()
        while self._api_conns:
            await asyncio.sleep(0.01)
        if self._api_sweep is not None:
            self._api_sweep.cancel()
            self._api_sweep = None
        await super().close_all_connections()

    # ------------------------------------------------------------ per socket
    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        # an (host, port[, ...]) address is TCP over IP (a Unix socket's is a str);
        # cheaper than ``connection.family``, which builds an enum per call
        if not (self.lean or self.api) or self.ssl_options is not None or not isinstance(address, tuple):
            super()._handle_connection(connection, address)
            return
        connection.setblocking(False)
        # A client sends its head right after connecting, so under load it is
        # usually there at accept: peek at once, and register for readability
        # (and a timer) only when it is not (two epoll_ctl calls and a timer
        # handle less per connect).
        try:
            head = connection.recv(HEAD_MAX, socket.MSG_PEEK)
        except BlockingIOError:
            fd = connection.fileno()
            timer = self._loop.call_later(HEAD_WAIT, self._silent, fd)
            self._waiting[fd] = (connection, address, timer)
            self._loop.add_reader(fd, self._readable, fd)
            return
        except OSError:
            connection.close()
            return
        self._peeked(connection, address, head)

    def _silent(self, fd: int) -> None:
        entry = self._waiting.pop(fd, None)
        if entry is not None:
            self._loop.remove_reader(fd)
            super()._handle_connection(entry[0], entry[1])

    def _readable(self, fd: int) -> None:
        entry = self._waiting.pop(fd, None)
        self._loop.remove_reader(fd)
        if entry is None:
            return
        sock, address, timer = entry
        timer.cancel()
        try:
            head = sock.recv(HEAD_MAX, socket.MSG_PEEK)
        except BlockingIOError:
            head = b"?"  # nothing to peek after all: Tornado reads it the usual way
        except OSError:
            sock.close()
            return
        self._peeked(sock, address, head)

    def _peeked(self, sock: socket.socket, address: Any, head: bytes) -> None:
        if not head:
            sock.close()  # the peer left before saying anything
            return
        if not self._try_upgrade(sock, address, head) and not self._try_api(sock, address, head):
            super()._handle_connection(sock, address)

    def _to_tornado(self, sock: socket.socket, address: Any) -> None:
        super()._handle_connection(sock, address)

    def _try_api(self, sock: socket.socket, address: Any, head: bytes) -> bool:
        """Serve a server API connection on the lean path from a head it reads;
        False leaves the socket untouched for Tornado."""
        if self.api is None or not head.startswith(b"POST /api"):
            return False
        max_body = self.conn_params.max_body_size or self.max_buffer_size or 104857600  # Tornado's default
        conn = ApiConnection(self.ctx, self.api, sock, address, max_body, self._api_date, self._to_tornado, self._api_closed)
        if not conn.open(head):
            return False
        if not conn.closed:
            self._api_conns.add(conn)
            if self._api_sweep is None:
                self._api_sweep = self._loop.call_later(self._sweep_every(), self._sweep)
        self.api_connections += 1
        return True

    def _api_closed(self, conn: ApiConnection) -> None:
        self._api_conns.discard(conn)

    def _sweep_every(self) -> float:
        return min(60.0, self.api_idle_timeout / 2)

    def _sweep(self) -> None:
        """Close lean API connections idle longer than ``api_idle_timeout``."""
        self._api_sweep = None
        deadline = self._loop.time() - self.api_idle_timeout
        for conn in list(self._api_conns):
            if conn.idle and conn.last_active < deadline:
                conn.close_when_idle()
        if self._api_conns:
            self._api_sweep = self._loop.call_later(self._sweep_every(), self._sweep)

    def _try_upgrade(self, sock: socket.socket, address: Any, head: bytes) -> bool:
        """Open a lean WebSocket from a complete, acceptable head; False leaves
        the socket untouched for Tornado."""
        if not self.lean or not head.startswith(b"GET "):
            return False
        end = head.find(b"\r\n\r\n")
        if end < 0:
            return False
        parsed = parse_head(head[:end])
        if parsed is None or parsed.path != WS_PATH:
            return False
        ctx = self.ctx
        headers = parsed.headers
        host, allowed = headers.get("host", ""), ctx.options.allowed_origins
        if upgrade_refusal(headers, lambda origin: origin_allowed(origin, host, allowed)) is not None:
            return False
        if not ctx.limiter.admit_socket():
            return False
        try:
            taken = sock.recv(len(head))  # exactly what was peeked
        except OSError:
            sock.close()
            return True
        proxy = ctx.proxy
        if proxy is not None and proxy.config.http_headers:
            # the proxy forwards headers by the names the client gave them: Tornado's reading
            kept: Mapping[str, str] = HTTPHeaders.parse(head[:end].decode("latin-1").partition("\r\n")[2])
        else:
            kept = NO_HEADERS
        conn = lean_connection(
            ctx, headers["sec-websocket-key"], query_format(parsed.query), offered_subprotocols(headers),
            sys.intern(client_ip(headers, address[0])), taken[end + 4 :], kept,  # one str per address, not per socket
        )
        self.upgrades += 1
        self._attach(conn, sock)
        return True

    def _attach(self, conn: WSConnection, sock: socket.socket) -> None:
        """``loop.connect_accepted_socket`` without its coroutine, Task and waiter:
        the selector loop's transport is made directly (``_make_socket_transport``,
        an asyncio internal of CPython 3.8-3.13; docs/FASTPATH.md). It schedules
        ``connection_made`` and the first read itself. Another loop gets the
        public call."""
        make = getattr(self._loop, "_make_socket_transport", None)
        if make is None:  # (Tornado accepted it from a TCP listener: SOCK_STREAM)
            self.ctx.hub.spawn(adopt(conn, sock))
            return
        try:
            make(sock, conn)
        except OSError as e:
            log.info("lost a socket during the upgrade: %s", e)
            sock.close()
