"""Bidirectional emulation: /connection/http_stream, /connection/sse and POST /emulation (in process)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from handlers.emulation import parse_request
from tests.handlers.test_sse import UniStream, wait_clients


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


def commands(*cmds: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(c) for c in cmds)


async def post(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        r = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/emulation", method="POST", body=body,
            headers={"Content-Type": "application/json", **(headers or {})}, raise_error=True,
        )
        return r.code, r.body.decode()
    except HTTPClientError as e:
        return e.code, e.response.body.decode() if e.response is not None else ""


async def emulate(port: int, connect: dict[str, Any], *cmds: dict[str, Any]) -> tuple[int, str]:
    req = {"session": connect["session"], "node": connect["node"], "data": commands(*cmds).decode()}
    return await post(port, orjson.dumps(req))


async def open_stream(port: int, transport: str) -> tuple[UniStream, dict[str, Any]]:
    first = commands({"id": 1, "connect": {}})
    if transport == "sse":
        s = await UniStream.open(port, "/connection/sse?cf_connect=" + quote(first.decode()))
        s.sse = True
    else:
        s = await UniStream.open(port, "/connection/http_stream", method="POST", body=first,
                                 headers={"Content-Type": "application/json"})
    assert s.status == 200
    reply = await s.message()
    assert reply is not None and reply["id"] == 1
    return s, reply["connect"]


@pytest.mark.gen_test
@pytest.mark.parametrize("transport", ["http_stream", "sse"])
async def test_commands_by_emulation_replies_on_the_stream(http_server, http_port, hub, transport):
    """The connect reply names session and node; POSTed commands answer on the stream; pushes arrive."""
    s, connect = await open_stream(http_port, transport)
    assert connect["session"] and connect["node"] == hub.node_id and connect["session"] != connect["client"]
    assert await emulate(http_port, connect, {"id": 2, "subscribe": {"channel": "chat:e"}}) == (204, "")
    reply = await s.message()
    assert reply["id"] == 2 and "epoch" in reply["subscribe"]
    await hub.publish("chat:e", {"x": 1})
    push = await s.message()
    assert push == {"push": {"channel": "chat:e", "pub": {"data": {"x": 1}, "offset": 1, "time": push["push"]["pub"]["time"]}}}
    assert await emulate(http_port, connect, {"id": 3, "publish": {"channel": "chat:e", "data": 2}},
                         {"id": 4, "history": {"channel": "chat:e", "limit": 5}}) == (204, "")
    got = [await s.message() for _ in range(3)]
    assert {"id": 3, "publish": {}} in got
    assert [p["data"] for p in next(m for m in got if m.get("id") == 4)["history"]["publications"]] == [{"x": 1}, 2]
    s.close()
    await wait_clients(hub, 0)


@pytest.mark.gen_test
async def test_bad_emulation_requests_get_clear_errors(http_server, http_port, hub, caplog):
    """Malformed JSON or protobuf 400, unknown node 404, oversized 413; an unknown session is dropped (204)."""
    s, connect = await open_stream(http_port, "http_stream")
    assert await post(http_port, b"{not json") == (400, "body must be JSON")
    assert await post(http_port, b"[1]") == (400, "body must be a JSON object")
    assert await post(http_port, orjson.dumps({"node": hub.node_id, "data": "{}"})) == (400, "session required")
    assert await post(http_port, orjson.dumps({"session": "x", "data": "{}"})) == (400, "node required")
    bad = {"session": connect["session"], "node": hub.node_id, "data": {"id": 2}}
    assert (await post(http_port, orjson.dumps(bad)))[0] == 400
    assert await post(http_port, orjson.dumps({"session": "x", "node": "nope", "data": "{}"})) == (404, "unknown node")
    big = orjson.dumps({"session": "x", "node": hub.node_id, "data": "x" * 70000})
    assert await post(http_port, big) == (413, "emulation request too large")
    # protobuf EmulationRequest: node "x" only; then a truncated one
    octet = {"Content-Type": "application/octet-stream"}
    assert await post(http_port, b"\x0a\x01x", octet) == (400, "session required")
    assert (await post(http_port, b"\x0a\x05x", octet))[0] == 400
    with caplog.at_level(logging.INFO, "squall.emulation"):
        unknown = {"session": "no-such-session", "node": hub.node_id, "data": '{"id":9,"ping":{}}'}
        assert await post(http_port, orjson.dumps(unknown)) == (204, "")
    assert "unknown session" in caplog.text
    # the session is unharmed by all of that
    assert await emulate(http_port, connect, {"id": 5, "ping": {}}) == (204, "")
    assert await s.message() == {"id": 5, "ping": {}}
    s.close()


@pytest.mark.gen_test
async def test_malformed_command_disconnects_with_a_code(http_server, http_port, hub):
    """A command batch that is not JSON ends the session with 3501 as on WebSocket."""
    s, connect = await open_stream(http_port, "http_stream")
    req = {"session": connect["session"], "node": connect["node"], "data": "{broken"}
    assert (await post(http_port, orjson.dumps(req)))[0] == 204
    msg = await s.message()
    assert msg["push"]["disconnect"]["code"] == 3501
    assert await s.message() is None  # the response ended
    await wait_clients(hub, 0)


@pytest.mark.gen_test
async def test_stream_refuses_what_cannot_start_a_session(http_server, http_port, hub):
    """No connect command 400, oversized 413, protobuf on SSE 415, a first command other than connect 3501."""
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST")
    assert s.status == 400 and s.body == b"no connect command"
    s = await UniStream.open(http_port, "/connection/sse")
    assert s.status == 400
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST", body=b"x" * 70000)
    assert s.status == 413
    s = await UniStream.open(http_port, "/connection/sse", method="POST", body=b"\x01",
                             headers={"Content-Type": "application/octet-stream"})
    assert s.status == 415  # SSE is JSON only
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST",
                             body=commands({"id": 1, "subscribe": {"channel": "chat:x"}}))
    assert s.status == 200
    assert (await s.message())["push"]["disconnect"]["code"] == 3501
    assert hub.num_clients == 0


@pytest.mark.gen_test
async def test_client_vanishing_mid_stream_leaves_nothing(http_server, http_port, hub, caplog):
    """A stream dropped by the client: its subscriptions, client and session id are all gone."""
    s, connect = await open_stream(http_port, "sse")
    await emulate(http_port, connect, {"id": 2, "subscribe": {"channel": "chat:v"}})
    await s.message()
    assert hub.num_clients == 1 and hub.num_channels == 1
    s.close()
    await wait_clients(hub, 0)
    assert hub.num_channels == 0
    with caplog.at_level(logging.INFO, "squall.emulation"):
        assert (await emulate(http_port, connect, {"id": 3, "ping": {}}))[0] == 204
    assert "unknown session" in caplog.text


def test_parse_request_reads_centrifuge_js_form() -> None:
    """The JSON body centrifuge-js sends: data is the JSON protocol frame as a string."""
    body = json.dumps({"session": "s", "node": "n", "data": '{"id":2,"ping":{}}\n{"id":3,"ping":{}}'}).encode()
    assert parse_request(body) == ("n", "s", b'{"id":2,"ping":{}}\n{"id":3,"ping":{}}')
    with pytest.raises(ValueError, match="data must be a string"):
        parse_request(b'{"session":"s","node":"n"}')


@pytest.mark.gen_test
async def test_protobuf_http_stream_and_emulation(http_server, http_port, hub):
    """application/octet-stream: varint-delimited protobuf both ways, commands by protobuf EmulationRequest."""
    from handlers.codec_protobuf import PROTOBUF, varint
    from handlers.proto import client_pb2 as pb

    def command(**kw: Any) -> bytes:
        body = pb.Command(**kw).SerializeToString()
        return varint(len(body)) + body

    s = await UniStream.open(http_port, "/connection/http_stream", method="POST",
                             body=command(id=1, connect=pb.ConnectRequest()),
                             headers={"Content-Type": "application/octet-stream"})
    assert s.status == 200 and s.headers["content-type"] == "application/octet-stream"

    async def replies(n: int) -> list[dict[str, Any]]:
        """The next ``n`` replies (pings skipped): read chunks until they are all in."""
        while True:
            try:
                got = [r for r in PROTOBUF.decode_replies(s._buf) if r]
            except Exception:
                got = []  # a message cut between chunks
            if len(got) >= n:
                s._buf = b""
                return got
            assert await s._more(), "stream ended"

    connect = (await replies(1))[0]["connect"]
    assert connect["session"] and connect["node"] == hub.node_id
    # EmulationRequest {node = 1, session = 2, data = 3}, as centrifuge-js's protobuf build encodes it
    body = (b"\x0a" + varint(len(connect["node"])) + connect["node"].encode()
            + b"\x12" + varint(len(connect["session"])) + connect["session"].encode())
    data = command(id=2, subscribe=pb.SubscribeRequest(channel="chat:pb"))
    body += b"\x1a" + varint(len(data)) + data
    r = await post(http_port, body, {"Content-Type": "application/octet-stream"})
    assert r == (204, "")
    assert "subscribe" in (await replies(1))[0]
    await hub.publish("chat:pb", {"p": 1})
    push = (await replies(1))[0]["push"]
    assert push["channel"] == "chat:pb" and push["pub"]["data"] == b'{"p":1}'
    s.close()
    await wait_clients(hub, 0)
