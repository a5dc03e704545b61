"""A keep-alive connection carrying server API calls, served without Tornado's
HTTP machinery (the front door hands it over; docs/FASTPATH.md).

Why: a backend publishing one message per request spent ~320 µs of server
CPU per call in Tornado's HTTP/1.1 path (IOStream, HTTP1Connection, header
object, routing, RequestHandler, finish) around a publish that costs ~40 µs.

How it stays exact: every request is first *peeked at* (``MSG_PEEK``), and
only a complete head that :func:`handlers.api_head.read_api_head` reads is
consumed here. Any other request, at any point of the connection's life,
goes to Tornado with nothing of it consumed (``handoff``), and Tornado serves
that request and the rest of the connection as it would have without the
door. The answer itself is :func:`handlers.api.answer`, the one Tornado's
``ApiHandler`` gives. One request at a time: a client that pipelines waits
in the socket buffer until the response before is written.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Callable

from channels import errors
from handlers.api import answer, error_body
from handlers.api_head import ApiHead, HeadReader, HttpDate, api_response
from handlers.api_methods import ServerApi
from handlers.context import Context
from handlers.ws_handshake import client_ip

log = logging.getLogger("squall.api")
access_log = logging.getLogger("tornado.access")  # the lines Tornado's path writes for the same requests

HEAD_MAX = 65536  # a longer head is Tornado's to read (and refuse)
READ_MAX = 262144


class ApiConnection:
    """One client connection of the lean API path; see the module docstring."""

    __slots__ = (
        "_ctx", "_api", "_loop", "_sock", "_fd", "_address", "_heads", "_date", "_handoff", "_closed_cb",
        "_head", "_body", "_busy", "_reading", "_out", "_closing", "_task", "last_active", "closed",
    )

    def __init__(
        self,
        ctx: Context,
        api: ServerApi,
        sock: socket.socket,
        address: Any,
        max_body: int,
        date: HttpDate,
        handoff: Callable[[socket.socket, Any], None],
        closed: Callable[[ApiConnection], None],
    ) -> None:
        self._ctx = ctx
        self._api = api
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._address = address
        self._heads = HeadReader(max_body)
        self._date = date
        self._handoff = handoff  # gives the socket, untouched since the last response, to Tornado
        self._closed_cb = closed
        self._head: ApiHead | None = None  # the request whose body is still arriving
        self._body = bytearray()
        self._busy = False  # a request is being answered
        self._reading = False  # our reader is registered
        self._out = b""  # response bytes the socket did not take yet
        self._closing = False  # close once the response in hand is written
        self._task: asyncio.Task[None] | None = None
        self.last_active = self._loop.time()
        self.closed = False

    def open(self, peeked: bytes) -> bool:
        """Serve from the first request on when its head (``peeked``, nothing
        consumed) is one this path reads; False leaves the socket to the caller."""
        if not self._take(peeked, first=True):
            return False
        if not self.closed and not self._busy:
            self._resume()
        return True

    @property
    def idle(self) -> bool:
        return not self._busy and self._head is None and not self._out

    def close_when_idle(self) -> None:
        """Shutdown: close now if idle, else after the response in hand."""
        if self.idle:
            self._close()
        else:
            self._closing = True

    # ------------------------------------------------------------ reading
    def _resume(self) -> None:
        if not self._reading and not self.closed:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _readable(self) -> None:
        if self._busy:  # pipelined bytes or the peer's FIN: they wait for the response
            self._pause()
            return
        if self._head is not None:
            self._read_body()
            return
        try:
            peeked = self._sock.recv(HEAD_MAX, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            self._close()
            return
        if not peeked:
            self._close()
            return
        self._take(peeked, first=False)

    def _take(self, peeked: bytes, first: bool) -> bool:
        """Consume and start one request from ``peeked``; hand the connection
        to Tornado (False on the first request) when this path cannot read it."""
        end = peeked.find(b"\r\n\r\n")
        head = self._heads.read(peeked[:end]) if end >= 0 else None
        if head is None:
            if not first:
                self._pause()
                self._forget()
                self._handoff(self._sock, self._address)
            return False
        start = end + 4
        try:
            data = self._sock.recv(min(len(peeked), start + head.length))  # bytes already peeked
        except OSError:
            self._close()
            return True
        body = data[start:]
        if len(body) < head.length:
            self._head, self._body = head, bytearray(body)
            return True
        self._dispatch(head, body)
        return True

    def _read_body(self) -> None:
        head = self._head
        assert head is not None
        try:
            data = self._sock.recv(min(READ_MAX, head.length - len(self._body)))
        except BlockingIOError:
            return
        except OSError:
            self._close()
            return
        if not data:
            self._close()
            return
        self._body += data
        if len(self._body) == head.length:
            self._head = None
            body, self._body = bytes(self._body), bytearray()
            self._dispatch(head, body)

    # ------------------------------------------------------------ answering
    def _dispatch(self, head: ApiHead, body: bytes) -> None:
        self._busy = True
        self._task = self._loop.create_task(self._serve(head, body))

    async def _serve(self, head: ApiHead, body: bytes) -> None:
        started = self._loop.time()
        peer = client_ip(head.headers, self._address[0])
        try:
            status, payload = await answer(self._ctx, self._api, head.method, head.headers, body, peer)
        except Exception:  # a bug in answer itself: Tornado would answer 500 too
            log.exception("API request failed")
            status, payload = 500, error_body(errors.InternalError())
        self._task = None
        self._busy = False
        self.last_active = self._loop.time()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if access_log.isEnabledFor(level):  # Tornado's access line for the same request
            path = "/api/" + head.method if head.method else "/api"
            access_log.log(level, "%d POST %s (%s) %.2fms", status, path, peer, 1000.0 * (self.last_active - started))
        if self.closed:
            return
        close = head.close or self._closing
        self._write(api_response(status, payload, self._date.at(time.time()), close))
        if close:
            self._closing = True
            if not self._out:
                self._close()
            return
        self._resume()

    def _write(self, data: bytes) -> None:
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close()
            return
        if sent < len(data):
            self._out = data[sent:]
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._close()
            return
        self._out = self._out[sent:]
        if not self._out:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._close()

    # ------------------------------------------------------------ closing
    def _forget(self) -> None:
        self.closed = True
        self._closed_cb(self)

    def _close(self) -> None:
        if self.closed:
            return
        self._pause()
        if self._out:
            self._loop.remove_writer(self._fd)
            self._out = b""
        self._forget()
        self._sock.close()
