"""bench/run's bookkeeping: the server's figures from the generators' marks, the median run, the targets."""

from __future__ import annotations

from typing import Any

import pytest

from bench import native, suite


def test_idle_figures_come_from_start_to_connected() -> None:
    """CPU per connect and RSS per connection use the setup interval only; the hold's CPU is left out."""
    marks = {
        "start": {"t": 0.0, "cpu": 1.0, "rss": 100 * 2**20},
        "connected": {"t": 4.0, "cpu": 4.0, "rss": 130 * 2**20},
        "end": {"t": 14.0, "cpu": 9.0, "rss": 131 * 2**20},
    }
    out = suite.server_figures({"ready": 10_000}, marks)
    assert out["cpu_us_per_connect"] == pytest.approx(300.0)
    assert out["kib_per_connection"] == pytest.approx(30 * 1024 / 10_000)
    assert out["rss_end_mib"] == pytest.approx(131.0)
    assert "cpu_us_per_delivery" not in out


def test_delivery_figures_come_from_start_to_end() -> None:
    """Without a "connected" mark, CPU is per measured delivery and per second of the interval."""
    marks = {"start": {"t": 10.0, "cpu": 2.0}, "end": {"t": 20.0, "cpu": 7.0}}
    out = suite.server_figures({"measured_deliveries": 1_000_000}, marks)
    assert out == {"cpu_us_per_delivery": pytest.approx(5.0), "cpu_cores": pytest.approx(0.5)}


def test_no_marks_no_figures() -> None:
    """A generator that died before its marks yields no made-up figures."""
    assert suite.server_figures({"ready": 0}, {"start": {"t": 0.0, "cpu": 1.0, "rss": 1.0}, "connected": {}}) == {}
    assert suite.server_figures({"measured_deliveries": 0}, {}) == {}


def test_native_spec_takes_the_table_flags() -> None:
    """bench/run's full idle and chat rows become the C generators' runs with the same sizes."""
    idle = suite.native_spec("idle", 9, suite.SCENARIOS["idle"][1])
    assert isinstance(idle, native.Idle)
    assert (idle.connections, idle.per_client, idle.duration, idle.namespace) == (10_000, 2, 10.0, "bench")
    assert idle.argv()[:2] == ["--port", "9"]
    assert idle.linger == suite.LINGER > 0  # held open until the GC figures at its end are read
    chat = suite.native_spec("chat", 9, suite.SCENARIOS["chat"][1])
    assert isinstance(chat, native.Chat)
    assert (chat.rooms, chat.members, chat.rate) == (200, 10, 2.0)


def run_with(rate: float, status: int = 0) -> dict[str, Any]:
    return {"connect_rate": rate, "exit_status": status}


def test_median_run_keeps_the_middle_one_and_any_failure() -> None:
    """Of three runs the median-rate one is kept, every rate is listed, and a failed repeat fails the result."""
    r = suite.median_run([run_with(3000.0), run_with(1000.0, status=1), run_with(2000.0)], "connect_rate")
    assert r["connect_rate"] == 2000.0
    assert r["runs"] == [3000.0, 1000.0, 2000.0]
    assert r["exit_status"] == 1


def test_connect_target_compares_with_tornado() -> None:
    """The setup target passes at 2x naive Tornado's rate and fails below it."""
    def results(squall: float, tornado: float) -> dict[str, dict[str, dict[str, Any]]]:
        row = {"loss": 0, "error_count": 0}
        return {"squall": {"idle": {**row, "connect_rate": squall}}, "tornado": {"idle": {**row, "connect_rate": tornado}}}

    line = next(g for g in suite.targets(results(2400.0, 1000.0)) if "connection setup" in g)
    assert line.startswith("- PASS") and "2.40x" in line
    line = next(g for g in suite.targets(results(1900.0, 1000.0)) if "connection setup" in g)
    assert line.startswith("- FAIL")


def test_loss_target_is_squall_s_and_a_baseline_s_loss_is_shown_apart() -> None:
    """Squall losing fails a target; an overloaded baseline's loss is listed as information only."""
    ok = {"loss": 0, "error_count": 0}
    lines = suite.targets({"squall": {"chat": ok}, "tornado": {"chat": {"loss": 5, "error_count": 0}}})
    assert not any(g.startswith("- FAIL") for g in lines)
    assert "- info tornado chat (a baseline): loss 5, errors 0" in lines
    lines = suite.targets({"squall": {"chat": {"loss": 3, "error_count": 1}}})
    assert "- FAIL squall chat zero loss and errors: loss 3, errors 1" in lines


def test_gc_ms_names_the_pair_in_milliseconds_and_drops_a_missing_one() -> None:
    """The /metrics pair (seconds, either may be missing) becomes named milliseconds."""
    assert suite.gc_ms((0.0125, 0.012), "wall", "cpu") == {"wall": 12.5, "cpu": 12.0}
    assert suite.gc_ms((None, 0.002), "wall", "cpu") == {"cpu": 2.0}
    assert suite.gc_ms((None, None), "wall", "cpu") == {}
