"""Runtime probes for metrics: event-loop lag and garbage-collector pauses.

Both report through callbacks so they stay free of prometheus_client and can
be tested on their own.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Callable


class LoopLagMonitor:
    """A timer that measures how late it fires: the loop's scheduling delay.

    A busy or blocked loop runs callbacks late; that lateness is exactly what
    every client waits on, so it is the one number that says "the loop is
    overloaded" before anything else does.
    """

    def __init__(self, on_lag: Callable[[float], None], interval: float = 0.5) -> None:
        self._on_lag = on_lag
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self._interval
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        self._on_lag(max(0.0, self._loop.time() - self._due))
        self._schedule()


class GcPauseMonitor:
    """Times each garbage collection through ``gc.callbacks``.

    A collection stops the whole process (every connection waits), so its
    duration is a latency source of its own, invisible in request timings.
    Each is reported twice: the wall-clock pause the loop saw, and the CPU
    time the collecting thread spent in it. On a busy host the first also
    holds time the OS gave to other processes; the second is the collector's
    own work, the part a smaller heap or a freeze can shorten.
    """

    def __init__(self, on_pause: Callable[[int, float, float], None]) -> None:
        self._on_pause = on_pause  # (generation, wall seconds, CPU seconds)
        self._started = 0.0
        self._started_cpu = 0.0
        self._installed = False

    def start(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def stop(self) -> None:
        if self._installed:
            self._installed = False
            try:
                gc.callbacks.remove(self._callback)
            except ValueError:
                pass

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
        elif phase == "stop" and self._started:
            pause, self._started = time.perf_counter() - self._started, 0.0
            cpu = time.thread_time() - self._started_cpu
            self._on_pause(int(info.get("generation", -1)), pause, cpu)
