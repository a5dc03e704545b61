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
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from tornado.ioloop import PeriodicCallback

log = logging.getLogger("squall.gc")


class GcPolicy:
    def __init__(self, full_collect_interval: float) -> None:
        self._interval = full_collect_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pc: PeriodicCallback | None = None
        self._releasing = False
        self.freezes = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        gc.callbacks.append(self._on_gc)
        if self._interval > 0:
            self._pc = PeriodicCallback(self.release, self._interval * 1000)
            self._pc.start()

    def stop(self) -> None:
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
