"""``--processes 2`` against one process on the Redis engine, and against the memory engine, same run.

Not a test: run it by hand (issue 7's last target, >= 1.7x deliveries/s)::

    python -m bench.processes [--subscribers 5000] [--duration 15] [--rounds 3]

Starts its own redis-server on a free port, then for each round a fresh
Squall with ``--processes 1`` and one with ``--processes 2``, both
``bench/squall.toml --engine redis``, and one ``--engine memory`` process
(the order rotates between rounds), and
drives each with the C broadcast generator (``bench/native.py``). Nothing is
pinned: workers, redis-server and the generator share the machine's cores,
which is the point. The generator costs about a tenth of the server's CPU per
delivery; with the Python load tester, which costs about as much as the
server, a second worker has no core to run on (docs/PERFORMANCE.md).

Prints per run deliveries/s, the workers' CPU (cores used, µs per delivery),
the generator's own CPU, loss, and how the connections split between workers;
the results are the medians of the per-round ratios: deliveries/s of two
processes over one, and server CPU per delivery of the two Redis-engine
nodes over the memory engine's (issue 19: <= 1.1x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import native
from bench.suite import Server, start_server
from loadtest.serverstats import ServerSampler
from tests.helpers.redis_server import RedisServer, find_redis_server


def _established(procs: list[psutil.Process]) -> list[int]:
    """Established TCP sockets per worker (its clients and its Redis links; the parent holds none)."""
    counts = []
    for p in procs:
        try:
            n = sum(1 for c in p.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)
        except psutil.Error:
            continue
        if n:
            counts.append(n)
    return counts


def measure(server: Server, spec: native.Broadcast, exe: Path) -> dict[str, Any]:
    """One generator run against ``server``; the server's CPU is read at the generator's marks."""
    sampler = ServerSampler(server.proc.pid)
    root = psutil.Process(server.proc.pid)
    marks: dict[str, tuple[float, float]] = {}
    split: list[int] = []

    def on_mark(name: str) -> None:
        marks[name] = (time.monotonic(), sampler.sample().get("cpu", 0.0))
        if name == "start":
            split.extend(_established([root, *root.children(recursive=True)]))

    r = native.run(spec, on_mark, exe)
    if "start" in marks and "end" in marks and r["measured_deliveries"]:
        (t0, c0), (t1, c1) = marks["start"], marks["end"]
        r["server_cores"] = (c1 - c0) / (t1 - t0)
        r["server_us_per_delivery"] = (c1 - c0) * 1e6 / r["measured_deliveries"]
    r["connections_per_worker"] = split
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="frames the generator lets pile up per socket before reading")
    ap.add_argument("--window", type=int, default=64, help="publications the generator keeps ahead of the slowest subscriber")
    args = ap.parse_args(argv)
    binary = find_redis_server()
    if binary is None:
        print("no redis-server found", file=sys.stderr)
        return 1
    exe = native.build()
    work = Path(tempfile.mkdtemp(prefix="squall-processes-"))
    redis = RedisServer(binary, work / "redis")
    redis.start()
    configs = [("redis", 1), ("redis", 2), ("memory", 1)]
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    costs: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    failed = False
    try:
        for rnd in range(args.rounds):
            order = configs[rnd % len(configs):] + configs[: rnd % len(configs)]
            for engine, n in order:
                extra = ["--engine", engine, "--processes", str(n)]
                if engine == "redis":
                    extra += ["--redis-url", redis.url]
                server = start_server("squall", "", work / f"squall-{engine}-{n}.log", extra)
                spec = native.Broadcast(port=server.port, subscribers=args.subscribers, channel="bench:processes",
                                        batch=args.batch, window=args.window, duration=args.duration)
                try:
                    r = measure(server, spec, exe)
                finally:
                    server.stop()
                failed = failed or r["exit_code"] != 0
                rates[(engine, n)].append(r["deliveries_per_s"])
                costs[(engine, n)].append(r.get("server_us_per_delivery", 0.0))
                print(f"round {rnd}, {engine} engine, --processes {n}: {r['deliveries_per_s']:,.0f} deliveries/s; "
                      f"workers {r.get('server_cores', 0):.2f} cores, {r.get('server_us_per_delivery', 0):.2f} µs/delivery; "
                      f"generator {r['cpu_us_per_delivery']:.2f} µs/delivery; "
                      f"loss {r['loss']}, closes {r['closes']}, publish errors {r['publish_errors']}; "
                      f"connections per worker {r['connections_per_worker']}", flush=True)
    finally:
        redis.stop()
    one, two, memory = ("redis", 1), ("redis", 2), ("memory", 1)
    ratios = [b / a for a, b in zip(rates[one], rates[two]) if a > 0]
    cost_ratios = [b / a for a, b in zip(costs[memory], costs[two]) if a > 0 and b > 0]
    if not ratios or not cost_ratios:
        print("result: no measurement", file=sys.stderr)
        return 1
    print(f"result: --processes 2 / 1 = {statistics.median(ratios):.2f}x deliveries/s "
          f"(median of rounds {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 1.7x)"
          + ("; a run lost or refused messages" if failed else ""))
    print(f"result: server CPU per delivery, two Redis-engine nodes / one memory-engine process = "
          f"{statistics.median(cost_ratios):.2f}x (median of rounds {', '.join(f'{x:.2f}' for x in cost_ratios)}; "
          f"goal <= 1.1x)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
