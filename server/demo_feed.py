"""``python run.py demo-feed``: synthetic metrics for the dashboard page.

Publishes a few series (``metrics:cpu``, ``metrics:rps``, ``metrics:mem``,
``metrics:latency``) at ``--rate`` Hz through the server HTTP API, one
``batch`` request per tick, exactly as a backend job would with ``cent``. The
API key defaults to the server configuration's ``api_key`` (the same
``--config`` / ``SQUALL_*`` environment the server reads), so with a config
that has a key both commands agree without flags.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from dataclasses import dataclass, field

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

SERIES = ("cpu", "rps", "mem", "latency")
NAMESPACE = "metrics"


class FeedError(Exception):
    """The server refused the feed for a reason retrying will not fix."""


@dataclass
class Signals:
    """Deterministic-looking but lively series; ``rng`` makes tests repeatable."""

    rng: random.Random = field(default_factory=random.Random)
    mem: float = 40.0

    def sample(self, t: float) -> dict[str, float]:
        r = self.rng
        self.mem += 0.05 + r.uniform(-0.02, 0.04)
        if self.mem > 85:
            self.mem = 35.0  # a "garbage collection"
        spike = 180.0 if r.random() < 0.02 else 0.0
        return {
            "cpu": round(min(100.0, max(0.0, 45 + 25 * math.sin(t / 4) + r.gauss(0, 4))), 2),
            "rps": round(max(0.0, 1200 + 500 * math.sin(t / 7) + 150 * math.sin(t * 1.3) + r.gauss(0, 40)), 1),
            "mem": round(self.mem, 2),
            "latency": round(max(1.0, 20 + 8 * math.sin(t / 3) + r.expovariate(1 / 4) + spike), 2),
        }


def batch_body(values: dict[str, float], now_ms: int) -> bytes:
    commands = [
        {"publish": {"channel": f"{NAMESPACE}:{name}", "data": {"v": v, "t": now_ms}}}
        for name, v in values.items()
    ]
    return orjson.dumps({"commands": commands})


async def feed(url: str, api_key: str, rate: float, duration: float, *, quiet: bool = False) -> int:
    """Publish until ``duration`` seconds passed (0: until interrupted). Returns ticks sent."""
    client = AsyncHTTPClient()
    endpoint = url.rstrip("/") + "/api/batch"
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    signals = Signals()
    loop = asyncio.get_running_loop()
    start = loop.time()
    period = 1.0 / rate
    sent = 0
    failures = 0
    next_at = start
    while duration <= 0 or loop.time() - start < duration:
        body = batch_body(signals.sample(loop.time() - start), int(time.time() * 1000))
        try:
            resp = await client.fetch(endpoint, method="POST", body=body, headers=headers, request_timeout=5)
            replies = orjson.loads(resp.body).get("replies", [])
            errors = [r["error"] for r in replies if "error" in r]
            if errors:
                raise FeedError(f"server refused a publish: {errors[0]}")
            sent += 1
            failures = 0
        except HTTPClientError as e:
            if e.code == 401:
                raise FeedError("the server refused the API key (401): pass --api-key with the server's api_key") from None
            if e.code == 404:
                raise FeedError(
                    "the server API is off (404): set api_key in the server config "
                    "(or run the server with --api-key K) and pass the same key here"
                ) from None
            failures += 1
            _warn(f"publish failed: HTTP {e.code}", failures, quiet)
        except OSError as e:  # connection refused or reset: the server may be restarting
            failures += 1
            _warn(f"cannot reach {url}: {e}", failures, quiet)
        next_at += period
        delay = next_at - loop.time()
        if delay < -1.0:
            next_at = loop.time()  # fell far behind (a stall): do not burst to catch up
        await asyncio.sleep(max(0.0, delay) if failures == 0 else min(2.0, 0.2 * failures))
    return sent


def _warn(message: str, failures: int, quiet: bool) -> None:
    if not quiet and (failures in (1, 10) or failures % 100 == 0):
        print(f"demo-feed: {message}", file=sys.stderr)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="server TOML config to read api_key and port from (default: embedded demo config)")
    p.add_argument("--url", default=None, help="server base URL (default: http://127.0.0.1:<port from config>)")
    p.add_argument("--api-key", default=None, help="server API key (default: api_key from the config / SQUALL_API_KEY)")
    p.add_argument("--rate", type=float, default=20.0, help="ticks per second; each tick updates every series (default 20)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: run until Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    from server.settings import ConfigError, load

    if args.rate <= 0 or args.rate > 1000:
        print("demo-feed: --rate must be in (0, 1000]", file=sys.stderr)
        return 2
    url, key = args.url, args.api_key
    if url is None or key is None:
        try:
            settings = load(args.config)
        except ConfigError as e:
            print(f"demo-feed: {e}", file=sys.stderr)
            return 2
        host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
        url = url or f"http://{host}:{settings.port}"
        key = settings.api_key if key is None else key
    print(f"demo-feed: publishing {', '.join(f'{NAMESPACE}:{s}' for s in SERIES)} at {args.rate:g} Hz to {url}")
    try:
        sent = asyncio.run(feed(url, key, args.rate, args.duration))
    except FeedError as e:
        print(f"demo-feed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"demo-feed: done, {sent} ticks published")
    return 0 if sent else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo-feed")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

