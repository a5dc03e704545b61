"""Loop-lag and GC-pause probes report what really happened."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from handlers.metrics_runtime import GcPauseMonitor, LoopLagMonitor


@pytest.mark.gen_test(timeout=10)
async def test_loop_lag_monitor_sees_a_blocked_loop():
    """Blocking the loop for 0.3 s shows up as at least 0.2 s of lag."""
    lags: list[float] = []
    mon = LoopLagMonitor(lags.append, interval=0.02)
    mon.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # deliberately block the event loop
        for _ in range(100):
            if lags and max(lags) >= 0.2:
                break
            await asyncio.sleep(0.02)
    finally:
        mon.stop()
    assert max(lags) >= 0.2
    n = len(lags)
    await asyncio.sleep(0.1)
    assert len(lags) == n  # stopped: no more samples


def test_gc_pause_monitor_times_a_collection_and_uninstalls():
    """A full collection is reported as generation 2, with its CPU time; stop() removes the callback."""
    pauses: list[tuple[int, float, float]] = []
    mon = GcPauseMonitor(lambda g, s, c: pauses.append((g, s, c)))
    keep = [[i] for i in range(200_000)]  # enough tracked objects for the collection to take measurable CPU
    mon.start()
    try:
        gc.collect()
    finally:
        mon.stop()
    del keep
    assert any(g == 2 and s > 0 and c > 0 for g, s, c in pauses)
    assert all(c <= s + 0.002 for _, s, c in pauses)  # CPU time of one thread cannot exceed the wall pause
    n = len(pauses)
    gc.collect()
    assert len(pauses) == n
    assert mon._callback not in gc.callbacks
