"""Proxy benchmark: connect throughput with the connect proxy against a trivial
local backend, next to no proxy, and publish p99 with the publish proxy, next to
none; one run, bounded in count and time.

    .venv/bin/python -m bench.proxy [--connects 2000] [--publishes 2000] [--concurrency 50] [--write-doc]

Squall runs as ``run.py serve`` (a subprocess, twice: without and with the
proxy), the backend as :mod:`bench.proxy_backend` (a Tornado app answering
Centrifugo's proxy JSON at once), the clients here on one asyncio loop. Each
connect opens a WebSocket, sends ``connect``, waits for its reply and closes;
each publish waits for its reply. Prints a table with the ratio proxy/none and,
with ``--write-doc``, rewrites the part of docs/PERFORMANCE.md between the
``proxy-bench:begin``/``end`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from tests.helpers.procs import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- proxy-bench:begin -->", "<!-- proxy-bench:end -->"
TIME_CAP = 60.0  # seconds per measured phase, whatever the counts


def squall_toml(backend: str | None) -> str:
    lines = ["client_connection_rate_limit = 0", "client_command_rate_limit = 0", "log_level = \"warning\""]
    if backend is None:
        lines.append("allow_anonymous_connect_without_token = true")
    else:
        lines += [f'proxy_connect_endpoint = "{backend}/connect"', f'proxy_publish_endpoint = "{backend}/publish"']
    lines += ["[channel]", "allow_publish_for_client = true", "allow_publish_for_anonymous = true"]
    if backend is not None:
        lines.append("proxy_publish = true")
    return "\n".join(lines) + "\n"


def start(cmd: list[str], probe: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(probe, 30, proc)
    except (RuntimeError, TimeoutError) as e:
        stop_process(proc)
        raise RuntimeError(f"{cmd[2:4]} did not start: {e}; see {log}") from None
    return proc


def start_squall(workdir: Path, backend: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = workdir / f"squall-{port}.toml"
    cfg.write_text(squall_toml(backend))
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port), "--config", str(cfg)]
    return start(cmd, f"http://127.0.0.1:{port}/health", workdir / "squall.log"), port


async def one_connect(url: str) -> None:
    async with ws_connect(url, compression=None) as ws:
        await ws.send(json.dumps({"id": 1, "connect": {}}))
        reply = json.loads(await ws.recv())
        if "connect" not in reply:
            raise RuntimeError(f"connect refused: {reply}")


async def connects(url: str, n: int, concurrency: int) -> dict[str, float]:
    """Connections per second over ``n`` connects, ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    failed = 0
    deadline = time.monotonic() + TIME_CAP

    async def one() -> None:
        nonlocal failed
        async with sem:
            if time.monotonic() > deadline:
                return
            try:
                await one_connect(url)
            except Exception:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    took = time.perf_counter() - started
    return {"per_s": (n - failed) / took, "failed": failed}


async def publishes(url: str, n: int, concurrency: int) -> dict[str, float]:
    """Publish reply latency (ms) over ``n`` publishes, ``concurrency`` in flight, on one connection."""
    lat: list[float] = []
    sent: dict[int, float] = {}
    window = asyncio.Semaphore(concurrency)
    async with ws_connect(url, compression=None) as ws:
        await ws.send(json.dumps({"id": 1, "connect": {}}))
        await ws.recv()

        async def reader() -> None:
            while True:
                for line in str(await ws.recv()).splitlines():
                    msg = json.loads(line)
                    if "error" in msg:
                        raise RuntimeError(f"publish refused: {msg}")
                    t = sent.pop(msg.get("id", 0), None)
                    if t is not None:
                        lat.append((time.perf_counter() - t) * 1000)
                        window.release()

        task = asyncio.ensure_future(reader())
        deadline = time.monotonic() + TIME_CAP
        for i in range(n):
            if time.monotonic() > deadline or task.done():
                break
            await asyncio.wait_for(window.acquire(), TIME_CAP)
            sent[i + 2] = time.perf_counter()
            await ws.send(json.dumps({"id": i + 2, "publish": {"channel": "bench", "data": {"i": i}}}))
        while sent and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2], "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)], "count": len(lat)}


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await connects(url, min(200, args.connects), args.concurrency)  # warm-up
    c = await connects(url, args.connects, args.concurrency)
    p = await publishes(url, args.publishes, args.inflight)
    return {"connect": c, "publish": p}


def markdown(none: dict[str, Any], proxy: dict[str, Any], args: argparse.Namespace) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    rows = [
        ("connects/s", none["connect"]["per_s"], proxy["connect"]["per_s"], "{:.0f}"),
        ("publish p50 (ms)", none["publish"]["p50_ms"], proxy["publish"]["p50_ms"], "{:.2f}"),
        ("publish p99 (ms)", none["publish"]["p99_ms"], proxy["publish"]["p99_ms"], "{:.2f}"),
    ]
    out = [
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, Python {platform.python_version()}; "
        f"{args.connects} connects {args.concurrency} at a time, {args.publishes} publishes {args.inflight} in flight.",
        "",
        "| | no proxy | connect + publish proxy | proxy / none |",
        "|---|---|---|---|",
    ]
    for name, a, b, spec in rows:
        out.append(f"| {name} | {spec.format(a)} | {spec.format(b)} | {ratio(b, a)} |")
    failed = none["connect"]["failed"] + proxy["connect"]["failed"]
    out += ["", f"Failed connects: {failed:.0f}."]
    return "\n".join(out) + "\n"


def write_doc(body: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text:
        raise SystemExit(f"{DOC} has no {BEGIN} marker")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + BEGIN + "\n" + body + END + tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--publishes", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50, help="connects at a time")
    ap.add_argument("--inflight", type=int, default=1, help="publishes in flight (a connection runs its commands in order)")
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args(argv)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            bport = free_port()
            procs.append(start([sys.executable, "-m", "bench.proxy_backend", "--port", str(bport)],
                               f"http://127.0.0.1:{bport}/health", work / "backend.log"))
            results = {}
            for name, backend in (("none", None), ("proxy", f"http://127.0.0.1:{bport}")):
                proc, port = start_squall(work, backend)
                procs.append(proc)
                try:
                    results[name] = asyncio.run(measure(f"ws://127.0.0.1:{port}/connection/websocket", args))
                finally:
                    stop_process(proc)
                    procs.remove(proc)
        finally:
            for p in procs:
                stop_process(p)
    body = markdown(results["none"], results["proxy"], args)
    print(body)
    if args.write_doc:
        write_doc(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
