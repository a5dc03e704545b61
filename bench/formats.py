"""Protobuf against JSON broadcast, same run: the server's CPU per delivery in each format.

Not a test: run it by hand (issue 15's target, protobuf <= 1.1x JSON, loss 0)::

    python -m bench.formats [--subscribers 5000] [--duration 15] [--rounds 3]

Each round starts a fresh Squall (``bench/squall.toml``, memory engine) for
each format, pinned to one core with the C broadcast generator
(``bench/native_broadcast.c``, ``--format json`` or ``--format protobuf``)
pinned to the other, the order alternating between rounds. The generator
publishes the same JSON bytes in both formats, so the difference is the
codec: decoding the publish, encoding the push once per publication, the
frames (the generator's batched reads wake per publication frame, sized by
what it saw in the warm-up, so both formats are read alike). The server's CPU is sampled at the generator's marks (the measured
interval, after warm-up) and divided by the deliveries made in it. The
result is the median of the per-round ratios protobuf / JSON; a run that
lost or refused anything fails it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import native
from bench.suite import pin, start_server
from loadtest.serverstats import ServerSampler

FORMATS = ("json", "protobuf")
TARGET = 1.1


def measure(fmt: str, subscribers: int, duration: float, batch: int, exe: Path, work: Path, tag: str) -> dict[str, Any]:
    """One generator run in ``fmt`` against a fresh server; adds the server's µs per delivery."""
    server = start_server("squall", "0", work / f"squall-{fmt}{tag}.log")
    marks: dict[str, dict[str, float]] = {}
    try:
        sampler = ServerSampler(server.proc.pid)
        spec = native.Broadcast(port=server.port, subscribers=subscribers, channel=f"bench:{fmt}", batch=batch,
                                duration=duration, format=fmt)
        r = native.run(spec, lambda name: marks.__setitem__(name, sampler.sample()), exe, pin("1"))
    finally:
        server.stop()
    start, end = marks.get("start", {}), marks.get("end", {})
    if "cpu" in start and "cpu" in end and r["measured_deliveries"]:
        used = end["cpu"] - start["cpu"]
        r["server_us_per_delivery"] = used * 1e6 / r["measured_deliveries"]
        r["server_cores"] = used / (end["t"] - start["t"])
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="frames the generator lets pile up per socket before reading")
    args = ap.parse_args(argv)
    exe = native.build()
    work = Path(tempfile.mkdtemp(prefix="squall-formats-"))
    per: dict[str, list[float]] = {f: [] for f in FORMATS}
    failed = False
    for rnd in range(args.rounds):
        for fmt in (FORMATS if rnd % 2 == 0 else FORMATS[::-1]):
            r = measure(fmt, args.subscribers, args.duration, args.batch, exe, work, f"-{rnd}")
            failed = failed or r["exit_code"] != 0 or r["loss"] != 0
            per[fmt].append(r.get("server_us_per_delivery", 0.0))
            print(f"round {rnd}, {fmt:8}: {r['deliveries_per_s']:,.0f} deliveries/s; server "
                  f"{r.get('server_cores', 0):.2f} cores, {r.get('server_us_per_delivery', 0):.3f} µs/delivery; "
                  f"generator {r['cpu_us_per_delivery']:.3f} µs/delivery; {r.get('frame_bytes', 0):.0f}-byte frames; ready {r['ready']}/{r['subscribers']}, "
                  f"loss {r['loss']}, closes {r['closes']}, publish errors {r['publish_errors']}", flush=True)
    ratios = [pb / js for js, pb in zip(per["json"], per["protobuf"]) if js > 0 and pb > 0]
    if not ratios:
        print("result: no measurement", file=sys.stderr)
        return 1
    ratio = statistics.median(ratios)
    print(f"result: protobuf / JSON server CPU per delivery = {ratio:.2f}x (median of rounds "
          f"{', '.join(f'{x:.2f}' for x in ratios)}; target <= {TARGET}x, loss 0)"
          + ("; a run lost or refused messages" if failed else ""))
    return 1 if failed or ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
