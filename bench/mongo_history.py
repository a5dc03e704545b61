"""Persisted publications per second: MongoHistoryStore.append vs a raw insert_many loop.

Not a test: run it by hand and copy the numbers into docs/HISTORY.md::

    python -m bench.mongo_history [--publications 20000] [--publishers 1000]

Starts its own SecantusDB in a temp dir (or uses MONGO_URL), then, in the
same run and on the same server, measures

* raw: one task, ``insert_many(batch_size docs, ordered=False)`` back to back,
  the same documents over the same channels, each batch in index order (the
  store's own ceiling: one batch in flight);
* store: ``--publishers`` concurrent tasks each awaiting ``append`` in a loop
  over ``--channels`` channels, with per-append latency recorded.

Rounds alternate which side goes first and drop their data afterwards; the
median of the per-round store/raw ratios counts. A third raw
loop with batches of the store's mean batch size separates what the store
itself costs from what fewer outstanding appends cost (a batch can hold at
most the appends waiting for it: about ``--publishers``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels import history_mongo_codec as codec  # noqa: E402
from channels.history_mongo import MongoHistoryStore  # noqa: E402
from channels.types import ClientInfo, Publication, StreamOptions  # noqa: E402

OPTS = StreamOptions(history_size=1_000_000)
MAX_SECONDS = 120.0  # hard cap per measured round


def payload(i: int) -> Publication:
    return Publication(data={"text": "x" * 80, "n": i}, info=ClientInfo("client-id", "user"), time=1)


async def raw_rate(url: str, database: str, total: int, batch_size: int, channels: int) -> float:
    """The same documents (channels, offsets, shape), batch_size per insert_many, in key order."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    coll = client[database]["raw"]
    # the store's indexes, so both sides maintain the same ones
    await coll.create_index([("channel", 1), ("offset", 1)], unique=True)
    await coll.create_index([("expire_at", 1)], expireAfterSeconds=0, sparse=True)
    start = time.perf_counter()
    done = 0
    while done < total and time.perf_counter() - start < MAX_SECONDS:
        docs = []
        for _ in range(min(batch_size, total - done)):
            pub = payload(done)
            pub.offset, pub.epoch = done // channels + 1, "e"
            docs.append(codec.document(f"bench{done % channels}", pub, codec.body(pub), 0))
            done += 1
        docs.sort(key=lambda d: (d["channel"], d["offset"]))
        await coll.insert_many(docs, ordered=False)
    elapsed = time.perf_counter() - start
    await client.close()
    return done / elapsed


async def store_rate(
    url: str, database: str, total: int, publishers: int, channels: int, window_ms: float, batch_size: int
) -> tuple[float, list[float], float]:
    store = MongoHistoryStore(
        url, database=database, write_concern="", batch_window_ms=window_ms, batch_size=batch_size
    )
    await store.start()
    latencies: list[float] = []
    per = total // publishers
    deadline = time.perf_counter() + MAX_SECONDS

    async def publisher(k: int) -> None:
        ch = f"bench{k % channels}"
        for i in range(per):
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            await store.append(ch, payload(i), OPTS)
            latencies.append(time.perf_counter() - t0)

    for c in range(channels):  # load stream meta outside the measurement
        await store.position(f"bench{c}")
    start = time.perf_counter()
    await asyncio.gather(*(publisher(k) for k in range(publishers)))
    elapsed = time.perf_counter() - start
    batches = store.batches
    await store.close()
    print(f"    store: {len(latencies)} appends in {batches} batches ({len(latencies) / max(1, batches):.0f}/batch)")
    return len(latencies) / elapsed, latencies, len(latencies) / max(1, batches)


async def drop(url: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    await client.drop_database(name)
    await client.close()


def p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * 0.99))] if s else 0.0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publications", type=int, default=20000)
    ap.add_argument("--publishers", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--window-ms", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3, help="raw/store pairs; the median ratio counts")
    args = ap.parse_args()

    server = None
    url = os.environ.get("MONGO_URL", "")
    tmp = tempfile.TemporaryDirectory(prefix="squall-bench-")
    if not url:
        from tests.helpers.mongo_server import SecantusServer
        from tests.helpers.procs import free_port

        server = SecantusServer(free_port(), Path(tmp.name) / "data", Path(tmp.name) / "secantusd.log")
        server.start()
        url = server.url
    database = f"squall_bench_{uuid.uuid4().hex[:8]}"
    print(f"server: {'SecantusDB (started here)' if server else url}; {args.publications} publications, "
          f"{args.publishers} publishers, {args.channels} channels, batch {args.batch_size}, window {args.window_ms} ms")
    try:
        raws, stores, lats, sizes = [], [], [], []
        for rnd in range(args.rounds):
            # Alternate which side goes first, and drop each round's data, so
            # neither side is favoured by a fresher server.
            async def raw() -> None:
                r = await raw_rate(url, f"{database}_raw{rnd}", args.publications, args.batch_size, args.channels)
                await drop(url, f"{database}_raw{rnd}")
                print(f"  round {rnd}: raw insert_many loop: {r:,.0f} docs/s")
                raws.append(r)

            async def store() -> None:
                s, lat, size = await store_rate(url, f"{database}_store{rnd}", args.publications, args.publishers,
                                                args.channels, args.window_ms, args.batch_size)
                await drop(url, f"{database}_store{rnd}")
                print(f"  round {rnd}: MongoHistoryStore.append: {s:,.0f} publications/s, p99 {p99(lat) * 1000:.1f} ms")
                stores.append(s)
                lats.append(lat)
                sizes.append(size)

            for side in ((raw, store) if rnd % 2 == 0 else (store, raw)):
                await side()
        ratios = sorted(s / r for s, r in zip(stores, raws))
        median = ratios[len(ratios) // 2]
        mid = [s / r for s, r in zip(stores, raws)].index(median)  # the median round
        same = max(1, round(sizes[mid]))
        r_same = await raw_rate(url, f"{database}_raw_same", args.publications, same, args.channels)
        print(f"  raw insert_many loop with the store's mean batch ({same} docs): {r_same:,.0f} docs/s")
        all_lat = [x for lat in lats for x in lat]
        print(f"result: store / raw per round {', '.join(f'{r:.0%}' for r in ratios)}; median {median:.0%} "
              f"(goal >= 80%); {stores[mid] / r_same:.0%} of raw at the same batch size; "
              f"append p99 {p99(all_lat) * 1000:.1f} ms, p50 {sorted(all_lat)[len(all_lat) // 2] * 1000:.1f} ms")
    finally:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        for name in await client.list_database_names():
            if name.startswith(database):
                await client.drop_database(name)
        await client.close()
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
