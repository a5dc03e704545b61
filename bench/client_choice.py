"""Why loadtest has its own WebSocket client: CPU and memory per connection of
``loadtest.websocket`` against the ``websockets`` library on the same traffic.

Starts the asyncio baseline, opens N subscribers with each client, publishes
M messages, and reports the client process's CPU µs per received message and
RSS per connection. Bounded: N and M are small by default (~20 s in all).

    python -m bench.client_choice [--connections 1000] [--messages 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

import orjson
import psutil
import websockets.asyncio.client

from loadtest.websocket import open_websocket

URL_PATH = "/connection/websocket"


async def _lean(port: int, n: int, expect: int) -> tuple[float, float]:
    done = asyncio.Event()
    got = 0

    def on_message(payload: bytes) -> None:
        nonlocal got
        for line in payload.split(b"\n"):
            if line and "push" in orjson.loads(line):
                got += 1
        if got >= expect:
            done.set()

    conns = []
    for _ in range(n):
        ws = await open_websocket("127.0.0.1", port, URL_PATH, on_message, lambda c, r: None)
        ws.send_text(b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"c"}}')
        conns.append(ws)
    return await _measure(port, done, lambda: got, [lambda: _close_lean(conns)])


async def _close_lean(conns: list[Any]) -> None:
    for ws in conns:
        ws.close()


async def _library(port: int, n: int, expect: int) -> tuple[float, float]:
    done = asyncio.Event()
    got = 0

    async def reader(ws: Any) -> None:
        nonlocal got
        async for msg in ws:
            for line in (msg.encode() if isinstance(msg, str) else msg).split(b"\n"):
                if line and "push" in orjson.loads(line):
                    got += 1
            if got >= expect:
                done.set()

    conns = []
    tasks = []
    for _ in range(n):
        ws = await websockets.asyncio.client.connect(f"ws://127.0.0.1:{port}{URL_PATH}", compression=None)
        await ws.send('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"c"}}')
        conns.append(ws)
        tasks.append(asyncio.ensure_future(reader(ws)))

    async def close() -> None:
        for ws in conns:
            await ws.close()
        for t in tasks:
            t.cancel()

    return await _measure(port, done, lambda: got, [close])


async def _measure(port: int, done: asyncio.Event, count: Callable[[], int],
                   cleanup: list[Callable[[], Awaitable[None]]]) -> tuple[float, float]:
    await asyncio.sleep(1.0)  # subscriptions settle
    me = psutil.Process()
    rss = me.memory_info().rss
    pub = await open_websocket("127.0.0.1", port, URL_PATH, lambda p: None, lambda c, r: None)
    pub.send_text(b'{"id":1,"connect":{}}')
    cpu0 = time.process_time()
    for k in range(_MESSAGES[0]):
        pub.send_text(orjson.dumps({"id": k + 2, "publish": {"channel": "c", "data": {"s": k, "x": "x" * 80}}}))
        if k % 10 == 0:
            await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(done.wait(), 60)
    except asyncio.TimeoutError:
        pass
    cpu = time.process_time() - cpu0
    for c in cleanup:
        await c()
    pub.close()
    return cpu / max(1, count()) * 1e6, rss


_MESSAGES = [200]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--port", type=int, default=8199)
    args = ap.parse_args()
    _MESSAGES[0] = args.messages
    server = subprocess.Popen([sys.executable, "-m", "bench.baseline_asyncio", "--port", str(args.port)],
                              stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        for name, fn in (("loadtest.websocket", _lean), ("websockets 17", _library)):
            rss0 = psutil.Process().memory_info().rss
            us, rss = asyncio.run(fn(args.port, args.connections, args.connections * args.messages))
            print(f"{name:<20} {us:6.2f} µs CPU per received message   "
                  f"{(rss - rss0) / 1024 / args.connections:6.1f} KiB per connection", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    os._exit(0)


if __name__ == "__main__":
    main()
