"""A channel with JSON and protobuf subscribers: each publication is encoded once per format, not per subscriber."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from handlers.codec_protobuf import varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import PROTOBUF
from handlers.session import ClientSession
from handlers.wire import Output
from server.app import Squall
from tests.helpers.waiting import until
from tests.helpers.wsclient import connected

PER_FORMAT = 3
PUBLICATIONS = 5


class Counting:
    """The session's own Output, counting the pushes it encodes (by wire_key)."""

    def __init__(self, inner: Output, counts: Counter[Any]) -> None:
        self.inner, self.counts = inner, counts
        self.expects_pongs = inner.expects_pongs

    def reply(self, s: ClientSession, cid: int, method: str, result: dict[str, Any]) -> None:
        self.inner.reply(s, cid, method, result)

    def error(self, s: ClientSession, cid: int, err: Any) -> None:
        self.inner.error(s, cid, err)

    def push(self, s: ClientSession, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        self.counts[s.wire_key] += 1
        return self.inner.push(s, channel, kind, body)


def command(cid: int, **request: Any) -> bytes:
    body = pb.Command(id=cid, **request).SerializeToString()
    return varint(len(body)) + body


@pytest.mark.gen_test(timeout=30)
async def test_one_encoding_per_format(ws_url: str, squall_app: Squall) -> None:
    """Protobuf connections share their own wire_key; JSON and protobuf subscribers get the same publications."""
    channel = "chat:formats"
    jsons = [await connected(ws_url) for _ in range(PER_FORMAT)]
    for c in jsons:
        assert "subscribe" in await c.call("subscribe", {"channel": channel})
    protos = []
    for _ in range(PER_FORMAT):
        conn = await websocket_connect(ws_url, subprotocols=["centrifuge-protobuf"])
        await conn.write_message(command(1, connect=pb.ConnectRequest()) + command(2, subscribe=pb.SubscribeRequest(channel=channel)), binary=True)
        replies = []
        while len(replies) < 2:
            msg = await conn.read_message()
            assert isinstance(msg, bytes)
            replies += PROTOBUF.decode_replies(msg)
        assert [r["id"] for r in replies] == [1, 2] and "subscribe" in replies[1]
        protos.append(conn)
    hub = squall_app.ctx.hub
    sessions = hub.clients()
    assert Counter(s.wire_key for s in sessions) == {"ws:json": PER_FORMAT, "ws:protobuf": PER_FORMAT}
    counts: Counter[Any] = Counter()
    for s in sessions:
        s.out = Counting(s.out, counts)
    for i in range(PUBLICATIONS):
        await hub.publish(channel, {"i": i})
    for c in jsons:
        got = [(await c.next_push())["push"]["pub"] for _ in range(PUBLICATIONS)]
        assert [(p["offset"], p["data"]) for p in got] == [(i + 1, {"i": i}) for i in range(PUBLICATIONS)]
    for conn in protos:
        got = []
        while len(got) < PUBLICATIONS:
            msg = await conn.read_message()
            assert isinstance(msg, bytes)
            got += [r["push"]["pub"] for r in PROTOBUF.decode_replies(msg) if "push" in r]
        assert [(p.get("offset"), p["data"]) for p in got] == [(i + 1, b'{"i":%d}' % i) for i in range(PUBLICATIONS)]
    assert counts == {"ws:json": PUBLICATIONS, "ws:protobuf": PUBLICATIONS}
    for c in jsons:
        c.close()
    for conn in protos:
        conn.close()
    await until(lambda: hub.num_clients == 0)
