"""The tool must be able to fail: a server that drops messages is caught."""

from __future__ import annotations

from tests.helpers.baselines import Baseline
from tests.loadtest.conftest import RunTool


def test_dropped_deliveries_are_reported_as_loss(dropping_baseline: Baseline, run_tool: RunTool) -> None:
    """Loss equals what the server dropped, and the exit status is 1."""
    rc, s = run_tool("broadcast", "--subscribers", "100", "--duration", "1", "--drain", "3",
                     "--url", dropping_baseline.ws_url, "--stats-url", dropping_baseline.stats_url)
    dropped = dropping_baseline.stats()["dropped"]
    assert rc == 1
    assert dropped > 0
    assert s["loss"] == dropped
    assert s["deliveries"] + s["loss"] == s["expected"]


def test_loss_threshold_can_allow_some_loss(dropping_baseline: Baseline, run_tool: RunTool) -> None:
    """A percentage threshold above the drop rate (1 in 7) passes."""
    rc, s = run_tool("broadcast", "--subscribers", "50", "--duration", "0.5", "--drain", "2",
                     "--url", dropping_baseline.ws_url, "--max-loss", "20%")
    assert s["loss"] > 0
    assert rc == 0


def test_unreachable_server_fails(run_tool: RunTool) -> None:
    """Nothing listening: every connect fails and the run exits 1 with errors counted."""
    from tests.helpers.procs import free_port

    rc, s = run_tool("idle", "--connections", "5", "--duration", "0.2", "--connect-timeout", "2",
                     "--url", f"ws://127.0.0.1:{free_port()}/connection/websocket")
    assert rc == 1
    assert s["connect_failures"] == 5
    assert s["error_count"] >= 5
