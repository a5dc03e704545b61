"""Closed WebSocket connections are freed by reference counting: no cycles left
for the collector (server/gc_policy.py freezes long-lived objects)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.helpers.waiting import until
from tests.helpers.wsclient import connected


@pytest.mark.gen_test(timeout=30)
async def test_closed_connections_leave_no_cyclic_garbage(ws_url: str, squall_app) -> None:
    """After clients leave, a collection finds none of their connection objects."""
    hub = squall_app.ctx.hub
    clients = [await connected(ws_url) for _ in range(20)]
    for c in clients:
        await c.call("subscribe", {"channel": "chat:gc"})
    gc.collect()
    for c in clients:
        c.close()
    await until(lambda: hub.num_clients == 0 and hub.num_channels == 0, what="every client and channel gone")
    await asyncio.sleep(0.1)
    await hub.drain_background()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        names = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not names & {"WSConnection", "ClientSession", "_SelectorSocketTransport", "FrameParser"}, names
