"""The lean server API connection seen from a raw socket: keep-alive, hand-overs to Tornado, closing.

Parity tests run on both paths (``lean`` and ``tornado``: the door with the
lean API path off) and compare what a client sees; the rest are about the
lean path's own connection handling.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import orjson
import pytest

from handlers.front_door import FrontDoor
from tests.handlers.test_ws_conn import Raw
from tests.helpers.squall_process import serve_door, test_config
from tests.helpers.waiting import until

KEY = "conn-test-key"


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(api_key=KEY)


@pytest.fixture(params=[True, False], ids=["lean", "tornado"])
def both(request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, squall_app: Any) -> Iterator[FrontDoor]:
    yield from serve_door(io_loop, _unused_port, squall_app, lean_api=request.param)


def request(body: Any, path: str = "/api/publish", key: str = KEY, extra: str = "") -> bytes:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n{extra}"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


async def response(c: Raw) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers by lower-case name, body (Content-Length framed)."""
    head = (await c.head()).decode("latin-1")
    status_line, *lines = head[:-4].split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(c.reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return int(status_line.split(" ")[1]), headers, body


def publish(n: int) -> dict[str, Any]:
    return {"channel": "chat:lean", "data": {"n": n}}


async def history(port: int) -> list[int]:
    c = await Raw.connect(port)
    c.writer.write(request({"channel": "chat:lean", "limit": 100}, "/api/history"))
    status, _, body = await response(c)
    c.writer.close()
    assert status == 200, body
    return [p["data"]["n"] for p in orjson.loads(body)["result"]["publications"]]


@pytest.mark.gen_test
async def test_keep_alive_requests_are_served_in_order(both: FrontDoor, http_port: int) -> None:
    """Many requests on one connection each get their answer, in order, on both paths."""
    c = await Raw.connect(http_port)
    for i in range(5):
        c.writer.write(request(publish(i)))
        status, headers, body = await response(c)
        assert status == 200 and headers["content-type"] == "application/json", body
        assert headers["cache-control"] == "no-store" and "date" in headers
        assert "offset" in orjson.loads(body)["result"]
    c.writer.close()
    assert await history(http_port) == [0, 1, 2, 3, 4]
    assert (not both._connections) == (both.api is not None)  # Tornado's own connections
    assert both.api_connections == (2 if both.api is not None else 0)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "raw,status",
    [
        (request({"channel": "chat:x", "data": 1}, key="wrong"), 401),
        (request(b"{not json"), 400),
        (request(b"[1]"), 400),
        (request({}, "/api/nosuch"), 404),
        (request({"method": "publish"}, "/api"), 200),
    ],
    ids=["bad-key", "malformed", "not-object", "unknown-method", "legacy-missing-params"],
)
async def test_errors_match_tornados(both: FrontDoor, http_port: int, raw: bytes, status: int) -> None:
    """Refusals have the same status and body on both paths, and the connection stays usable."""
    c = await Raw.connect(http_port)
    c.writer.write(raw)
    got, _, body = await response(c)
    assert got == status, body
    assert "error" in orjson.loads(body)
    c.writer.write(request(publish(1)))
    assert (await response(c))[0] == 200
    c.writer.close()


@pytest.mark.gen_test
async def test_body_in_later_segments(http_server: FrontDoor, http_port: int) -> None:
    """A body sent after the head, in pieces, is read to its length and the call served."""
    c = await Raw.connect(http_port)
    raw = request(publish(7))
    cut = raw.index(b"\r\n\r\n") + 4
    c.writer.write(raw[:cut])
    await c.writer.drain()
    await asyncio.sleep(0.05)
    for i in range(cut, len(raw), 5):
        c.writer.write(raw[i : i + 5])
        await c.writer.drain()
        await asyncio.sleep(0.01)
    assert (await response(c))[0] == 200
    assert http_server.api_connections == 1 and not http_server._connections
    c.writer.close()
    assert await history(http_port) == [7]


@pytest.mark.gen_test
async def test_pipelined_requests_are_answered_in_order(http_server: FrontDoor, http_port: int) -> None:
    """Requests written back to back before any answer are each answered, in order."""
    c = await Raw.connect(http_port)
    c.writer.write(b"".join(request(publish(i)) for i in range(4)))
    offsets = [orjson.loads((await response(c))[2])["result"]["offset"] for _ in range(4)]
    assert offsets == sorted(offsets) and len(set(offsets)) == 4
    c.writer.close()
    assert await history(http_port) == [0, 1, 2, 3]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "second",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"%x\r\n%s\r\n0\r\n\r\n" % (len(orjson.dumps(publish(1))), orjson.dumps(publish(1)))),
    ],
    ids=["other-path", "chunked"],
)
async def test_a_request_it_cannot_read_goes_to_tornado(http_server: FrontDoor, http_port: int, second: bytes) -> None:
    """Mid-connection, a request the lean path does not read is Tornado's, and so is the rest."""
    c = await Raw.connect(http_port)
    c.writer.write(request(publish(0)))
    assert (await response(c))[0] == 200
    assert http_server.api_connections == 1 and not http_server._connections
    c.writer.write(second)
    assert (await response(c))[0] == 200
    assert len(http_server._connections) == 1 and not http_server._api_conns  # Tornado has it now
    c.writer.write(request(publish(2)))
    assert (await response(c))[0] == 200
    c.writer.close()
    expected = [0, 1, 2] if b"chunked" in second else [0, 2]
    assert await history(http_port) == expected


@pytest.mark.gen_test
async def test_expect_continue_is_tornados(http_server: FrontDoor, http_port: int) -> None:
    """``Expect: 100-continue`` is left to Tornado, which sends the 100 and serves the call."""
    c = await Raw.connect(http_port)
    raw = request(publish(3), extra="Expect: 100-continue\r\n")
    cut = raw.index(b"\r\n\r\n") + 4
    c.writer.write(raw[:cut])
    assert (await c.head()).startswith(b"HTTP/1.1 100 ")
    c.writer.write(raw[cut:])
    assert (await response(c))[0] == 200
    assert http_server.api_connections == 0
    c.writer.close()


@pytest.mark.gen_test
async def test_oversized_body_gets_tornados_answer(both: FrontDoor, http_port: int) -> None:
    """A Content-Length over the server's limit is refused as Tornado refuses it, on both paths."""
    c = await Raw.connect(http_port)
    limit = both.conn_params.max_body_size
    assert limit
    c.writer.write(f"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
    answer = await asyncio.wait_for(c.reader.read(), 5)  # Tornado answers and closes
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert both.api_connections == 0


@pytest.mark.gen_test
async def test_connection_close_is_honoured(http_server: FrontDoor, http_port: int) -> None:
    """``Connection: close``: the answer says so and the socket closes after it."""
    c = await Raw.connect(http_port)
    c.writer.write(request(publish(1), extra="Connection: close\r\n"))
    status, headers, _ = await response(c)
    assert status == 200 and headers["connection"] == "close"
    assert await c.eof()
    await until(lambda: not http_server._api_conns, what="the closed connection forgotten")


@pytest.mark.gen_test
async def test_peer_leaving_mid_body_or_idle_leaves_nothing(http_server: FrontDoor, http_port: int) -> None:
    """Connections whose peer leaves, idle or halfway through a body, are closed and forgotten."""
    idle, partial = await Raw.connect(http_port), await Raw.connect(http_port)
    idle.writer.write(request(publish(1)))
    assert (await response(idle))[0] == 200
    raw = request(publish(2))
    partial.writer.write(raw[: len(raw) - 3])
    await until(lambda: len(http_server._api_conns) == 2, what="two lean connections")
    idle.writer.close()
    partial.writer.close()
    await until(lambda: not http_server._api_conns, what="both forgotten")
    assert await history(http_port) == [1]  # the unfinished request was never made


@pytest.mark.gen_test
async def test_idle_connections_are_closed_after_the_timeout(http_server: FrontDoor, http_port: int) -> None:
    """A lean connection idle past ``api_idle_timeout`` is closed by the door's sweep."""
    http_server.api_idle_timeout = 0.1
    c = await Raw.connect(http_port)
    c.writer.write(request(publish(1)))
    assert (await response(c))[0] == 200
    assert await c.eof(timeout=5)
    assert not http_server._api_conns


@pytest.mark.gen_test
async def test_close_all_connections_lets_the_call_in_hand_finish(
    http_server: FrontDoor, http_port: int, squall_app: Any
) -> None:
    """Shutdown closes idle lean connections at once and busy ones after their answer."""
    idle, busy = await Raw.connect(http_port), await Raw.connect(http_port)
    idle.writer.write(request(publish(1)))
    assert (await response(idle))[0] == 200
    gate = asyncio.Event()
    publish_method = squall_app.api.methods["publish"]

    async def slow(params: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        return await publish_method(params)

    squall_app.api.methods["publish"] = slow
    busy.writer.write(request(publish(2)))
    await until(lambda: any(not c.idle for c in http_server._api_conns), what="the second call in hand")
    closing = asyncio.ensure_future(http_server.close_all_connections())
    assert await idle.eof()
    assert not closing.done()
    gate.set()
    status, headers, _ = await response(busy)
    assert status == 200 and headers["connection"] == "close"
    await asyncio.wait_for(closing, 5)
    assert await busy.eof()
