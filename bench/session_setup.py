"""What a connection's protocol work costs in-process: Squall's session against the floor's.

Not a test: run it by hand and copy the numbers into docs/PERFORMANCE.md::

    python -m bench.session_setup [--connections 20000] [--rounds 3]

The setup bench (``bench/run --scenarios idle``) measures the whole server:
accept, handshake, frames and the protocol. This one takes out everything
but the protocol, so a change to the session shows in µs without the noise
of two processes on shared cores. In one process, per connection, in the
same run:

* **squall**: a :class:`handlers.session.ClientSession` of the app that
  ``bench/squall.toml`` builds (memory engine, anonymous, namespace
  ``bench``), on an in-memory wire (a fake socket, not a fake backend: the
  hub, broker and metrics are the real ones), opened, then the frames of
  the setup bench: ``connect`` and two ``subscribe`` to a pool of
  ``--channels`` channels, as ``bench/native_idle.c`` sends them;
* **floor**: what ``bench/baseline_asyncio.py`` does with the same three
  frames: ``orjson.loads``, :class:`bench.baseline_core.Core`'s constant
  replies, ``orjson.dumps`` and framing.

Every connection stays open until the round ends (as in the setup bench),
then all are closed. A round fails unless every reply is the one expected
and the hub holds two subscriptions per Squall connection. The per-stage
times of the median round are printed, with the ratio Squall / floor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable

import orjson

from bench.baseline_asyncio import frame
from bench.baseline_core import Core
from handlers.protocol import Codec, codec_for
from handlers.session import ClientSession
from server.app import build
from server.settings import load

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("open", "connect", "subscribe 1", "subscribe 2")


class MemoryWire:
    """A Wire that keeps what the session writes (the socket side only)."""

    __slots__ = ("codec", "written", "closed")

    def __init__(self) -> None:
        self.codec: Codec = codec_for("json")
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    @property
    def key(self) -> Hashable:
        return ("memory", "json")

    def frame(self, payload: bytes) -> bytes:
        return frame(payload)

    def write(self, data: bytes, conflate: str | None = None) -> None:
        self.written.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def setup_frames(i: int, channels: int) -> tuple[bytes, bytes, bytes]:
    """Connection ``i``'s three frames, as bench/native_idle.c sends them."""
    return (
        b'{"id":1,"connect":{}}',
        b'{"id":2,"subscribe":{"channel":"bench:idle-%d"}}' % ((2 * i) % channels),
        b'{"id":3,"subscribe":{"channel":"bench:idle-%d"}}' % ((2 * i + 1) % channels),
    )


@dataclass
class Round:
    squall: list[float] = field(default_factory=lambda: [0.0] * len(STAGES))  # seconds per stage, summed
    floor: list[float] = field(default_factory=lambda: [0.0] * len(STAGES))
    connections: int = 0

    def us(self, side: str) -> list[float]:
        return [t * 1e6 / self.connections for t in getattr(self, side)]

    def ratio(self) -> float:
        return sum(self.squall) / sum(self.floor)


def _check_replies(written: list[bytes]) -> None:
    replies = [orjson.loads(data[4 if data[1] == 126 else 2:]) for data in written]  # unmasked, < 64 KiB
    if len(replies) != 3 or [r.get("id") for r in replies] != [1, 2, 3] or "connect" not in replies[0] \
            or replies[1] != {"id": 2, "subscribe": {}} or replies[2] != {"id": 3, "subscribe": {}}:
        raise RuntimeError(f"unexpected replies: {replies}")


async def squall_round(conf: Path, n: int, channels: int, warmup: int) -> tuple[list[float], int]:
    """Seconds per stage summed over ``n`` Squall connections (after ``warmup`` untimed ones)."""
    sq = build(load(str(conf), environ={}))
    ctx = sq.ctx
    totals = [0.0] * len(STAGES)
    sessions: list[ClientSession] = []
    clock = time.perf_counter
    for i in range(warmup + n):
        f1, f2, f3 = setup_frames(i, channels)
        t0 = clock()
        wire = MemoryWire()
        s = ClientSession(ctx, wire, "127.0.0.1")  # type: ignore[arg-type]
        s.opened()
        t1 = clock()
        await s.handle_frame(f1)
        t2 = clock()
        await s.handle_frame(f2)
        t3 = clock()
        await s.handle_frame(f3)
        t4 = clock()
        _check_replies(wire.written)
        sessions.append(s)
        if i >= warmup:
            totals[0] += t1 - t0
            totals[1] += t2 - t1
            totals[2] += t3 - t2
            totals[3] += t4 - t3
    held = sum(ctx.hub.channel_counts().values())
    if held != 2 * len(sessions):
        raise RuntimeError(f"the hub holds {held} subscriptions, expected {2 * len(sessions)}")
    for s in sessions:
        await s.closed_by_peer()
    await ctx.hub.drain_background()
    left = sum(ctx.hub.channel_counts().values())
    if left:
        raise RuntimeError(f"{left} subscriptions left after every connection closed")
    return totals, n


def floor_round(n: int, channels: int, warmup: int) -> list[float]:
    """Seconds per stage summed over ``n`` connections of the floor's protocol code."""
    core: Core[Any] = Core(lambda members, push: None, 25.0)
    totals = [0.0] * len(STAGES)
    peers: list[object] = []
    clock = time.perf_counter
    for i in range(warmup + n):
        frames = setup_frames(i, channels)
        t0 = clock()
        peer = object()
        core.opened(peer)
        stamps = [t0, clock()]
        written = []
        for data in frames:
            reply = core.handle(peer, orjson.loads(data))
            written.append(frame(orjson.dumps(reply)))
            stamps.append(clock())
        if len(written) != 3:
            raise RuntimeError("the floor skipped a reply")
        peers.append(peer)
        if i >= warmup:
            for k in range(len(STAGES)):
                totals[k] += stamps[k + 1] - stamps[k]
    for peer in peers:
        core.closed(peer)
    return totals


async def run(conf: Path, connections: int, channels: int, rounds: int, warmup: int) -> list[Round]:
    out = []
    for r in range(rounds):
        rnd = Round()
        sides = ("floor", "squall") if r % 2 else ("squall", "floor")  # alternate which goes first
        for side in sides:
            gc.collect()
            if side == "squall":
                rnd.squall, rnd.connections = await squall_round(conf, connections, channels, warmup)
            else:
                rnd.floor = floor_round(connections, channels, warmup)
        out.append(rnd)
    return out


def report(rounds: list[Round]) -> str:
    ratios = [r.ratio() for r in rounds]
    median = sorted(rounds, key=lambda r: r.ratio())[len(rounds) // 2]
    sq, fl = median.us("squall"), median.us("floor")
    lines = [f"{median.connections} connections per round, {len(rounds)} rounds; µs per connection (median round):",
             "| stage | squall | floor |", "|---|---|---|"]
    for name, a, b in zip(STAGES, sq, fl):
        lines.append(f"| {name} | {a:.1f} | {b:.1f} |")
    lines.append(f"| **total** | **{sum(sq):.1f}** | **{sum(fl):.1f}** |")
    lines.append(f"squall / floor: {statistics.median(ratios):.1f}x (rounds {', '.join(f'{x:.1f}' for x in ratios)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--connections", type=int, default=20000, help="timed connections per round (held open)")
    ap.add_argument("--warmup", type=int, default=2000, help="untimed connections first, per round")
    ap.add_argument("--channels", type=int, default=1000, help="channel pool (native_idle's --pool; bench/run --full has 1000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--config", type=Path, default=ROOT / "bench" / "squall.toml")
    args = ap.parse_args(argv)
    if not (0 < args.connections <= 100_000 and 0 <= args.warmup <= 100_000 and 0 < args.rounds <= 20):
        ap.error("--connections 1..100000, --warmup 0..100000, --rounds 1..20")
    rounds = asyncio.run(run(args.config, args.connections, args.channels, args.rounds, args.warmup))
    print(report(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
