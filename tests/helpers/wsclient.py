"""A raw protocol client for tests: sends exact bytes, returns decoded replies."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
from tornado.websocket import WebSocketClientConnection, websocket_connect


class RawClient:
    def __init__(self, conn: WebSocketClientConnection, fmt: str = "json") -> None:
        self.conn = conn
        self.fmt = fmt
        self.next_id = 0
        self.pushes: list[dict[str, Any]] = []
        self.pings = 0
        self._pending: list[dict[str, Any]] = []
        self.last_connect: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, fmt: str = "json", **kw: Any) -> "RawClient":
        if fmt != "json":
            url += ("&" if "?" in url else "?") + f"format={fmt}"
        conn = await websocket_connect(url, **kw)
        return cls(conn, fmt)

    def encode(self, obj: dict[str, Any]) -> bytes:
        return msgpack.packb(obj) if self.fmt == "msgpack" else orjson.dumps(obj)

    async def send_raw(self, data: bytes | str, binary: bool | None = None) -> None:
        if binary is None:
            binary = isinstance(data, bytes) and self.fmt == "msgpack"
        if isinstance(data, bytes) and not binary:
            data = data.decode()
        await self.conn.write_message(data, binary=binary)

    async def send(self, obj: dict[str, Any]) -> None:
        await self.send_raw(self.encode(obj))

    def _decode(self, msg: bytes | str) -> list[dict[str, Any]]:
        if self.fmt == "msgpack":
            assert isinstance(msg, bytes)
            return list(msgpack.Unpacker(raw=False) if False else _unpack_all(msg))
        if isinstance(msg, bytes):
            msg = msg.decode()
        return [orjson.loads(line) for line in msg.split("\n") if line.strip()]

    async def read(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Next reply or push; None when the server closed the connection."""
        while not self._pending:
            msg = await asyncio.wait_for(self.conn.read_message(), timeout)
            if msg is None:
                return None
            for obj in self._decode(msg):
                if obj == {}:
                    self.pings += 1
                    continue
                self._pending.append(obj)
        return self._pending.pop(0)

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """Send a command and return its reply; pushes seen meanwhile are kept."""
        self.next_id += 1
        cid = self.next_id
        await self.send({"id": cid, method: params or {}})
        while True:
            obj = await self.read(timeout)
            if obj is None:
                raise ConnectionError(f"closed: {self.close_code} {self.close_reason}")
            if obj.get("id") == cid:
                return obj
            self.pushes.append(obj)

    async def next_push(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.pushes:
            return self.pushes.pop(0)
        obj = await self.read(timeout)
        if obj is None:
            raise ConnectionError(f"closed: {self.close_code} {self.close_reason}")
        return obj

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        async def drain() -> None:
            while await self.conn.read_message() is not None:
                pass

        await asyncio.wait_for(drain(), timeout)
        return self.close_code, self.close_reason

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    @property
    def close_reason(self) -> str | None:
        return self.conn.close_reason

    def close(self) -> None:
        self.conn.close()


def _unpack_all(data: bytes) -> list[Any]:
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    return list(u)


async def connected(url: str, fmt: str = "json", **connect: Any) -> RawClient:
    c = await RawClient.open(url, fmt)
    reply = await c.call("connect", connect)
    assert "connect" in reply, reply
    c.last_connect = reply
    return c
