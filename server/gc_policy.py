"""Keep full garbage collections short by freezing what survived one.

A full (generation 2) collection scans every tracked object: at 10,000
connections that is about 150 ms with the loop stopped. Objects that survived
a full collection are long-lived (connections, subscriptions), so right after
each one they are moved to the permanent generation (``gc.freeze``) and the
next full collection scans only what is new. Frozen objects are still freed
by reference counting; closed connections leave no reference cycles
(handlers/ws_conn.py breaks them), so freezing strands nothing on the hot
path. As a safety net for cycles made elsewhere, every
``gc_full_collect_interval`` seconds the permanent generation is released and
collected once: one long pause at that interval (0 disables it).

A full collection then scans what was promoted since the last freeze: by
CPython's default thresholds (700, 10, 10) ten generation-1 collections'
survivors, ~30 ms at a connection storm of 19,000 (issue 19). The policy runs
one every ``FULL_AFTER`` generation-1 collections instead, so each scans a
third as much; every object is still scanned by one full collection before it
is frozen, and the total collector time stays about the same.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from tornado.ioloop import PeriodicCallback

log = logging.getLogger("squall.gc")

FULL_AFTER = 3  # generation-1 collections between two full ones (CPython's default: 10)


class GcPolicy:
    def __init__(self, full_collect_interval: float) -> None:
        self._interval = full_collect_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pc: PeriodicCallback | None = None
        self._releasing = False
        self.freezes = 0
        self._thresholds: tuple[int, int, int] | None = None  # CPython's, while ours apply

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            first, second, _ = self._thresholds
            gc.set_threshold(first, second, FULL_AFTER)
        gc.callbacks.append(self._on_gc)
        if self._interval > 0:
            self._pc = PeriodicCallback(self.release, self._interval * 1000)
            self._pc.start()

    def stop(self) -> None:
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._pc is not None:
            self._pc.stop()
            self._pc = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector: only schedule, never collect or freeze here.
        loop = self._loop
        if phase == "stop" and info.get("generation") == 2 and not self._releasing and loop is not None:
            if not loop.is_closed():  # a collection while the process exits
                loop.call_soon_threadsafe(self._freeze)

    def _freeze(self) -> None:
        gc.freeze()
        self.freezes += 1

    def release(self) -> None:
        """Collect everything once, frozen objects included, then freeze again."""
        self._releasing = True
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._releasing = False
        if found:
            log.info("full collection found %d unreachable objects", found)
