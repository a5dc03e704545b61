"""The dashboard scenario with fossil delta: bytes per delivery with and without delta, same run.

Not a test: run it by hand (issue 16's benchmark)::

    python -m bench.delta [--subscribers 20] [--updates 200] [--size 5000] [--change 0.01]

One Squall (memory engine, a namespace with ``allowed_delta_types = ["fossil"]``)
serves two groups of WebSocket JSON subscribers of one channel: half subscribe
with ``delta: "fossil"``, half without. The API publishes ``--updates``
versions of a ~``--size``-byte JSON object, each changing ``--change`` of its
fields. Every frame each subscriber receives is counted (WebSocket payload
bytes) and decoded (deltas applied with :func:`channels.delta_fossil.apply`);
a delta subscriber that decodes anything other than what was published fails
the run. Prints bytes per delivery for both groups and their ratio, and the
server's CPU per publication against a second server in the same run whose
subscribers all take full payloads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil
from tornado.websocket import websocket_connect

from channels.delta_fossil import apply
from tests.helpers.squall_process import OPEN_NAMESPACE, start_squall, test_config

KEY = "bench-delta-key-0123456789abcdef"
CHANNEL = "dash:bench"


def documents(n: int, size: int, change: float, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` versions of a ~``size``-byte object, each with ``change`` of its fields new."""
    rnd = random.Random(seed)
    fields = max(1, size // 50)
    doc = {f"metric_{i:04d}": {"value": rnd.randint(0, 10**9), "unit": "ms", "ok": True} for i in range(fields)}
    out = []
    for _ in range(n):
        out.append(json.loads(json.dumps(doc)))
        for _ in range(max(1, round(fields * change))):
            doc[f"metric_{rnd.randrange(fields):04d}"]["value"] = rnd.randint(0, 10**9)
    return out


class Subscriber:
    def __init__(self, delta: bool) -> None:
        self.delta = delta
        self.bytes = 0
        self.got: list[Any] = []
        self._prev = b""

    async def run(self, url: str, ready: asyncio.Event, n: int) -> None:
        ws = await websocket_connect(url, max_message_size=1 << 24)
        sub: dict[str, Any] = {"channel": CHANNEL}
        if self.delta:
            sub["delta"] = "fossil"
        await ws.write_message(b'{"id":1,"connect":{}}\n' + orjson.dumps({"id": 2, "subscribe": sub}))
        while len(self.got) < n:
            msg = await ws.read_message()
            if msg is None:
                raise RuntimeError("connection closed")
            raw = msg if isinstance(msg, bytes) else msg.encode()
            for line in raw.split(b"\n"):
                obj = orjson.loads(line)
                if obj.get("id") == 2:
                    if bool(obj["subscribe"].get("delta")) != self.delta:
                        raise RuntimeError("delta not negotiated as asked")
                    ready.set()
                pub = (obj.get("push") or {}).get("pub")
                if pub is None:
                    continue
                self.bytes += len(line)
                self.got.append(self._decode(pub))
        ws.close()

    def _decode(self, pub: dict[str, Any]) -> Any:
        if not self.delta:
            return pub["data"]
        raw = pub["data"].encode()
        self._prev = apply(self._prev, raw) if pub.get("delta") else raw
        return orjson.loads(self._prev)


def publish(base: str, data: Any) -> None:
    req = urllib.request.Request(base + "/api/publish", data=orjson.dumps({"channel": CHANNEL, "data": data}),
                                 headers={"X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


async def measure(subscribers: int, updates: int, size: int, change: float, mixed: bool = True) -> dict[str, Any]:
    ns = {"name": "dash", **OPEN_NAMESPACE, "history_size": 0, "force_recovery": False,
          "allowed_delta_types": ["fossil"]}
    docs = documents(updates, size, change)
    with tempfile.TemporaryDirectory() as tmp:
        sp = start_squall(Path(tmp), test_config(api_key=KEY, namespaces=[ns], client_queue_max_size=1 << 24))
        try:
            url = sp.ws_url.replace("/connection/websocket", "") + "/connection/websocket"
            subs = [Subscriber(delta=mixed and i % 2 == 1) for i in range(subscribers)]
            events = [asyncio.Event() for _ in subs]
            tasks = [asyncio.ensure_future(s.run(url, e, updates)) for s, e in zip(subs, events)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
            proc = psutil.Process(sp.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            loop = asyncio.get_running_loop()
            for d in docs:
                await loop.run_in_executor(None, publish, sp.url, d)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            elapsed = time.monotonic() - t0
        finally:
            sp.stop()
    for s in subs:
        if s.got != docs:
            raise RuntimeError(f"a {'delta' if s.delta else 'plain'} subscriber decoded something else")
    full = [s for s in subs if not s.delta]
    delta = [s for s in subs if s.delta] or full
    per_full = sum(s.bytes for s in full) / (len(full) * updates)
    per_delta = sum(s.bytes for s in delta) / (len(delta) * updates)
    return {
        "subscribers": subscribers, "updates": updates, "object_bytes": len(orjson.dumps(docs[0])),
        "change": change, "bytes_per_delivery_full": round(per_full, 1), "bytes_per_delivery_delta": round(per_delta, 1),
        "delta_over_full": round(per_delta / per_full, 4),
        "server_cpu_ms_per_publication": round(cpu * 1000 / updates, 3), "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=20, help="half with delta, half without (default 20)")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--size", type=int, default=5000, help="object size in bytes (default 5000)")
    p.add_argument("--change", type=float, default=0.01, help="fraction of fields changed per update (default 0.01)")
    a = p.parse_args(argv)
    n = max(2, a.subscribers)
    r = asyncio.run(measure(n, a.updates, a.size, a.change))
    base = asyncio.run(measure(n, a.updates, a.size, a.change, mixed=False))
    r["baseline_server_cpu_ms_per_publication"] = base["server_cpu_ms_per_publication"]
    print(json.dumps(r, indent=2))
    print(f"bytes per delivery: full {r['bytes_per_delivery_full']}, delta {r['bytes_per_delivery_delta']}"
          f" -> delta/full = {r['delta_over_full']:.1%}")
    print(f"server CPU per publication: half the subscribers on delta {r['server_cpu_ms_per_publication']} ms,"
          f" none on delta {base['server_cpu_ms_per_publication']} ms"
          f" -> {r['server_cpu_ms_per_publication'] / base['server_cpu_ms_per_publication']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
