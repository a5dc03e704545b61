"""A live server under a burst of garbage from one client while another keeps chatting; hostile protobuf frames."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgpack
import pytest
from tornado.websocket import websocket_connect

from handlers.codec_protobuf import varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import PROTOBUF
from server.app import Squall
from tests.helpers.fuzz import deep
from tests.helpers.squall_process import test_config
from tests.helpers.waiting import until
from tests.helpers.wsclient import RawClient, connected

GARBAGE_FRAMES = 300
CHAT_MESSAGES = 60


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(max_message_size=65536)


def delimited(msg: bytes) -> bytes:
    return varint(len(msg)) + msg


def field(number: int, body: bytes) -> bytes:
    """A length-delimited field (wire type 2), built by hand."""
    return varint(number << 3 | 2) + delimited(body)


CONNECT = delimited(pb.Command(id=1, connect=pb.ConnectRequest()).SerializeToString())
# (what, frame, close code): each hostile shape the protobuf decoder refuses
PROTOBUF_HOSTILE: list[tuple[str, bytes, int]] = [
    ("varint over 10 bytes", b"\xff" * 11, 3501),
    ("varint over 64 bits", b"\xff" * 9 + b"\x7f", 3501),
    ("truncated varint", b"\x80", 3501),
    ("truncated message", varint(10) + b"\x08\x02", 3501),
    ("huge declared length", varint(1 << 40) + b"\x08\x02", 1009),
    ("length just over max_message_size", varint(65537) + b"\x08\x02", 1009),
    ("wrong wire type: id as bytes", delimited(b"\x0a\x01x"), 3501),
    ("wrong wire type: subscribe as varint", delimited(b"\x08\x02" + bytes([(5 << 3) | 0, 1])), 3501),
    ("two requests in one command", delimited(
        pb.Command(id=2, subscribe=pb.SubscribeRequest(channel="chat:a")).SerializeToString()
        + pb.Command(publish=pb.PublishRequest(channel="chat:a")).SerializeToString()), 3501),
    ("bad UTF-8 in a channel", delimited(b"\x08\x02" + field(5, field(1, b"\xff\xfe"))), 3501),
    ("empty frame", b"", 3501),
    ("duplicate ids", CONNECT + CONNECT, 3501),
    ("a command cut short", CONNECT[:-1], 3501),
]


def garbage(rng: random.Random) -> tuple[bytes | str, bool]:
    """(frame, binary) drawn from the hostile shapes the fuzz suite covers."""
    kind = rng.randrange(11)
    if kind == 9:
        return rng.choice(PROTOBUF_HOSTILE)[1], True
    if kind == 10:
        return varint(rng.randrange(1, 1 << 20)) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200))), True
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300))), True
    if kind == 1:
        return deep(rng.choice([2000, 50000]), "json").decode(), False
    if kind == 2:
        return '{"id":1,"publish":{"channel":"chat:junk","data":' + "9" * 20000 + "}}", False
    if kind == 3:
        return '{"id":1,"connect":{}}\n' * 150, False
    if kind == 4:
        return "\ud800 not utf-8", False
    if kind == 5:
        return msgpack.packb({"id": 1, "connect": {}}) + b"\xc1", True
    if kind == 6:
        return '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"' + "x" * 5000 + '"}}', False
    if kind == 7:
        return '{"id":1,"connect":{}}\n{"id":2,"publish":{"channel":"chat:junk","data":{"a":' + "[" * 900 + "]" * 900 + "}}}", False
    return "x" * 70000, False  # over max_message_size


async def hostile(ws_url: str, seed: int) -> dict[int | None, int]:
    rng = random.Random(seed)
    codes: dict[int | None, int] = {}
    sent = 0
    while sent < GARBAGE_FRAMES:
        fmt = rng.choice(["json", "msgpack", "protobuf"])
        c = await RawClient.open(ws_url, fmt)
        while sent < GARBAGE_FRAMES and c.close_code is None:
            frame, binary = garbage(rng)
            sent += 1
            try:
                await c.send_raw(frame, binary=binary)
            except Exception:  # the server already closed this socket: open another
                break
            await asyncio.sleep(0)
        c.close()
        code = c.close_code
        codes[code] = codes.get(code, 0) + 1
    return codes


async def chatter(ws_url: str) -> list[int]:
    a = await connected(ws_url)
    b = await connected(ws_url)
    await a.call("subscribe", {"channel": "chat:room"})
    offsets = []
    for i in range(CHAT_MESSAGES):
        r = await b.call("publish", {"channel": "chat:room", "data": {"n": i}})
        assert r.get("publish") == {}, r
        push = await a.next_push()
        assert push["push"]["pub"]["data"] == {"n": i}
        offsets.append(push["push"]["pub"]["offset"])
        await asyncio.sleep(0.005)
    a.close()
    b.close()
    return offsets


@pytest.mark.gen_test(timeout=60)
async def test_garbage_burst_does_not_disturb_other_clients(ws_url: str, squall_app: Squall) -> None:
    """Hundreds of hostile frames from one client; a chatting pair sees every message in order."""
    codes, offsets = await asyncio.gather(hostile(ws_url, seed=8), chatter(ws_url))
    assert offsets == list(range(1, CHAT_MESSAGES + 1))
    assert set(codes) <= {3501, 3506, 1009, None}
    thrown_out = sum(n for code, n in codes.items() if code is not None)  # None: we closed it ourselves
    assert thrown_out > 10, codes
    print(f"\nlive garbage burst: {GARBAGE_FRAMES} frames, closes by code {codes}")
    # nothing the hostile client did is left behind
    hub = squall_app.ctx.hub
    await until(lambda: hub.num_clients == 0 and squall_app.ctx.limiter.total == 0, what="every connection freed")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("connect_first", [False, True], ids=["new", "connected"])
async def test_hostile_protobuf_frames_get_their_close_code(ws_url: str, squall_app: Squall, connect_first: bool) -> None:
    """Each malformed protobuf frame (bad varints, truncation, huge lengths, wrong wire types) closes 3501 or 1009;
    the server goes on serving protobuf clients and holds nothing of the hostile ones."""
    seen = []
    for what, frame, code in PROTOBUF_HOSTILE:
        conn = await websocket_connect(ws_url, subprotocols=["centrifuge-protobuf"])
        if connect_first:
            await conn.write_message(CONNECT, binary=True)
            reply = await conn.read_message()
            assert isinstance(reply, bytes) and "connect" in PROTOBUF.decode_replies(reply)[0], what
        await conn.write_message(frame, binary=True)
        while await conn.read_message() is not None:
            pass
        seen.append((what, conn.close_code))
    assert seen == [(what, code) for what, _, code in PROTOBUF_HOSTILE]
    ok = await websocket_connect(ws_url, subprotocols=["centrifuge-protobuf"])
    await ok.write_message(CONNECT, binary=True)
    reply = await ok.read_message()
    assert isinstance(reply, bytes) and PROTOBUF.decode_replies(reply)[0]["connect"]["client"]
    ok.close()
    hub = squall_app.ctx.hub
    await until(lambda: hub.num_clients == 0 and squall_app.ctx.limiter.total == 0, what="every connection freed")
