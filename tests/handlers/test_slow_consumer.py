"""Slow consumers: the outbound queue is bounded in bytes; past it the client gets 3008."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.app import Squall
from tests.helpers.rawws import RawWS
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected

QUEUE_MAX = 64 * 1024
PAYLOAD = "x" * 8000
MAX_PUBLICATIONS = 8000  # 64 MB at most, far beyond any kernel buffer


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(client_queue_max_size=QUEUE_MAX)


@pytest.mark.gen_test(timeout=60)
async def test_reader_that_stops_reading_gets_3008_and_memory_stays_bounded(
    http_port: int, ws_url: str, squall_app: Squall
) -> None:
    """A stalled reader is cut off with 3008; the bytes held for it never exceed the bound; others carry on."""
    hub = squall_app.ctx.hub
    slow = await RawWS.open(http_port, rcvbuf=4096)
    await slow.send({"id": 1, "connect": {}})
    await slow.frame()
    await slow.send({"id": 2, "subscribe": {"channel": "live:firehose"}})
    await slow.frame()
    (session,) = hub.clients()
    fast = await connected(ws_url)
    await fast.call("subscribe", {"channel": "live:firehose"})
    wire = session.wire  # type: ignore[attr-defined]
    held_max = 0
    sent = 0
    for sent in range(1, MAX_PUBLICATIONS + 1):
        await hub.publish("live:firehose", PAYLOAD)
        held = wire.held_bytes()  # our queue plus what the transport still buffers
        held_max = max(held_max, held)
        if session.closed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0)  # let the flusher run
        if sent % 4 == 0:  # the fast reader keeps up (4 frames < the bound)
            await drain(fast, 4)
    assert session.closed, "slow reader was never disconnected"  # type: ignore[attr-defined]
    frame_size = len(PAYLOAD) + 200
    assert held_max <= QUEUE_MAX + 2 * frame_size
    # the reader wakes up: what was in flight, then the close code
    code, frames = await slow.until_close(timeout=10)
    print(f"slow reader: cut after {sent} publications, {frames} frames reached it, max held {held_max} B")
    assert code == 3008
    assert frames < sent
    slow.close()
    # the fast subscriber is still served
    await drain(fast, sent % 4)
    await hub.publish("live:firehose", "after")
    for _ in range(100):
        push = await fast.next_push()
        if push["push"]["pub"]["data"] == "after":
            break
    fast.close()


async def drain(client: Any, n: int) -> None:
    for _ in range(n):
        push = await client.next_push()
        assert push["push"]["pub"]["data"] == PAYLOAD
