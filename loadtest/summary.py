"""Merges workers' ticks and results into one summary: the numbers that the
table, the JSON file, the HTML report and the exit status are made from.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from hdrh.histogram import HdrHistogram

from loadtest.explain import explain
from loadtest.plan import Plan, Target
from loadtest.tracker import new_histogram

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _decode(enc: str) -> HdrHistogram:
    h = new_histogram()
    if enc:
        h.decode_and_add(enc)
    return h


def _pcts(h: HdrHistogram) -> dict[str, float]:
    """Percentiles in milliseconds."""
    if h.get_total_count() == 0:
        return {}
    out = {f"p{p:g}": h.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES}
    out["max"] = h.get_max_value() / 1000.0
    out["mean"] = round(h.get_mean_value() / 1000.0, 3)
    out["count"] = h.get_total_count()
    return out


class Aggregator:
    """Collects events from workers (in-process or through a queue)."""

    def __init__(self, plan: Plan, target: Target, progress: TextIO | None = sys.stderr) -> None:
        self.plan = plan
        self.target = target
        self.progress = progress
        self.ticks: dict[int, list[dict[str, Any]]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.failures: list[str] = []
        self.started = time.time()
        self._last_print = 0.0

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "tick":
            self.ticks.setdefault(int(payload["worker"]), []).append(payload)
            self._print_progress()
        elif kind == "result":
            self.results[int(payload["worker"])] = payload
        elif kind == "failed":
            self.failures.append(str(payload.get("error", "worker failed")))

    # ------------------------------------------------------------ progress
    def _print_progress(self) -> None:
        if self.progress is None:
            return
        latest = [ts[-1] for ts in self.ticks.values() if ts]
        if not latest:
            return
        now = time.monotonic()
        if now - self._last_print < 0.9:
            return
        self._last_print = now
        prev = [ts[-2] if len(ts) > 1 else None for ts in self.ticks.values() if ts]
        rate = 0.0
        for cur, old in zip(latest, prev):
            if old is not None and cur["t"] > old["t"]:
                rate += (cur["deliveries"] - old["deliveries"]) / (cur["t"] - old["t"])
        hist = new_histogram()
        for t in latest:
            if t.get("hist"):
                hist.decode_and_add(t["hist"])
        p99 = hist.get_value_at_percentile(99) / 1000.0 if hist.get_total_count() else 0.0
        line = (
            f"[{latest[0]['t']:7.1f}s] {latest[0]['phase']:<8} open {sum(t['open'] for t in latest):>6}"
            f"/{self.plan.total_connections:<6} deliveries {sum(t['deliveries'] for t in latest):>10,}"
            f" {rate:>10,.0f}/s  p99 {p99:7.2f} ms  published {sum(t['published'] for t in latest):>8,}"
            f"  errors {sum(t['errors'] for t in latest)}  disconnects {sum(t['disconnects'] for t in latest)}"
        )
        end = "\r" if self.progress.isatty() else "\n"
        self.progress.write(line + end)
        self.progress.flush()

    # ------------------------------------------------------------ timeline
    def timeline(self) -> list[dict[str, Any]]:
        """Per-second throughput and latency over all workers."""
        buckets: dict[int, dict[str, Any]] = {}
        for ts in self.ticks.values():
            prev_d = 0
            prev_p = 0
            for t in ts:
                sec = int(round(t["t"]))
                b = buckets.setdefault(sec, {"t": sec, "deliveries": 0, "published": 0, "open": 0, "hist": new_histogram()})
                b["deliveries"] += t["deliveries"] - prev_d
                b["published"] += t["published"] - prev_p
                b["open"] += t["open"]
                prev_d, prev_p = t["deliveries"], t["published"]
                if t.get("hist"):
                    b["hist"].decode_and_add(t["hist"])
                if "server" in t and "cpu" in t["server"]:
                    b["server_cpu"] = t["server"]["cpu"]
                    b["server_rss"] = t["server"].get("rss", 0.0)
        out = []
        last_cpu = None
        for sec in sorted(buckets):
            b = buckets[sec]
            h = b.pop("hist")
            b.update({f"lat_{k}": v for k, v in _pcts(h).items() if k in ("p50", "p99", "max")})
            cpu = b.get("server_cpu")
            if cpu is not None:
                b["server_cpu_pct"] = round(100.0 * (cpu - last_cpu), 1) if last_cpu is not None else None
                last_cpu = cpu
            out.append(b)
        return out

    # ------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        plan = self.plan
        rs = [self.results[w] for w in sorted(self.results)]
        lat = new_histogram()
        warm = new_histogram()
        ctime = new_histogram()
        c: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        disconnects: Counter[str] = Counter()
        published: Counter[str] = Counter()
        subscribers: Counter[str] = Counter()
        for r in rs:
            lat.add(_decode(r["latency"]))
            warm.add(_decode(r["latency_warmup"]))
            ctime.add(_decode(r["connect_time"]))
            for k in (
                "deliveries", "received", "duplicates", "out_of_order", "recovered_deliveries", "foreign",
                "connects", "reconnects", "connect_failures", "recovered", "not_recovered",
            ):
                c[k] += int(r[k])
            errors.update(r["errors"])
            disconnects.update(r["disconnects"])
            published.update(r["published"])
            subscribers.update(r["subscribers"])
        expected = sum(n * subscribers.get(ch, 0) for ch, n in published.items())
        run_seconds = max((r["run_seconds"] for r in rs), default=0.0)
        connect_seconds = max((r["connect_seconds"] for r in rs), default=0.0)
        deliveries = c["deliveries"]
        n_errors = sum(errors.values()) + sum(v for k, v in disconnects.items() if k not in ("1000", "1001"))
        out: dict[str, Any] = {
            "scenario": plan.scenario,
            "plan": vars(plan),
            "target": {"host": self.target.host, "port": self.target.port, "path": self.target.path},
            "started": self.started,
            "connections": plan.total_connections,
            "connects": c["connects"],
            "reconnects": c["reconnects"],
            "connect_failures": c["connect_failures"],
            "connect_seconds": round(connect_seconds, 3),
            "connect_rate": round(c["connects"] / connect_seconds, 1) if connect_seconds else 0.0,
            "connect_time_ms": _pcts(ctime),
            "published": sum(published.values()),
            "expected": expected,
            "deliveries": deliveries,
            "received": c["received"],
            "loss": max(0, expected - deliveries),
            "loss_pct": round(100.0 * max(0, expected - deliveries) / expected, 4) if expected else 0.0,
            "duplicates": c["duplicates"],
            "out_of_order": c["out_of_order"],
            "recovered_deliveries": c["recovered_deliveries"],
            "foreign": c["foreign"],
            "recovered": c["recovered"],
            "not_recovered": c["not_recovered"],
            "run_seconds": round(run_seconds, 3),
            "deliveries_per_s": round(deliveries / run_seconds, 1) if run_seconds else 0.0,
            "latency_ms": _pcts(lat),
            "latency_warmup_ms": _pcts(warm),
            "errors": dict(errors),
            "disconnects": dict(disconnects),
            "error_count": n_errors,
            "storm_seconds": round(max((r["storm_seconds"] for r in rs), default=0.0), 3),
            "worker_failures": list(self.failures),
            "timeline": self.timeline(),
        }
        out["server"] = self._server(rs, deliveries)
        out["explanations"] = [list(e) for e in explain(out["errors"], out["disconnects"])]
        out["interrupted"] = next((r["interrupted"] for r in rs if r.get("interrupted")), "")
        out["tool_version"] = tool_version()
        return out

    def _server(self, rs: list[dict[str, Any]], deliveries: int) -> dict[str, Any]:
        s: dict[str, Any] = next((r["server"] for r in rs if r.get("server")), {})
        out: dict[str, Any] = {}
        start, conn, end = s.get("start", {}), s.get("connected", {}), s.get("end", {})
        if "cpu" in conn and "cpu" in end:
            run_cpu = end["cpu"] - conn["cpu"]
            out["cpu_seconds_run"] = round(run_cpu, 3)
            if deliveries:
                out["cpu_us_per_delivery"] = round(run_cpu / deliveries * 1e6, 3)
        if "cpu" in start and "cpu" in conn and self.plan.total_connections:
            out["cpu_us_per_connect"] = round((conn["cpu"] - start["cpu"]) / self.plan.total_connections * 1e6, 1)
        if "rss" in start and "rss" in conn:
            out["rss_start_mib"] = round(start["rss"] / 2**20, 1)
            out["rss_connected_mib"] = round(conn["rss"] / 2**20, 1)
            out["kib_per_connection"] = round((conn["rss"] - start["rss"]) / 1024 / self.plan.total_connections, 2)
        if "deliveries" in end:
            before = conn.get("deliveries", start.get("deliveries", 0.0))
            out["deliveries"] = int(end["deliveries"] - before)
        return out


def tool_version() -> str:
    """Squall's version: the installed distribution's, or from the checkout's pyproject.toml."""
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if not __name__.startswith("squall.") and pyproject.is_file():
        import tomllib

        with open(pyproject, "rb") as f:
            return str(tomllib.load(f).get("project", {}).get("version", "unknown"))
    try:
        return version("squall")
    except PackageNotFoundError:
        return "unknown"


def check_thresholds(summary: dict[str, Any], max_loss: str, max_errors: int) -> list[str]:
    """Reasons to exit non-zero; ``max_loss`` is a count or a percentage ("0.1%")."""
    reasons = []
    if max_loss.endswith("%"):
        if summary["loss_pct"] > float(max_loss[:-1]):
            reasons.append(f"loss {summary['loss_pct']}% > {max_loss}")
    elif summary["loss"] > int(max_loss):
        reasons.append(f"loss {summary['loss']} > {max_loss}")
    if summary["error_count"] > max_errors:
        reasons.append(f"errors {summary['error_count']} > {max_errors}")
    if summary["worker_failures"]:
        reasons.append("worker failed: " + "; ".join(summary["worker_failures"]))
    if summary["connects"] == 0:
        reasons.append("no connection succeeded")
    return reasons
