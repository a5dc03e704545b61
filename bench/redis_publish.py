"""Publications per second through the Redis engine vs a raw pipelined redis-py loop.

Not a test: run it by hand and copy the numbers into docs/PERFORMANCE.md::

    python -m bench.redis_publish [--publishers 200] [--publications 40000] [--sides raw,client]

Starts its own redis-server (tests.helpers.redis_server) and, in the same
run and on the same Redis, measures ``--publications`` publications to
``--channels`` channels with history and no durable store behind Redis. The
raw and engine sides use ``history_size`` 100; the server sides use the
namespace ``stream`` of bench/squall.toml (``history_size`` 1000, 10 min TTL).
The sides (``--sides`` picks some; the default is all):

* ``raw``, raw pipelined: one task sending the engine's own PUBLISH script
  with the engine's arguments as EVALSHA, ``--publishers`` calls per
  pipeline, back to back (what redis-py can push through one connection:
  the baseline);
* ``one``, raw one by one: ``--publishers`` tasks, each awaiting one EVALSHA
  at a time on a pooled client (how the engine published before it batched);
* ``engine``: ``--publishers`` tasks, each awaiting
  :meth:`RedisBroker.publish` (offset assignment, window, pub/sub) in a
  loop: what an API or client publish waits for below the handlers;
* ``api``, server, API publish: a fresh Squall server process (``--engine
  redis``) on the same Redis, ``--publishers`` keep-alive HTTP clients
  (asyncio, in this process) each posting one ``publish`` to the server API
  and awaiting its answer before the next;
* ``batch``, server, API batch: the same with ``--publishers // --batch``
  clients each posting ``batch`` requests of ``--batch`` publishes
  (``parallel``);
* ``client``, server, client publish: a fresh Squall server process as for
  ``api``, ``--publishers`` WebSocket clients (bench/native_publish.c, one C
  process for all; Centrifugo's JSON protocol, anonymous, not subscribed)
  each sending ``publish`` and awaiting its reply before the next.

A side's rate is its publications over its time; for ``client`` the time
and the server's CPU run from the generator's ``MARK start`` (all
connections open) to its ``MARK end`` (last reply), for ``api`` and
``batch`` over the whole side. The server sides also report the server
process's CPU µs per publication.

Rounds reverse the order every other round; the median of the per-round
ratios to the raw pipelined loop counts. Every publish must succeed and the
channels' offsets in Redis must add up to the publications made at the end
of every side, or the run fails (a batcher that lost or doubled a call would
show here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels import redis_envelope as envelope  # noqa: E402
from channels.broker_redis import RedisBroker  # noqa: E402
from channels.redis_scripts import PUBLISH  # noqa: E402
from bench import native  # noqa: E402
from bench.suite import Server, start_server  # noqa: E402
from channels.types import ClientInfo, Publication, StreamOptions  # noqa: E402
from tests.helpers.redis_server import RedisServer, find_redis_server  # noqa: E402

MAX_SECONDS = 120.0  # hard cap per measured side
OPTS = StreamOptions(history_size=100, history_ttl=300.0, meta_ttl=3600.0)


class _Sink:
    """Broker events go nowhere: nothing subscribes in this bench."""

    def on_publication(self, channel: str, pub: Publication) -> None:
        pass

    def on_join(self, channel: str, info: ClientInfo) -> None:
        pass

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        pass

    def on_control(self, data: bytes) -> None:
        pass

    def on_broker_resync(self) -> None:
        pass


def data(i: int) -> dict[str, Any]:
    return {"n": i, "text": "x" * 40}


def channel_of(prefix: str, i: int, channels: int) -> str:
    return f"{prefix}:{i % channels}"


def script_args(topic: bytes, record: bytes, channel: str) -> list[Any]:
    """The engine's PUBLISH arguments for a channel without a durable store (broker_redis._publish)."""
    return [topic, "bench-node", record, OPTS.history_size, 300, 3600, "epoch0", 0, "0", "g", b"", channel, "0"]


async def raw_pipelined(url: str, total: int, batch: int, channels: int, prefix: str) -> float:
    r = aioredis.Redis.from_url(url)
    sha = await r.script_load(PUBLISH)
    record = envelope.record_payload(Publication(data=data(0)))
    started = time.perf_counter()
    sent = 0
    try:
        while sent < total and time.perf_counter() - started < MAX_SECONDS:
            pipe = r.pipeline(transaction=False)
            for i in range(sent, min(total, sent + batch)):
                ch = channel_of(prefix, i, channels)
                t = f"{prefix}t:{ch}"
                pipe.evalsha(sha, 3, f"{prefix}m:{ch}", f"{prefix}w:{ch}", f"{prefix}p:{ch}", *script_args(t.encode(), record, ch))
            n = len(await pipe.execute())
            sent += n
        return sent / (time.perf_counter() - started)
    finally:
        await r.aclose()


async def raw_one_by_one(url: str, total: int, publishers: int, channels: int, prefix: str) -> float:
    r = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=64))
    script = r.register_script(PUBLISH)
    record = envelope.record_payload(Publication(data=data(0)))
    counter = iter(range(total))
    started = time.perf_counter()

    async def publisher() -> None:
        for i in counter:
            if time.perf_counter() - started > MAX_SECONDS:
                return
            ch = channel_of(prefix, i, channels)
            t = f"{prefix}t:{ch}"
            await script(keys=[f"{prefix}m:{ch}", f"{prefix}w:{ch}", f"{prefix}p:{ch}"], args=script_args(t.encode(), record, ch))

    try:
        await asyncio.gather(*(publisher() for _ in range(publishers)))
        return total / (time.perf_counter() - started)
    finally:
        await r.aclose()


async def engine(url: str, total: int, publishers: int, channels: int, prefix: str) -> tuple[float, float]:
    """Publications/s and mean calls per pipeline."""
    broker = RedisBroker([url], prefix=prefix, node_id="bench-node", history=None, hot_window=100, cluster=False)
    await broker.start(_Sink())
    counter = iter(range(total))
    started = time.perf_counter()

    async def publisher() -> None:
        for i in counter:
            if time.perf_counter() - started > MAX_SECONDS:
                return
            await broker.publish(channel_of("c", i, channels), Publication(data=data(i)), OPTS)

    try:
        await asyncio.gather(*(publisher() for _ in range(publishers)))
        rate = total / (time.perf_counter() - started)
        pipe = broker._shards.commands(0)
        per_batch = getattr(pipe, "calls", 0) / max(1, getattr(pipe, "batches", 0))
        return rate, per_batch
    finally:
        await broker.close()


async def check_offsets(url: str, pattern: str, expect: int) -> None:
    """Every channel's offset counter together must equal the publications made."""
    r = aioredis.Redis.from_url(url)
    try:
        total = 0
        async for key in r.scan_iter(match=pattern, count=1000):
            total += int(await r.hget(key, "s") or 0)
        if total != expect:
            raise SystemExit(f"offsets {total} != publications {expect} under {pattern}: lost or doubled")
    finally:
        await r.flushall()
        await r.aclose()


# ---------------------------------------------------------------- through a server
API_KEY = "bench-redis-publish"


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, body: bytes) -> Any:
    """One keep-alive POST /api: a hand-rolled HTTP/1.1 client costs the generator little."""
    writer.write(b"POST /api HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-API-Key: %s\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (port, API_KEY.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return json.loads(await reader.readexactly(length)) if length else None


async def api_publishes(port: int, total: int, publishers: int, channels: int, batch: int) -> float:
    """``publishers`` keep-alive connections posting ``publish`` (or ``batch`` of that many, parallel)."""
    counter = iter(range(0, total, batch))
    failures: list[str] = []
    started = time.perf_counter()

    async def publisher() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for first in counter:
                if time.perf_counter() - started > MAX_SECONDS:
                    return
                if batch == 1:
                    body: dict[str, Any] = {"method": "publish", "params": {"channel": channel_of("stream:c", first, channels), "data": data(first)}}
                else:
                    body = {"method": "batch", "params": {"parallel": True, "commands": [
                        {"publish": {"channel": channel_of("stream:c", i, channels), "data": data(i)}}
                        for i in range(first, min(total, first + batch))]}}
                reply = await _post(reader, writer, port, json.dumps(body).encode())
                for one in (reply.get("replies", [reply]) if isinstance(reply, dict) else [reply]):
                    if not isinstance(one, dict) or "error" in one:
                        failures.append(str(one))
        finally:
            writer.close()

    await asyncio.gather(*(publisher() for _ in range(publishers)))
    if failures:
        raise SystemExit(f"{len(failures)} API publishes failed, first: {failures[0]}")
    return total / (time.perf_counter() - started)


def server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_server(url: str, work: Path) -> Server:
    """A fresh Squall process on the Redis engine at ``url`` (bench/squall.toml, API key ``API_KEY``)."""
    return start_server("squall", "", work / "squall.log", ["--engine", "redis", "--redis-url", url, "--api-key", API_KEY])


async def through_server(url: str, work: Path, total: int, publishers: int, channels: int, batch: int) -> tuple[float, float]:
    """API publishes/s through a fresh Redis-engine server, and its CPU µs per publication."""
    server = engine_server(url, work)
    try:
        cpu0 = server_cpu(server.proc.pid)
        rate = await api_publishes(server.port, total, publishers, channels, batch)
        return rate, (server_cpu(server.proc.pid) - cpu0) * 1e6 / total
    finally:
        server.stop()


async def client_publishes(url: str, work: Path, total: int, connections: int, channels: int) -> tuple[float, float]:
    """Client publishes/s through a fresh Redis-engine server (bench/native_publish.c, ``connections``
    closed loops to ``stream:c<k>``), and the server's CPU µs per publication between the generator's marks."""
    exe = native.build(program="native_publish")  # before the server starts: a first build takes a while
    server = engine_server(url, work)
    cpu: dict[str, float] = {}
    try:
        spec = native.Publish(port=server.port, connections=connections, channels=channels, publications=total,
                              duration=MAX_SECONDS)
        pid = server.proc.pid
        result = await asyncio.to_thread(native.run, spec, lambda name: cpu.__setitem__(name, server_cpu(pid)), exe)
    finally:
        server.stop()
    if result["exit_code"] != 0 or "start" not in cpu or "end" not in cpu:
        raise SystemExit(f"client publishes failed: {result}")
    return float(result["rate"]), (cpu["end"] - cpu["start"]) * 1e6 / max(1, int(result["measured_ok"]))


SIDES = ("raw", "one", "engine", "api", "batch", "client")
SERVER_SIDES = ("api", "batch", "client")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--publishers", type=int, default=200)
    ap.add_argument("--publications", type=int, default=40000)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50, help="publishes per API batch request")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sides", default=",".join(SIDES),
                    help=f"comma-separated sides to run, of {','.join(SIDES)} (ratios need raw)")
    ap.add_argument("--engine-only", action="store_true", help="skip the runs through a server")
    args = ap.parse_args()
    chosen = [x.strip() for x in args.sides.split(",") if x.strip()]
    unknown = sorted(set(chosen) - set(SIDES))
    if unknown or not chosen:
        raise SystemExit(f"--sides: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(SIDES)}")
    if args.engine_only:
        chosen = [x for x in chosen if x not in SERVER_SIDES]
    if args.publishers < 1 or args.publications < 1 or args.channels < 1 or args.batch < 1 or args.rounds < 1:
        raise SystemExit("--publishers, --publications, --channels, --batch and --rounds must be positive")
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("no redis-server found")
    work = Path(tempfile.mkdtemp(prefix="squall-redis-publish-"))
    rs = RedisServer(binary, work / "redis")
    rs.start()
    n, p, c = args.publications, args.publishers, args.channels
    rows: dict[str, list[float]] = {}
    try:
        for rnd in range(args.rounds):
            every: dict[str, tuple[str, str, Callable[[], Awaitable[Any]]]] = {
                "raw": ("raw pipelined", "r:m:*", lambda: raw_pipelined(rs.url, n, p, c, "r:")),
                "one": ("raw one by one", "o:m:*", lambda: raw_one_by_one(rs.url, n, p, c, "o:")),
                "engine": ("engine", "e:{0}:meta:*", lambda: engine(rs.url, n, p, c, "e")),
                "api": ("server, API publish", "squall:*:meta:*", lambda: through_server(rs.url, work, n, p, c, 1)),
                "batch": (f"server, API batch of {args.batch}", "squall:*:meta:*",
                          lambda: through_server(rs.url, work, n, max(1, p // args.batch), c, args.batch)),
                "client": ("server, client publish", "squall:*:meta:*",
                           lambda: client_publishes(rs.url, work, n, p, c)),
            }
            sides = [every[key] for key in SIDES if key in chosen]
            if rnd % 2:
                sides.reverse()
            for name, pattern, side in sides:
                got = await side()
                rate, extra = got if isinstance(got, tuple) else (got, None)
                rows.setdefault(name, []).append(rate)
                more = "" if extra is None else (
                    f" ({extra:.1f} calls per pipeline)" if name == "engine" else f" (server {extra:.1f} µs CPU per publication)")
                print(f"  round {rnd}: {name}: {rate:,.0f} publications/s{more}", flush=True)
                await check_offsets(rs.url, pattern, n)
    finally:
        rs.stop()
    base = rows.get("raw pipelined")
    for name, rates in rows.items():
        if base is None:
            print(f"result: {name}: median {statistics.median(rates):,.0f}/s (no raw pipelined side to compare with)")
            continue
        ratios = sorted(r / b for r, b in zip(rates, base))
        print(f"result: {name}: median {statistics.median(rates):,.0f}/s, "
              f"{statistics.median(ratios):.0%} of raw pipelined (rounds {', '.join(f'{x:.0%}' for x in ratios)})")


if __name__ == "__main__":
    asyncio.run(main())
