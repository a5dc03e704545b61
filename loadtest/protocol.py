"""Centrifugo client protocol v2 (JSON) on top of :mod:`loadtest.websocket`.

Replies are matched to commands by ``id`` through plain callbacks, so a
publish costs no Future; pushes go straight to a :class:`PushSink`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Protocol

import orjson

from loadtest.websocket import WebSocketClient, open_websocket

Reply = dict[str, Any]
ReplyCallback = Callable[[Reply], None]


class CommandError(Exception):
    """An error reply ``{"error": {"code", "message"}}`` to a command."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"error {code}: {message}")


class PushSink(Protocol):
    """Where a connection hands what the server pushes."""

    def on_pub(self, conn: "Conn", channel: str, pub: dict[str, Any], now_us: int) -> None: ...

    def on_disconnect(self, conn: "Conn", code: int, reason: str) -> None: ...


class Conn:
    """One Centrifugo client connection; survives reconnects (state is kept)."""

    __slots__ = ("index", "sink", "ws", "pong", "_next_id", "_pending", "streams", "offsets", "epochs", "subscribed", "leaving")

    def __init__(self, index: int, sink: PushSink) -> None:
        self.index = index
        self.sink = sink
        self.ws: WebSocketClient | None = None
        self.pong = False
        self._next_id = 0
        self._pending: dict[int, ReplyCallback] = {}
        # (channel, publisher) -> [next expected seq, set of skipped seqs or None]
        self.streams: dict[tuple[str, str], list[Any]] = {}
        # channel -> offset of the last publication seen / stream epoch, for recovery
        self.offsets: dict[str, int] = {}
        self.epochs: dict[str, str] = {}
        # channels this connection was ever subscribed to (each counts once as a subscriber)
        self.subscribed: set[str] = set()
        # set when we close on purpose, so the close is not counted as an error
        self.leaving = False

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def open(
        self, host: str, port: int, path: str, token: str, source: str | None, timeout: float
    ) -> Reply:
        """WebSocket handshake then the connect command; returns the connect result."""
        self.leaving = False
        self.ws = await open_websocket(
            host, port, path, self._on_message, self._on_close, source=source, timeout=timeout
        )
        body: dict[str, Any] = {"name": "squall-loadtest"}
        if token:
            body["token"] = token
        res = await self.call("connect", body, timeout)
        self.pong = bool(res.get("pong"))
        return res

    def send(self, method: str, body: dict[str, Any], callback: ReplyCallback) -> None:
        """Send one command; ``callback`` gets the whole reply (result or error)."""
        if self.ws is None or self.ws.closed:
            callback({"error": {"code": -1, "message": "connection closed"}})
            return
        self._next_id += 1
        cid = self._next_id
        self._pending[cid] = callback
        self.ws.send_text(orjson.dumps({"id": cid, method: body}))

    async def call(
        self, method: str, body: dict[str, Any], timeout: float = 10.0, on_result: ReplyCallback | None = None
    ) -> Reply:
        """Send a command and wait for its result; raise CommandError on an error reply.

        ``on_result`` runs as the reply is parsed, before any later push of the
        same read is handled: a subscribe reply's recovered publications must
        be seen before the live ones that follow them.
        """
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(reply: Reply) -> None:
            if on_result is not None and "error" not in reply:
                on_result(reply.get(method) or {})
            if not fut.done():
                fut.set_result(reply)

        self.send(method, body, done)
        async with asyncio.timeout(timeout):
            reply = await fut
        err = reply.get("error")
        if err is not None:
            raise CommandError(int(err.get("code", 0)), str(err.get("message", "")))
        result: Reply = reply.get(method) or {}
        return result

    def close(self) -> None:
        """Close on purpose; commands still waiting for a reply fail at once
        (code -1) instead of waiting out their timeout."""
        self.leaving = True
        if self.ws is not None:
            self.ws.close()
        pending, self._pending = self._pending, {}
        for cb in pending.values():
            cb({"error": {"code": -1, "message": "connection closed by the load tester"}})

    # ---------------------------------------------------------------- inbound
    def _on_message(self, payload: bytes) -> None:
        now_us = time.time_ns() // 1000
        for line in payload.split(b"\n"):
            if not line:
                continue
            msg = orjson.loads(line)
            if not msg:  # server ping
                if self.pong and self.ws is not None:
                    self.ws.send_text(b"{}")
                continue
            cid = msg.get("id")
            if cid:
                cb = self._pending.pop(cid, None)
                if cb is not None:
                    cb(msg)
                continue
            push = msg.get("push")
            if push is None:
                continue
            pub = push.get("pub")
            if pub is not None:
                self.sink.on_pub(self, push.get("channel", ""), pub, now_us)
            elif "disconnect" in push:
                d = push["disconnect"]
                self.sink.on_disconnect(self, int(d.get("code", 0)), str(d.get("reason", "")))
                self.leaving = True  # the close that follows is the same event

    def _on_close(self, code: int, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for cb in pending.values():
            cb({"error": {"code": -2, "message": f"disconnected {code}"}})
        if not self.leaving:
            self.sink.on_disconnect(self, code, reason)
