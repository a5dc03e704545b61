"""Graceful shutdown of a real `run.py serve` process: SIGTERM during steady publishing."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401
from tests.helpers.squall_process import OPEN_NAMESPACE, SquallProcess, test_config
from tests.helpers.wsclient import RawClient, connected

PUBLISHERS = 4
MAX_PER_PUBLISHER = 200  # bounded: ~800 publications at most
CHANNEL = "chat:steady"


def config(**over: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"shutdown_drain_seconds": 1.0, **over}
    return test_config(
        namespaces=[{"name": "chat", **OPEN_NAMESPACE, "history_size": 2000, "history_ttl": 3600}],
        **settings,
    )


async def publisher(url: str, k: int, acked: list[tuple[int, int]], codes: list[int | None]) -> None:
    """Publish one at a time until the server closes us; record every acknowledged publication."""
    c = await connected(url)
    for i in range(MAX_PER_PUBLISHER):
        try:
            r = await c.call("publish", {"channel": CHANNEL, "data": {"k": k, "i": i}}, timeout=10)
        except (ConnectionError, StreamClosedError, WebSocketClosedError):
            break  # closed by the server: the reply, if any, never came
        if r.get("publish") == {}:
            acked.append((k, i))
        await asyncio.sleep(0.002)
    if c.close_code is None:  # Tornado hands out the close only once: do not wait twice
        await c.wait_closed(timeout=15)
    codes.append(c.close_code)


async def until_closed(c: RawClient, timeout: float) -> tuple[int | None, list[dict[str, Any]]]:
    """Everything the server sent until it closed the connection, in order, and the close code."""
    seen = list(c.pushes)
    c.pushes.clear()

    async def drain() -> None:
        while (obj := await c.read(timeout)) is not None:
            seen.append(obj)

    await asyncio.wait_for(drain(), timeout)
    return c.close_code, seen


async def history_of(url: str) -> set[tuple[int, int]]:
    c = await connected(url)
    out: set[tuple[int, int]] = set()
    r = await c.call("history", {"channel": CHANNEL, "limit": 0})
    since = {"offset": 0, "epoch": r["history"]["epoch"]}
    for _ in range(100):  # pages of 500
        r = await c.call("history", {"channel": CHANNEL, "limit": 500, "since": since})
        pubs = r["history"]["publications"]
        if not pubs:
            break
        out |= {(p["data"]["k"], p["data"]["i"]) for p in pubs}
        since = {"offset": pubs[-1]["offset"], "epoch": r["history"]["epoch"]}
    c.close()
    return out


@pytest.mark.mongo
@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_sigterm_during_steady_publishing(squall_factory: Any, secantus_factory: SecantusFactory) -> None:  # noqa: F811
    """Every client gets 3001, the process exits 0, and every acknowledged publication is in history."""
    mongo = secantus_factory()
    cfg = config(history="mongo", mongo_url=mongo.url, mongo_database="shutdown")
    sq: SquallProcess = squall_factory(cfg)
    acked: list[tuple[int, int]] = []
    codes: list[int | None] = []
    tasks = [asyncio.ensure_future(publisher(sq.ws_url, k, acked, codes)) for k in range(PUBLISHERS)]
    deadline = time.monotonic() + 20
    while len(acked) < 20 * PUBLISHERS and time.monotonic() < deadline and not all(t.done() for t in tasks):
        await asyncio.sleep(0.02)
    assert len(acked) >= 20 * PUBLISHERS, "publishing never got going"
    sq.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    except asyncio.TimeoutError:
        raise AssertionError(f"clients not closed: {codes}\n{sq.logs()[-4000:]}") from None
    rc = await asyncio.get_running_loop().run_in_executor(None, sq.proc.wait, 30)
    assert rc == 0, sq.logs()[-3000:]
    assert codes == [3001] * PUBLISHERS
    # read the durable history through a second instance on the same MongoDB
    second: SquallProcess = squall_factory(cfg)
    stored = await history_of(second.ws_url)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged publications lost of {len(acked)}"
    print(f"\nshutdown: {len(acked)} acknowledged, {len(stored)} stored, all acknowledged present")


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_memory_engine_clients_get_3001_and_exit_0(squall_factory: Any) -> None:
    """With the memory engine: each client's acknowledged publications reached it before its 3001, exit 0."""
    sq: SquallProcess = squall_factory(config())
    clients = [await connected(sq.ws_url) for _ in range(6)]
    for c in clients:
        assert "subscribe" in await c.call("subscribe", {"channel": CHANNEL})
    data = {"k": 0, "i": 0}
    r = await clients[0].call("publish", {"channel": CHANNEL, "data": data})
    assert r.get("publish") == {}, r
    sq.proc.send_signal(signal.SIGTERM)
    codes, received = [], []
    for c in clients:
        code, seen = await until_closed(c, timeout=15)
        codes.append(code)
        received.append([p["push"]["pub"]["data"] for p in seen if "pub" in p.get("push", {})])
    assert codes == [3001] * 6
    assert received == [[data]] * 6
    rc = await asyncio.get_running_loop().run_in_executor(None, sq.proc.wait, 30)
    assert rc == 0
    assert "shutdown complete" in sq.logs()


@pytest.mark.gen_test(timeout=60)
async def test_second_signal_exits_at_once(squall_factory: Any) -> None:
    """A second SIGTERM during a long drain ends the process at once with a non-zero status."""
    sq: SquallProcess = squall_factory(config(shutdown_drain_seconds=60))
    clients = [await connected(sq.ws_url) for _ in range(3)]
    sq.proc.send_signal(signal.SIGTERM)
    code, _ = await clients[0].wait_closed(timeout=10)  # the first batch went out: draining now
    assert code == 3001
    started = time.monotonic()
    sq.proc.send_signal(signal.SIGINT)
    rc = await asyncio.get_running_loop().run_in_executor(None, sq.proc.wait, 20)
    assert rc != 0
    assert time.monotonic() - started < 10  # far less than the 60 s drain
    assert "exiting at once" in sq.logs()
    for c in clients:
        c.close()


@pytest.mark.gen_test(timeout=60)
async def test_new_connections_refused_while_draining(squall_factory: Any) -> None:
    """During the drain the listener is closed: a new client cannot open a WebSocket."""
    sq: SquallProcess = squall_factory(config(shutdown_drain_seconds=30))
    clients = [await connected(sq.ws_url) for _ in range(3)]
    sq.proc.send_signal(signal.SIGTERM)
    await clients[0].wait_closed(timeout=10)
    try:
        late = await RawClient.open(sq.ws_url)
    except (OSError, StreamClosedError, HTTPClientError):
        pass  # the listener is closed (or the handshake got 503)
    else:  # accepted by a socket already in the kernel's queue: the connect is refused with 3001
        await late.send({"id": 1, "connect": {}})
        code, _ = await late.wait_closed(timeout=10)
        assert code == 3001
    sq.proc.send_signal(signal.SIGKILL)
    for c in clients:
        c.close()
