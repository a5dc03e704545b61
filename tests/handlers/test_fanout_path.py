"""The coalescing write path keeps order and shares frames between sockets."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected


@pytest.fixture
def squall_config() -> dict:
    return test_config(write_delay_ms=5)


@pytest.mark.gen_test(timeout=30)
async def test_order_kept_under_coalescing(ws_url: str, squall_app) -> None:
    """Hundreds of publications flushed in coalesced writes arrive in order."""
    subs = [await connected(ws_url) for _ in range(5)]
    for c in subs:
        await c.call("subscribe", {"channel": "chat:order"})
    hub = squall_app.ctx.hub
    await asyncio.gather(*(hub.publish("chat:order", i) for i in range(300)))
    for c in subs:
        got = []
        while len(got) < 300:
            push = await c.next_push()
            got.append(push["push"]["pub"])
        assert [p["offset"] for p in got] == list(range(1, 301))
        assert [p["data"] for p in got] == list(range(300))


@pytest.mark.gen_test(timeout=30)
async def test_replies_and_pushes_keep_their_order(ws_url: str) -> None:
    """A publish reply and its own publication come back in write order."""
    c = await connected(ws_url)
    await c.call("subscribe", {"channel": "chat:self"})
    for i in range(20):
        await c.send({"id": 100 + i, "publish": {"channel": "chat:self", "data": i}})
    seen = []
    while len(seen) < 40:
        msg = await c.read()
        assert msg is not None
        seen.append(msg)
    replies = [m["id"] for m in seen if "id" in m]
    pubs = [m["push"]["pub"]["data"] for m in seen if "push" in m]
    assert replies == [100 + i for i in range(20)]
    assert pubs == list(range(20))
    # each reply is written after its publication was fanned out
    for i in range(20):
        reply_at = next(k for k, m in enumerate(seen) if m.get("id") == 100 + i)
        pub_at = next(k for k, m in enumerate(seen) if "push" in m and m["push"]["pub"]["data"] == i)
        assert pub_at < reply_at
