"""Coalesces writes: each connection with queued frames flushes once per turn.

A broadcast marks thousands of connections dirty; they are all flushed by one
callback on the next loop turn (or after ``write_delay``), so every socket
gets one ``write`` holding every frame queued for it in between.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    def __init__(self, delay: float = 0.0) -> None:
        self._delay = delay
        self._dirty: list[Flushable] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, conn: Flushable) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            if self._delay > 0:
                loop.call_later(self._delay, self._run)
            else:
                loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
