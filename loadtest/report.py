"""The final table (text) and a self-contained HTML report (inline SVG).

The HTML file loads nothing from the network: styles and charts are inline,
so it can be attached to a CI run and opened anywhere.
"""

from __future__ import annotations

import html
import json
import math
import time
from typing import Any, Sequence

# Plan fields each scenario uses (the rest are defaults that do not apply to it).
_COMMON = ("scenario", "namespace", "duration", "warmup", "ramp", "connect_concurrency", "connect_timeout",
           "drain", "workers", "loop", "seed")
_PUBLISHING = ("rate", "window", "message_size")
PLAN_FIELDS = {
    "broadcast": _COMMON + ("subscribers",) + _PUBLISHING,
    "chat": _COMMON + ("rooms", "members") + _PUBLISHING,
    "idle": _COMMON + ("connections", "channels", "per_client"),
    "churn": _COMMON + ("connections", "channels", "churn_rate", "storm_at") + _PUBLISHING,
    "dashboard": _COMMON + ("clients", "channels", "per_client") + _PUBLISHING,
}


def _fmt_ms(d: dict[str, float], key: str) -> str:
    return f"{d[key]:.2f}" if key in d else "-"


def table(s: dict[str, Any]) -> str:
    rows = _rows(s)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (label, value) rows, for the text table and the HTML report."""
    lat = s["latency_ms"]
    ct = s["connect_time_ms"]
    srv = s.get("server", {})
    rows: list[tuple[str, str]] = [
        ("scenario", s["scenario"]),
    ]
    if s.get("interrupted"):
        rows.append(("INTERRUPTED", f"Ctrl-C in the {s['interrupted']} phase: partial numbers "
                     "(loss counts publications still in flight)"))
    rows += [
        ("connections", f"{s['connects']:,} ok / {s['connections']:,} planned, {s['connect_failures']} failed"),
        ("connect rate", f"{s['connect_rate']:,.0f}/s over {s['connect_seconds']:.2f} s"),
        ("connect time ms", f"p50 {_fmt_ms(ct, 'p50')}  p99 {_fmt_ms(ct, 'p99')}  max {_fmt_ms(ct, 'max')}"),
        ("published (acked)", f"{s['published']:,}"),
        ("deliveries", f"{s['deliveries']:,} of {s['expected']:,} expected in {s['run_seconds']:.2f} s"),
        ("deliveries/s", f"{s['deliveries_per_s']:,.0f}"),
        (
            "latency ms",
            "  ".join(f"{k} {_fmt_ms(lat, k)}" for k in ("p50", "p90", "p99", "p99.9", "max")),
        ),
    ]
    warm = s.get("latency_warmup_ms") or {}
    if warm:
        rows[-1] = (f"latency ms (after {s['plan']['warmup']:g} s)", rows[-1][1])
        rows.append((
            "warm-up latency ms",
            "  ".join(f"{k} {_fmt_ms(warm, k)}" for k in ("p50", "p99", "max")),
        ))
    rows += [
        ("loss", f"{s['loss']:,} ({s['loss_pct']}%)"),
        ("duplicates", f"{s['duplicates']:,}"),
        ("out of order", f"{s['out_of_order']:,}"),
        ("errors", f"{s['error_count']} {json.dumps(s['errors']) if s['errors'] else ''}".strip()),
        ("disconnects", json.dumps(s["disconnects"]) if s["disconnects"] else "0"),
    ]
    # one line per refusal code: what it means and what to change (loadtest/explain.py)
    rows += [(f"  {label}", text) for label, text in s.get("explanations", [])]
    if s["scenario"] == "churn":
        rows.append(("reconnects", f"{s['reconnects']:,}"))
        rows.append(("recovery", f"{s['recovered']} recovered, {s['not_recovered']} not, "
                     f"{s['recovered_deliveries']:,} publications recovered"))
        if s["storm_seconds"]:
            rows.append(("reconnect storm", f"{s['storm_seconds']:.2f} s to reconnect everyone"))
    if "cpu_us_per_delivery" in srv:
        rows.append(("server CPU/delivery", f"{srv['cpu_us_per_delivery']:.2f} µs"))
    if "cpu_us_per_connect" in srv:
        rows.append(("server CPU/connect", f"{srv['cpu_us_per_connect']:.0f} µs"))
    if "kib_per_connection" in srv:
        rows.append(("server RSS/connection", f"{srv['kib_per_connection']:.2f} KiB "
                     f"({srv['rss_start_mib']} -> {srv['rss_connected_mib']} MiB)"))
    if "deliveries" in srv:
        rows.append(("server's own count", f"{srv['deliveries']:,} deliveries"))
    return rows


# ------------------------------------------------------------------ HTML
W, H, PAD = 720, 220, 56


def _tick(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:g}"


def nice_ticks(top: float, most: int = 5) -> list[float]:
    """0, step, 2*step, ... up to the first tick >= ``top``, with step 1, 2 or 5 x 10^n: round numbers on the axis."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / (most - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(k * step, 10) for k in range(n + 1)]


def _polyline(points: Sequence[tuple[float, float]], xmax: float, ymax: float, color: str) -> str:
    if not points:
        return ""
    pts = " ".join(
        f"{PAD + (x / xmax if xmax else 0) * (W - 2 * PAD):.1f},{H - PAD + 10 - (y / ymax if ymax else 0) * (H - PAD - 20):.1f}"
        for x, y in points
    )
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>'


def _chart(title: str, unit: str, series: dict[str, tuple[str, list[tuple[float, float]]]], xlabel: str = "seconds") -> str:
    allpts = [p for _, pts in series.values() for p in pts]
    xticks = nice_ticks(max((x for x, _ in allpts), default=1.0))
    yticks = nice_ticks(max((max(0.0, y) for _, y in allpts), default=1.0))
    xmax, ymax = xticks[-1], yticks[-1]
    grid = []
    for v in yticks:
        y = H - PAD + 10 - v / ymax * (H - PAD - 20)
        grid.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        grid.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_tick(v)}</text>')
    for v in xticks:
        x = PAD + v / xmax * (W - 2 * PAD)
        grid.append(f'<text x="{x:.1f}" y="{H - PAD + 24}" text-anchor="middle" font-size="10">{_tick(v)}</text>')
    legend = []
    for n, (name, (color, _)) in enumerate(series.items()):
        legend.append(f'<text x="{W - PAD - 150 + 0}" y="{16 + 14 * n}" font-size="11" fill="{color}">■ {html.escape(name)}</text>')
    lines = [_polyline(pts, xmax, ymax, color) for color, pts in series.values()]
    return (
        f'<figure><figcaption>{html.escape(title)} ({html.escape(unit)}; x: {xlabel})</figcaption>'
        f'<svg width="{W}" height="{H + 20}" viewBox="0 0 {W} {H + 20}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(grid) + "".join(lines) + "".join(legend) + "</svg></figure>"
    )


def _pct_rows(lat: dict[str, float]) -> str:
    out = []
    for k, v in lat.items():
        shown = f"{int(v):,} samples" if k == "count" else f"{v:.3f} ms"
        out.append(f"<tr><th>{html.escape(k)}</th><td>{shown}</td></tr>")
    return "".join(out)


def _verdict(s: dict[str, Any], reasons: Sequence[str] | None) -> str:
    if s.get("interrupted"):
        return '<p class="verdict fail">INTERRUPTED: partial numbers</p>'
    if reasons is None:
        return ""
    if not reasons:
        return '<p class="verdict pass">PASS</p>'
    items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    return f'<p class="verdict fail">FAIL</p><ul>{items}</ul>'


def html_report(s: dict[str, Any], reasons: Sequence[str] | None = None) -> str:
    """The page; ``reasons`` are check_thresholds' (empty: PASS), None for no verdict."""
    tl = s["timeline"]
    t0 = tl[0]["t"] if tl else 0
    thr = [(b["t"] - t0, b["deliveries"]) for b in tl]
    pubs = [(b["t"] - t0, b["published"]) for b in tl]
    p50 = [(b["t"] - t0, b["lat_p50"]) for b in tl if "lat_p50" in b]
    p99 = [(b["t"] - t0, b["lat_p99"]) for b in tl if "lat_p99" in b]
    opened = [(b["t"] - t0, b["open"]) for b in tl]
    cpu = [(b["t"] - t0, b["server_cpu_pct"]) for b in tl if b.get("server_cpu_pct") is not None]
    lat = s["latency_ms"]
    charts = [_chart("Deliveries per second", "messages/s", {"deliveries": ("#1f77b4", thr)})]
    if any(y for _, y in pubs):  # its own axis: a fan-out's deliveries would flatten it
        charts.append(_chart("Publishes per second (acknowledged)", "messages/s", {"published": ("#ff7f0e", pubs)}))
    if p50 or p99:
        charts.append(_chart("End-to-end latency per second", "ms", {"p50": ("#2ca02c", p50), "p99": ("#d62728", p99)}))
    charts.append(_chart("Open connections", "count", {"open": ("#9467bd", opened)}))
    if cpu:
        charts.append(_chart("Server CPU", "% of one core", {"cpu": ("#8c564b", cpu)}))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _rows(s))
    if lat:
        latency = f"<h2>Latency percentiles</h2><table>{_pct_rows(lat)}</table>"
    else:
        latency = "<h2>Latency</h2><p>No publication was delivered, so there is no latency to show (see errors above).</p>"
    plan = {k: v for k, v in s["plan"].items() if k in PLAN_FIELDS.get(s["scenario"], tuple(s["plan"]))}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s.get("started", 0)))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Squall load test: {html.escape(s['scenario'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:900px}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{text-align:left;padding:2px 10px;border-bottom:1px solid #eee;font-size:14px}} th{{color:#555;font-weight:normal}}
figure{{margin:1.5em 0}} figcaption{{font-weight:bold;margin-bottom:4px}}
.verdict{{font-size:20px;font-weight:bold}} .pass{{color:#2ca02c}} .fail{{color:#d62728}}</style></head>
<body><h1>Load test: {html.escape(s['scenario'])}</h1>
{_verdict(s, reasons)}
<p>Target {html.escape(s['target']['host'])}:{s['target']['port']}{html.escape(s['target']['path'])},
started {started}, load tester {html.escape(str(s.get('tool_version', 'unknown')))}</p>
<h2>Summary</h2><table>{rows}</table>
{latency}
{''.join(charts)}
<h2>Settings of this scenario</h2><pre>{html.escape(json.dumps(plan, indent=1))}</pre>
</body></html>
"""
