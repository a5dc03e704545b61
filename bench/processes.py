"""``--processes 2`` against one process, both on the Redis engine, same run.

Not a test: run it by hand (issue 7's last target, >= 1.7x deliveries/s)::

    python -m bench.processes [--subscribers 5000] [--duration 15] [--rounds 2]

Starts its own redis-server on a free port, then for each round and each
process count a fresh Squall (``bench/squall.toml`` plus ``--engine redis
--processes N``) and the load tester's ``broadcast`` scenario against it.
Nothing is pinned: the workers, redis-server and the load tester share the
machine's cores, which is the point of the comparison. Prints deliveries/s,
server CPU per delivery (all workers) and the load tester's own CPU, whose
share of the machine bounds what two workers can show on two cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.suite import ROOT, Server, start_server
from tests.helpers.redis_server import RedisServer, find_redis_server


def run_broadcast(server: Server, subscribers: int, duration: float, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "loadtest", "broadcast", "--subscribers", str(subscribers), "--window", "8",
        "--duration", str(duration), "--url", server.ws_url, "--namespace", "bench",
        "--server-pid", str(server.proc.pid), "--ramp", "0", "--quiet", "--json", str(out),
        "--stats-url", f"http://127.0.0.1:{server.port}/metrics", "--stats-key", "squall_deliveries_total",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(out.read_text())
    result["tester_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    binary = find_redis_server()
    if binary is None:
        print("no redis-server found", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="squall-processes-"))
    redis = RedisServer(binary, work / "redis")
    redis.start()
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for rnd in range(args.rounds):
            for n in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                extra = ["--engine", "redis", "--redis-url", redis.url, "--processes", str(n)]
                server = start_server("squall", "", work / f"squall-{n}.log", extra)
                try:
                    r = run_broadcast(server, args.subscribers, args.duration, work / f"p{n}-{rnd}.json")
                finally:
                    server.stop()
                srv = r.get("server", {})
                rates[n].append(r["deliveries_per_s"])
                print(f"round {rnd}, --processes {n}: {r['deliveries_per_s']:,.0f} deliveries/s, "
                      f"server CPU {srv.get('cpu_us_per_delivery', '-')} µs/delivery, "
                      f"load tester CPU {r['tester_cpu_s']:.1f} s in {r['run_seconds']:.1f} s, "
                      f"loss {r['loss']}, errors {r['error_count']}", flush=True)
    finally:
        redis.stop()
    best1, best2 = max(rates[1]), max(rates[2])
    print(f"result: --processes 2 / 1 = {best2 / best1:.2f}x deliveries/s (best rounds: {best2:,.0f} vs {best1:,.0f}; "
          f"goal >= 1.7x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
