"""Command line of the load tester: ``python run.py loadtest SCENARIO ...``
(or ``python -m loadtest SCENARIO ...``).

Exit status: 0 when loss and errors are within ``--max-loss`` and
``--max-errors``, 1 when not, 2 for bad arguments, 3 when this machine cannot
run the plan (file limit), 130 after Ctrl-C (with the partial summary).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from loadtest.limits import LimitTooLow, raise_nofile, source_addresses
from loadtest.plan import SCENARIOS, Plan, Target
from loadtest.report import html_report, table
from loadtest.runner import run_plan
from loadtest.summary import Aggregator, check_thresholds

DEFAULT_RATE = {"broadcast": 0.0, "chat": 2.0, "idle": 0.0, "churn": 10.0, "dashboard": 5.0}
MAX_CONNECTIONS = 200_000
MAX_DURATION = 3600.0


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v

    return parse


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}, got {v:g}")
        return v

    return parse


def _ws_url(text: str) -> str:
    u = urlsplit(text)
    if u.scheme != "ws":
        raise argparse.ArgumentTypeError(f"expected a ws:// URL (TLS is not supported), got {text!r}")
    if not u.hostname:
        raise argparse.ArgumentTypeError(f"no host in {text!r}")
    try:
        u.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return text


def _max_loss(text: str) -> str:
    body = text[:-1] if text.endswith("%") else text
    try:
        v = float(body) if text.endswith("%") else int(body)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a percentage like 0.1%, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return text


def _sources(text: str) -> str:
    try:
        source_addresses("127.0.0.1", text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything ``loadtest`` accepts; validation errors exit 2 through argparse."""
    conns = _int_in(1, MAX_CONNECTIONS)
    parser.add_argument("scenario", choices=SCENARIOS, help="what to simulate (see docs/LOADTEST.md)")
    g = parser.add_argument_group("target")
    g.add_argument("--url", type=_ws_url, default="ws://127.0.0.1:8000/connection/websocket",
                   help="WebSocket endpoint (default: %(default)s)")
    g.add_argument("--namespace", default="chat", help="channel namespace to use, '' for none (default: %(default)s)")
    g.add_argument("--token", default="", help="connection JWT sent by every client")
    g.add_argument("--hmac-secret", default="", help="sign one HS256 JWT per client (claim sub=loadtest-N)")
    g.add_argument("--server-pid", type=_int_in(1, 2**31), default=0,
                   help="PID of the server on this machine: report its CPU per delivery and RSS per connection")
    g.add_argument("--stats-url", default="", help="URL of the server's own delivery counter: JSON, or Prometheus text (Squall: /metrics)")
    g.add_argument("--stats-key", default="deliveries", help="dotted JSON key or Prometheus sample name, e.g. squall_deliveries_total (default: %(default)s)")
    g.add_argument("--publish-via", choices=("ws", "api"), default="ws",
                   help="ws: publishers publish on their client connection (needs the namespace's publish permission "
                        "and room in the command rate limit); api: POST to the server API as a backend does (default: %(default)s)")
    g.add_argument("--api-key", default="", help="--publish-via api: the server's api_key")
    g.add_argument("--api-url", default="", help="--publish-via api: the API's base URL (default: http://HOST:PORT/api of --url)")
    g = parser.add_argument_group("sizes")
    g.add_argument("--subscribers", type=conns, default=100, help="broadcast: subscribers of the one channel")
    g.add_argument("--rooms", type=_int_in(1, MAX_CONNECTIONS), default=10, help="chat: rooms")
    g.add_argument("--members", type=_int_in(1, 10_000), default=10, help="chat: members per room")
    g.add_argument("--connections", type=conns, default=100, help="idle, churn: connections")
    g.add_argument("--clients", type=conns, default=100, help="dashboard: clients")
    g.add_argument("--channels", type=_int_in(0, MAX_CONNECTIONS), default=0,
                   help="idle, churn, dashboard: channel pool size (0 = scenario default)")
    g.add_argument("--per-client", type=_int_in(1, 1000), default=2, help="idle, dashboard: channels per connection")
    g = parser.add_argument_group("traffic")
    g.add_argument("--rate", type=_float_in(0, 1e6), default=None,
                   help="msgs/s: broadcast total (0 = as fast as --window allows), chat per member, "
                        "churn per channel, dashboard Hz per channel")
    g.add_argument("--window", type=_int_in(1, 100_000), default=64, help="publishes in flight per publisher")
    g.add_argument("--message-size", type=_int_in(60, 1_000_000), default=100, help="approximate bytes of each publication's data")
    g.add_argument("--duration", type=_float_in(0.1, MAX_DURATION), default=10.0, help="seconds of the run phase")
    g.add_argument("--warmup", type=_float_in(0, MAX_DURATION), default=0.0,
                   help="seconds at the start of the run phase whose publications' latency is reported apart "
                        "(latency_warmup_ms), not in latency_ms; loss still counts every publication")
    g.add_argument("--ramp", type=_float_in(0, 1e6), default=1000.0, help="new connections per second (0 = unlimited)")
    g.add_argument("--connect-concurrency", type=_int_in(1, 100_000), default=200, help="handshakes in flight per worker")
    g.add_argument("--connect-timeout", type=_float_in(0.1, 600), default=10.0, help="seconds per connect or subscribe")
    g.add_argument("--churn-rate", type=_float_in(0, 1e5), default=5.0, help="churn: reconnects per second")
    g.add_argument("--storm-at", type=_float_in(-1, MAX_DURATION), default=-1.0,
                   help="churn: seconds into the run when every client drops and reconnects at once (-1: never)")
    g.add_argument("--drain", type=_float_in(0, 600), default=10.0, help="longest wait for late deliveries")
    g.add_argument("--seed", type=int, default=1, help="seed of the random choices")
    g = parser.add_argument_group("engine")
    g.add_argument("--workers", type=_int_in(1, 256), default=1, help="load-generating processes")
    g.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop (auto: uvloop when installed; one core then receives ~1.6x the messages, docs/LOADTEST.md)")
    g.add_argument("--sources", type=_sources, default="auto",
                   help="client source addresses: auto (127.0.0.1-8 for a loopback target), 0, N, or a list")
    g = parser.add_argument_group("output")
    g.add_argument("--json", dest="json_path", default="", help="write the result as JSON here")
    g.add_argument("--html", dest="html_path", default="", help="write a self-contained HTML report here")
    g.add_argument("--quiet", action="store_true", help="no live progress line")
    g.add_argument("--max-loss", type=_max_loss, default="0", help="fail above this loss: a count or N%% (default 0)")
    g.add_argument("--max-errors", type=_int_in(0, 2**31), default=0, help="fail above this many errors (default 0)")


def _loop(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def build(args: argparse.Namespace) -> tuple[Plan, Target]:
    """Plan and Target from parsed arguments; ValueError for bad combinations."""
    u = urlsplit(args.url)
    host = u.hostname or "127.0.0.1"
    rate = DEFAULT_RATE[args.scenario] if args.rate is None else args.rate
    if args.token and args.hmac_secret:
        raise ValueError("give --token or --hmac-secret, not both")
    if args.publish_via == "api" and not args.api_key:
        raise ValueError("--publish-via api needs --api-key (the server's api_key)")
    if args.api_url and not urlsplit(args.api_url).scheme.startswith("http"):
        raise ValueError(f"--api-url: expected an http:// URL, got {args.api_url!r}")
    if args.scenario in ("chat", "churn", "dashboard") and rate <= 0:
        raise ValueError(f"--rate must be > 0 for {args.scenario}")
    plan = Plan(
        scenario=args.scenario,
        namespace=args.namespace,
        subscribers=args.subscribers,
        rooms=args.rooms,
        members=args.members,
        connections=args.connections,
        clients=args.clients,
        channels=args.channels,
        per_client=args.per_client,
        rate=rate,
        window=args.window,
        message_size=args.message_size,
        duration=args.duration,
        warmup=args.warmup,
        ramp=args.ramp,
        connect_concurrency=args.connect_concurrency,
        connect_timeout=args.connect_timeout,
        churn_rate=args.churn_rate,
        storm_at=args.storm_at,
        drain=args.drain,
        workers=args.workers,
        loop=_loop(args.loop),
        seed=args.seed,
    )
    if plan.total_connections > MAX_CONNECTIONS:
        raise ValueError(f"{plan.total_connections} connections planned; at most {MAX_CONNECTIONS}")
    if args.scenario == "dashboard" and args.per_client > plan.pool:
        raise ValueError(f"--per-client {args.per_client} exceeds the {plan.pool} channels (--channels)")
    if args.warmup >= args.duration:
        raise ValueError("--warmup must be shorter than --duration")
    if args.scenario == "churn" and args.storm_at >= args.duration:
        raise ValueError("--storm-at must be inside --duration")
    target = Target(
        host=host,
        port=u.port or 80,
        path=(u.path or "/") + (f"?{u.query}" if u.query else ""),
        token=args.token,
        hmac_secret=args.hmac_secret,
        sources=source_addresses(host, args.sources),
        server_pid=args.server_pid,
        stats_url=args.stats_url,
        stats_key=args.stats_key,
        publish_via=args.publish_via,
        api_url=args.api_url or f"http://{host}:{u.port or 80}/api",
        api_key=args.api_key,
    )
    return plan, target


def run(args: argparse.Namespace) -> int:
    """Run the load test described by ``args``; returns the exit status."""
    try:
        plan, target = build(args)
    except ValueError as e:
        print(f"loadtest: error: {e}", file=sys.stderr)
        return 2
    per_worker = -(-plan.total_connections // plan.workers)
    try:
        raise_nofile(per_worker)
    except LimitTooLow as e:
        print(f"loadtest: {e}", file=sys.stderr)
        return 3
    if target.server_pid:
        import psutil

        if not psutil.pid_exists(target.server_pid):
            print(f"loadtest: error: --server-pid {target.server_pid}: no such process", file=sys.stderr)
            return 2
    agg = Aggregator(plan, target, progress=None if args.quiet else sys.stderr)
    try:
        run_plan(plan, target, agg)
    except KeyboardInterrupt:  # a second Ctrl-C: the user wants out now
        print("\nloadtest: interrupted twice: no summary", file=sys.stderr)
        return 130
    if not agg.results:
        print("loadtest: the run failed:\n" + "\n".join(agg.failures), file=sys.stderr)
        return 1
    summary = agg.summary()
    if not args.quiet:
        sys.stderr.write("\n")
    print(table(summary))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=1))
    reasons = check_thresholds(summary, args.max_loss, args.max_errors)
    if args.html_path:
        Path(args.html_path).write_text(html_report(summary, reasons))
    if summary["interrupted"]:
        print(f"loadtest: interrupted in the {summary['interrupted']} phase: the numbers above are partial", file=sys.stderr)
        return 130
    for r in reasons:
        print(f"loadtest: FAIL: {r}", file=sys.stderr)
    return 1 if reasons else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtest", description="Load-test a Centrifugo-protocol server.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
