"""A real HTTP backend for proxy and webhook tests, written to Centrifugo's
documented proxy schema (centrifugal.dev/docs/server/proxy), not to Squall's code.

It is a Tornado app on 127.0.0.1 on a free port. Every POST is recorded
(path, headers, parsed JSON body); the answer is chosen per test by
``backend.answer(path, fn)`` where ``fn(body) -> Answer`` (status, JSON or
raw bytes, delay). Unset paths answer ``{"result": {}}``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest
import tornado.httpserver
import tornado.web
from tornado.netutil import bind_sockets


@dataclass
class Answer:
    body: Any = field(default_factory=lambda: {"result": {}})  # dict -> JSON; bytes sent as they are
    status: int = 200
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


class Backend:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, Callable[[Any], Answer]] = {}
        self.port = 0
        self.inflight = 0  # requests being answered now
        self.max_inflight = 0  # the most at once
        self._server: tornado.httpserver.HTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, fn: Callable[[Any], Answer]) -> None:
        self.answers[path] = fn

    def got(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def start(self, port: int = 0) -> None:
        """Listen (again: on the same port after :meth:`stop`, to end an outage)."""
        backend = self

        class Handler(tornado.web.RequestHandler):
            async def post(self) -> None:
                raw = self.request.body
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.request.path
                backend.received.append(Received(path, dict(self.request.headers), body, raw))
                ans = backend.answers.get(path, lambda b: Answer())(body)
                backend.inflight += 1
                backend.max_inflight = max(backend.max_inflight, backend.inflight)
                try:
                    if ans.delay:
                        await asyncio.sleep(ans.delay)
                finally:
                    backend.inflight -= 1
                self.set_status(ans.status)
                if isinstance(ans.body, (bytes, str)):
                    self.finish(ans.body)
                else:
                    self.set_header("Content-Type", "application/json")
                    self.finish(json.dumps(ans.body))

            def check_xsrf_cookie(self) -> None:
                pass

        app = tornado.web.Application([(r"/.*", Handler)])
        sockets = bind_sockets(port, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening and close the connections still open: an outage."""
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            await server.close_all_connections()


@pytest.fixture
def backend(io_loop: Any) -> Iterator[Backend]:
    """A recording backend on pytest-tornado's loop (start it before Squall's fixtures use its URL)."""
    b = Backend()
    b.start()
    yield b
    io_loop.run_sync(b.stop)
