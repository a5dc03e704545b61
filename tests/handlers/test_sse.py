"""Unidirectional SSE at /connection/uni_sse, read by a plain HTTP client."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from handlers.auth import make_token
from handlers.sse import positions_from_event_id
from tests.helpers.squall_process import test_config

SECRET = "sse-test-secret-long-enough-for-hs256!"


class UniStream:
    """A raw HTTP/1.1 client for streaming responses (chunked), SSE or NDJSON.

    Socket buffers can be made small so a test can stop reading and see the
    server's queue fill (the slow-reader tests).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sse: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.sse = sse
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.last_id = ""
        self.pings = 0
        self._buf = b""
        self._chunked = False
        self._ended = False

    @classmethod
    async def open(
        cls,
        port: int,
        path: str,
        *,
        method: str = "GET",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        rcvbuf: int = 0,
    ) -> "UniStream":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=max(rcvbuf, 16384))
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        s = cls(reader, writer, sse="uni_sse" in path)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *hdrs = head.decode().split("\r\n")
        s.status = int(status_line.split()[1])
        for h in hdrs:
            if ":" in h:
                k, _, v = h.partition(":")
                s.headers[k.strip().lower()] = v.strip()
        s._chunked = s.headers.get("transfer-encoding", "") == "chunked"
        if not s._chunked:
            n = int(s.headers.get("content-length", "0"))
            s.body = await asyncio.wait_for(reader.readexactly(n), 5) if n else b""
            s._buf = s.body  # a whole response (an error, or a stream that ended at once)
            s._ended = True
        return s

    async def _more(self) -> bool:
        if self._ended:
            return False
        size_line = await self.reader.readline()
        if not size_line:
            self._ended = True
            return False
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            self._ended = True
            return False
        self._buf += await self.reader.readexactly(size)
        await self.reader.readexactly(2)
        return True

    async def message(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Next non-ping message; None once the response ended."""
        return await asyncio.wait_for(self._message(), timeout)

    async def _message(self) -> dict[str, Any] | None:
        while True:
            sep = b"\n\n" if self.sse else b"\n"
            while sep in self._buf:
                block, _, self._buf = self._buf.partition(sep)
                msg = self._parse(block)
                if msg is None:
                    continue
                if msg == {}:
                    self.pings += 1
                    continue
                self._take_ids()
                return msg
            if not await self._more():
                return None

    def _take_ids(self) -> None:
        """Consume id-only SSE events already received (they follow a batch)."""
        while self.sse and b"\n\n" in self._buf:
            block, _, rest = self._buf.partition(b"\n\n")
            if not block.startswith(b"id:"):
                return
            self._parse(block)
            self._buf = rest

    def _parse(self, block: bytes) -> dict[str, Any] | None:
        if not self.sse:
            return orjson.loads(block) if block.strip() else None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"data":
                data.append(value)
            elif field == b"id":
                self.last_id = value.decode()
        return orjson.loads(b"\n".join(data)) if data else None

    async def until(self, pred: Any, limit: int = 200, timeout: float = 5.0) -> dict[str, Any]:
        for _ in range(limit):
            msg = await self.message(timeout)
            assert msg is not None, "stream ended"
            if pred(msg):
                return msg
        raise AssertionError("no matching message")

    def close(self) -> None:
        self.writer.close()


def sse_path(request: dict[str, Any]) -> str:
    return "/connection/uni_sse?cf_connect=" + quote(orjson.dumps(request).decode())


async def wait_clients(hub: Any, n: int, timeout: float = 5.0) -> None:
    """Wait (bounded) until the hub holds ``n`` clients."""
    deadline = time.monotonic() + timeout
    while hub.num_clients != n:
        assert time.monotonic() < deadline, f"hub has {hub.num_clients} clients, expected {n}"
        await asyncio.sleep(0.01)


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(token_hmac_secret_key=SECRET)


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


@pytest.mark.gen_test
async def test_connect_message_then_publications(http_server, http_port, hub):
    """The first event is the connect message listing subs, then unwrapped pub pushes."""
    s = await UniStream.open(http_port, sse_path({"subs": {"chat:s": {}, "live:s": {}}}))
    assert s.status == 200 and s.headers["content-type"].startswith("text/event-stream")
    connect = (await s.message())["connect"]
    assert set(connect["subs"]) == {"chat:s", "live:s"} and "pong" not in connect
    assert connect["subs"]["chat:s"]["offset"] == 0 and connect["subs"]["chat:s"]["epoch"]
    await hub.publish("chat:s", {"v": 1})
    await hub.publish("live:s", "x")
    m1, m2 = await s.message(), await s.message()
    assert m1 == {"channel": "chat:s", "pub": {"data": {"v": 1}, "offset": 1, "time": m1["pub"]["time"]}}
    assert m2["channel"] == "live:s" and m2["pub"]["data"] == "x"
    s.close()


@pytest.mark.gen_test
async def test_last_event_id_recovers_exactly_the_missed(http_server, http_port, hub):
    """After a dropped stream, Last-Event-ID brings back exactly the publications missed."""
    path = sse_path({"subs": {"chat:r": {}, "chat:r2": {}}})
    s = await UniStream.open(http_port, path)
    await s.message()
    for i in range(1, 4):
        await hub.publish("chat:r", i)
    await hub.publish("chat:r2", "a")
    got = [await s.message() for _ in range(4)]
    assert [m["pub"]["offset"] for m in got] == [1, 2, 3, 1]
    last = s.last_id
    assert positions_from_event_id(last)["chat:r"]["offset"] == 3
    s.close()
    await wait_clients(hub, 0)
    for i in range(4, 8):
        await hub.publish("chat:r", i)
    s2 = await UniStream.open(http_port, path, headers={"Last-Event-ID": last})
    sub = (await s2.message())["connect"]["subs"]["chat:r"]
    assert sub["recovered"] is True and sub["was_recovering"] is True
    assert [p["data"] for p in sub["publications"]] == [4, 5, 6, 7]
    await hub.publish("chat:r", 8)
    nxt = await s2.message()
    assert nxt["pub"]["offset"] == 8 and nxt["pub"]["data"] == 8
    assert positions_from_event_id(s2.last_id)["chat:r"]["offset"] == 8
    s2.close()


@pytest.mark.gen_test
async def test_last_event_id_after_epoch_change_is_not_recovered(http_server, http_port, hub):
    """A position from another stream epoch yields recovered=false, never a silent gap."""
    await hub.publish("chat:e", 1)
    last = orjson.dumps({"chat:e": [1, "not-the-epoch"]}).decode()
    s = await UniStream.open(http_port, sse_path({"subs": {"chat:e": {}}}), headers={"Last-Event-ID": last})
    sub = (await s.message())["connect"]["subs"]["chat:e"]
    assert sub["was_recovering"] is True and sub["recovered"] is False
    s.close()


@pytest.mark.gen_test
async def test_post_with_json_body(http_server, http_port, hub):
    """POST with the connect request as the body works like GET with cf_connect."""
    body = orjson.dumps({"subs": {"chat:p": {}}})
    s = await UniStream.open(http_port, "/connection/uni_sse", method="POST", body=body)
    assert "chat:p" in (await s.message())["connect"]["subs"]
    await hub.publish("chat:p", "hello")
    assert (await s.message())["pub"]["data"] == "hello"
    s.close()


@pytest.mark.gen_test
async def test_token_channels_and_forbidden_subs(http_server, http_port, hub):
    """The token's channels claim subscribes server-side; a forbidden sub gets an unsubscribe push."""
    token = make_token(SECRET, "ann", channels=["plain"])
    s = await UniStream.open(http_port, sse_path({"token": token, "subs": {"chat:t": {}, "other": {}}}))
    connect = (await s.message())["connect"]
    assert set(connect["subs"]) == {"plain", "chat:t"}
    refused = await s.message()
    assert refused["channel"] == "other" and refused["unsubscribe"]["reason"] == "permission denied"
    await hub.publish("plain", 1)
    assert (await s.message())["channel"] == "plain"
    s.close()


@pytest.mark.gen_test
async def test_invalid_token_disconnects(http_server, http_port):
    """A bad token ends the stream with a disconnect message (3500) and no connect."""
    s = await UniStream.open(http_port, sse_path({"token": "not.a.jwt"}))
    msg = await s.message()
    assert msg == {"disconnect": {"code": 3500, "reason": "invalid token"}}
    assert await s.message() is None


@pytest.mark.gen_test
async def test_server_disconnect_message_ends_stream(http_server, http_port, hub):
    """A server-side disconnect sends {"disconnect": ...} and ends the response."""
    token = make_token(SECRET, "bo")
    s = await UniStream.open(http_port, sse_path({"token": token}))
    await s.message()
    await hub.send_control("disconnect", user="bo", code=4001, reason="go away")
    assert await s.message() == {"disconnect": {"code": 4001, "reason": "go away"}}
    assert await s.message() is None
    await wait_clients(hub, 0)


@pytest.mark.gen_test
async def test_server_refresh_message_carries_the_new_ttl(http_server, http_port, hub):
    """A server-side refresh sends {"refresh": {"expires", "ttl"}} down the stream, which stays open."""
    token = make_token(SECRET, "cy", ttl=30)
    s = await UniStream.open(http_port, sse_path({"token": token}))
    await s.message()
    await hub.send_control("refresh", user="cy", expire_at=int(time.time()) + 600)
    msg = await s.message()
    assert msg is not None and msg["refresh"]["expires"] is True
    assert 590 <= msg["refresh"]["ttl"] <= 600
    await hub.send_control("disconnect", user="cy", code=4001, reason="done")
    assert await s.message() == {"disconnect": {"code": 4001, "reason": "done"}}


@pytest.mark.gen_test
async def test_bad_request_and_foreign_origin(http_server, http_port):
    """Malformed cf_connect is 400; a foreign Origin is 403; the same origin is served."""
    s = await UniStream.open(http_port, "/connection/uni_sse?cf_connect=%7Bnope")
    assert s.status == 400
    s = await UniStream.open(http_port, sse_path({}), headers={"Origin": "http://evil.example"})
    assert s.status == 403
    s = await UniStream.open(http_port, sse_path({}), headers={"Origin": f"http://127.0.0.1:{http_port}"})
    assert s.status == 200 and "connect" in (await s.message())
    s.close()


class TestPings:
    """Uni clients get pings and are never dropped for not answering them."""

    @pytest.fixture
    def squall_config(self) -> dict[str, Any]:
        return test_config(ping_interval=0.2, pong_timeout=0.1)

    @pytest.mark.gen_test
    async def test_pings_without_pongs_keep_the_stream(self, http_server, http_port, squall_app):
        """Several pings arrive and the connection survives past pong_timeout."""
        s = await UniStream.open(http_port, sse_path({"subs": {"chat:ping": {}}}))
        await s.message()
        deadline = time.monotonic() + 10
        while s.pings < 3:
            assert time.monotonic() < deadline, "no pings"
            try:
                await s.message(timeout=0.3)
            except asyncio.TimeoutError:
                pass
        await squall_app.ctx.hub.publish("chat:ping", "still here")
        assert (await s.message())["pub"]["data"] == "still here"
        s.close()


@pytest.mark.gen_test
async def test_closed_streams_give_back_their_connection_counts(http_server, http_port, hub, squall_app):
    """A stream that ends frees its place in the per-IP and total connection counts."""
    limiter = squall_app.ctx.limiter
    streams = [await UniStream.open(http_port, sse_path({"subs": {"chat:c": {}}})) for _ in range(3)]
    for s in streams:
        await s.message()
    assert limiter.total == 3
    for s in streams:
        s.close()
    await wait_clients(hub, 0)
    deadline = time.monotonic() + 5
    while limiter.total and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert limiter.total == 0
    assert not limiter._ips
