"""A live server under a burst of garbage from one client while another keeps chatting."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgpack
import pytest

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


def garbage(rng: random.Random) -> tuple[bytes | str, bool]:
    """(frame, binary) drawn from the hostile shapes the fuzz suite covers."""
    kind = rng.randrange(9)
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
        fmt = rng.choice(["json", "msgpack"])
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
