"""Every scenario against live servers: no loss, no errors, counts that agree."""

from __future__ import annotations

import pytest

from loadtest.report import _rows as report_rows
from tests.helpers.baselines import Baseline
from tests.helpers.squall_process import SquallProcess
from tests.loadtest.conftest import RunTool

SHORT = ("--duration", "1.5", "--drain", "5")


def assert_clean(rc: int, s: dict[str, object]) -> None:
    assert rc == 0, s
    assert s["loss"] == 0
    assert s["error_count"] == 0
    assert s["duplicates"] == 0
    assert s["out_of_order"] == 0
    assert s["connect_failures"] == 0


@pytest.mark.parametrize(
    "scenario",
    [
        ("broadcast", "--subscribers", "300"),
        ("chat", "--rooms", "30", "--members", "10", "--rate", "4"),
        ("dashboard", "--clients", "300", "--channels", "10", "--per-client", "3", "--rate", "10"),
    ],
    ids=lambda s: s[0],
)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_baseline_asyncio_counts_match(
    asyncio_baseline: Baseline, run_tool: RunTool, scenario: tuple[str, ...], loop: str
) -> None:
    """The tool's delivery count equals the asyncio baseline's own counter, on either event loop."""
    rc, s = run_tool(*scenario, *SHORT, "--loop", loop, "--url", asyncio_baseline.ws_url,
                     "--server-pid", str(asyncio_baseline.proc.pid), "--stats-url", asyncio_baseline.stats_url)
    assert_clean(rc, s)
    assert s["plan"]["loop"] == loop
    assert s["deliveries"] > 0
    assert s["deliveries"] == s["expected"] == s["server"]["deliveries"]
    assert s["server"]["cpu_us_per_delivery"] > 0


def test_warmup_latency_reported_apart(asyncio_baseline: Baseline, run_tool: RunTool) -> None:
    """--warmup splits the latency samples: both parts together are every live delivery, none is lost."""
    rc, s = run_tool("chat", "--rooms", "20", "--members", "5", "--rate", "10", "--duration", "2", "--warmup", "1",
                     "--drain", "5", "--url", asyncio_baseline.ws_url)
    assert_clean(rc, s)
    lat, warm = s["latency_ms"], s["latency_warmup_ms"]
    assert lat["count"] > 0 and warm["count"] > 0
    assert lat["count"] + warm["count"] == s["deliveries"]
    assert s["plan"]["warmup"] == 1.0
    labels = [label for label, _ in report_rows(s)]
    assert "latency ms (after 1 s)" in labels and "warm-up latency ms" in labels


def test_baseline_tornado_broadcast(tornado_baseline: Baseline, run_tool: RunTool) -> None:
    """The naive Tornado baseline is measured by the same tool, counts agree."""
    rc, s = run_tool("broadcast", "--subscribers", "200", "--window", "4", *SHORT, "--url", tornado_baseline.ws_url,
                     "--stats-url", tornado_baseline.stats_url)
    assert_clean(rc, s)
    assert s["deliveries"] == s["expected"] == s["server"]["deliveries"] > 0


def test_idle_holds_connections(asyncio_baseline: Baseline, run_tool: RunTool) -> None:
    """Idle connections stay open through server pings, answered with pongs."""
    rc, s = run_tool("idle", "--connections", "300", "--duration", "1.5", "--url", asyncio_baseline.ws_url,
                     "--server-pid", str(asyncio_baseline.proc.pid))
    assert_clean(rc, s)
    assert s["connects"] == 300
    assert s["disconnects"] == {}
    assert "kib_per_connection" in s["server"]


SQUALL_SCENARIOS = [
    ("broadcast", "--subscribers", "300", "--namespace", "bench"),
    ("chat", "--rooms", "30", "--members", "10", "--rate", "4", "--namespace", "bench"),
    ("idle", "--connections", "300", "--namespace", "bench"),
    ("dashboard", "--clients", "300", "--channels", "10", "--per-client", "3", "--rate", "10", "--namespace", "bench"),
    ("churn", "--connections", "200", "--churn-rate", "40", "--storm-at", "0.7", "--rate", "20", "--namespace", "stream"),
]


@pytest.mark.parametrize("scenario", SQUALL_SCENARIOS, ids=lambda s: s[0])
def test_squall_scenarios(squall_bench: SquallProcess, run_tool: RunTool, scenario: tuple[str, ...]) -> None:
    """Each scenario against a live Squall: zero loss, no errors, Squall's own count agrees."""
    rc, s = run_tool(*scenario, *SHORT, "--url", squall_bench.ws_url, "--server-pid", str(squall_bench.pid),
                     "--stats-url", squall_bench.url + "/metrics", "--stats-key", "squall_deliveries_total")
    assert_clean(rc, s)
    if scenario[0] != "idle":
        assert s["deliveries"] == s["expected"] > 0
    if scenario[0] in ("broadcast", "chat", "dashboard"):
        assert s["server"]["deliveries"] == s["deliveries"]  # Squall's hub counter agrees
    if scenario[0] == "churn":
        assert s["reconnects"] > 200  # the storm alone reconnects everyone
        assert s["not_recovered"] == 0
        assert s["recovered_deliveries"] > 0
