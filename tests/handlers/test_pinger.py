"""Dead peers: server pings every ping_interval; no pong within pong_timeout is 3012."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from tornado.websocket import websocket_connect

from server.app import Squall
from tests.helpers.rawws import RawWS
from tests.helpers.squall_process import test_config
from tests.helpers.waiting import until

PING_INTERVAL = 1.0
PONG_TIMEOUT = 1.0


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(ping_interval=PING_INTERVAL, pong_timeout=PONG_TIMEOUT)


@pytest.mark.gen_test(timeout=20)
async def test_silent_peer_disconnected_3012(http_server: Any, http_port: int, squall_app: Squall) -> None:
    """A peer that connects and then never sends a byte (no pongs) is closed with 3012 in time."""
    ws = await RawWS.open(http_port)
    await ws.send({"id": 1, "connect": {}})
    op, payload = await ws.frame()
    assert b'"connect"' in payload
    connected_at = time.monotonic()
    # the peer "vanishes": it never writes again, but we keep reading to see the close
    pings = 0
    while True:
        op, payload = await ws.frame(timeout=10)
        if op == 0x8:
            code = int.from_bytes(payload[:2], "big")
            break
        if orjson.loads(payload) == {}:
            pings += 1
    elapsed = time.monotonic() - connected_at
    assert code == 3012
    assert pings >= 1
    tick = squall_app.ctx.pinger.tick
    # detected within the documented bound, plus slack for a stalled loop on a loaded machine
    assert elapsed <= PING_INTERVAL + PONG_TIMEOUT + 2 * tick + 2.0
    ws.close()
    for _ in range(200):
        if squall_app.ctx.hub.num_clients == 0:
            break
        await asyncio.sleep(0.01)
    assert squall_app.ctx.hub.num_clients == 0


@pytest.mark.gen_test(timeout=20)
async def test_ponging_peer_stays(ws_url: str, squall_app: Squall) -> None:
    """A peer that answers every ping with {} stays connected over several ping rounds."""
    conn = await websocket_connect(ws_url)
    await conn.write_message('{"id":1,"connect":{}}')
    assert "connect" in orjson.loads(await conn.read_message())
    pings = 0
    deadline = time.monotonic() + 3 * (PING_INTERVAL + PONG_TIMEOUT)
    while time.monotonic() < deadline:
        try:
            msg = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
        assert msg is not None, f"closed: {conn.close_code}"
        if orjson.loads(msg) == {}:
            pings += 1
            await conn.write_message("{}")
    assert pings >= 2
    assert squall_app.ctx.hub.num_clients == 1
    conn.close()


class _Peer:
    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.pings = 0
        self.pong_at = 0.0
        self.dead = False

    def send_ping(self, now: float) -> None:
        self.pings += 1
        if self.answers:
            self.pong_at = time.monotonic()

    def pong_overdue(self, sent_at: float) -> bool:
        return self.pong_at < sent_at

    def no_pong(self) -> None:
        self.dead = True


@pytest.mark.gen_test(timeout=20)
async def test_one_timer_serves_many_connections() -> None:
    """One Pinger pings every registered peer once per interval and drops only the silent ones."""
    from handlers.pinger import Pinger

    pinger = Pinger(0.4, 0.4)
    peers = [_Peer(answers=i % 2 == 0) for i in range(50)]
    for p in peers:
        pinger.add(p)
    pinger.start()
    try:
        # every silent peer is due by interval + pong timeout + a few ticks; polled, so a
        # stalled loop on a busy machine only makes this slower, never wrong
        await until(lambda: all(p.dead is (not p.answers) for p in peers), timeout=10,
                    what="every silent peer dropped")
    finally:
        pinger.stop()
    assert all(p.pings >= 1 for p in peers)
    assert all(p.dead is (not p.answers) for p in peers)
    assert len(pinger) == 25


class _New:
    def __init__(self) -> None:
        self.due_at = 0.0

    def stale_due(self) -> None:
        assert not self.due_at, "stale_due called twice"
        self.due_at = time.monotonic()


@pytest.mark.gen_test(timeout=20)
async def test_new_sockets_hear_their_stale_deadline_once_and_not_before() -> None:
    """watch_new: each new socket's stale_due runs once, at or after its deadline, in deadline order."""
    from handlers.pinger import Pinger

    pinger = Pinger(0.4, 0.4)
    start = time.monotonic()
    news = [_New() for _ in range(3)]
    for i, n in enumerate(news):
        pinger.watch_new(n, start + 0.2 * (i + 1))
    pinger.start()
    try:
        await until(lambda: all(n.due_at for n in news), timeout=10, what="every stale deadline")
    finally:
        pinger.stop()
    for i, n in enumerate(news):
        assert n.due_at >= start + 0.2 * (i + 1)
    assert news[0].due_at <= news[1].due_at <= news[2].due_at


def test_new_connections_spread_evenly_over_the_ping_ticks() -> None:
    """Connections added one after another land in every ping bucket in turn, not in lockstep."""
    from handlers.pinger import Pinger

    pinger = Pinger(1.0, 1.0)
    n = len(pinger._buckets)
    assert n > 1
    peers = [_Peer(answers=True) for _ in range(n * 7)]
    for p in peers:
        pinger.add(p)
    assert [len(b) for b in pinger._buckets] == [7] * n
    for p in peers[::2]:
        pinger.remove(p)
    assert sum(len(b) for b in pinger._buckets) == len(peers) - len(peers[::2]) == len(pinger)
