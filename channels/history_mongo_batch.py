"""Group commit: many concurrent publications, one database write.

Publishers enqueue an entry and await its future. One flusher task takes up
to ``max_size`` entries and hands them to ``write``, then resolves the futures
in queue order. When it was idle, a batch starts once its oldest entry has
waited ``window`` seconds (or at once when it is full). Right after a write,
what is queued one loop turn later goes at once: it piled up during the write,
or was submitted by the publishers that write just acknowledged (a closed
loop of N publishers has nothing more to wait for), so waiting the window
again would only leave the database idle. Only one batch is in flight at a
time, so a failed batch can never leave a later one stored above a hole.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from channels.errors import BackendUnavailable, SquallError

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Stream:
    """A channel whose offsets this process assigns (memory broker)."""

    epoch: str
    assigned: int  # last offset handed out
    committed: int  # last offset known stored


@dataclass(slots=True, eq=False)
class Entry:
    """One publication waiting for the batch that stores it."""

    channel: str
    doc: dict[str, Any]
    offset: int
    epoch: str
    history_size: int
    meta_ttl: float
    # The stream that assigned the offset; None for write() (assigned elsewhere).
    stream: Stream | None
    future: asyncio.Future[None]
    queued_at: float = field(default=0.0)


WriteBatch = Callable[[list[Entry]], Awaitable[None]]
# Called with the failed batch and the error; returns the queued entries to
# fail along with it (their offsets sit above the failed ones).
OnFailure = Callable[[list[Entry], "deque[Entry]"], list[Entry]]


class GroupCommitter:
    def __init__(self, write: WriteBatch, on_failure: OnFailure, *, window: float, max_size: int) -> None:
        self._write = write
        self._on_failure = on_failure
        self._window = max(0.0, window)
        self._max_size = max(1, max_size)
        self._queue: deque[Entry] = deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._behind = False  # a write just finished: what is queued goes without the window
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches written successfully; for tests and stats
        self.batch_items = 0  # publications in those batches (mean batch size = items / batches)
        self.write_seconds = 0.0  # time spent in successful batch writes

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mongo-group-commit")

    async def close(self, timeout: float) -> None:
        """Write what is queued (within ``timeout``), then stop."""
        self._closing = True
        self._wake.set()
        self._full.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail(list(self._queue), BackendUnavailable("history store closed"))
        self._queue.clear()

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        if self._closing or self._task is None:
            raise BackendUnavailable("history store is not running")
        entry.queued_at = asyncio.get_running_loop().time()
        self._queue.append(entry)
        if len(self._queue) == 1:
            self._wake.set()
        if len(self._queue) >= self._max_size:
            self._full.set()
        return entry.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._behind = False  # idle: the next batch gathers for a window again
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._queue[0].queued_at + self._window - loop.time()
            if delay > 0 and not self._behind and len(self._queue) < self._max_size and not self._closing:
                self._full.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._full.wait()
                except TimeoutError:
                    pass
                continue
            n = min(len(self._queue), self._max_size)
            batch = [self._queue.popleft() for _ in range(n)]
            started = loop.time()
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._fail(batch, BackendUnavailable("history store closed"))
                raise
            except Exception as e:  # every waiter must hear about any failure
                err: SquallError = e if isinstance(e, SquallError) else BackendUnavailable()
                if not isinstance(e, SquallError):
                    log.exception("history batch write failed")
                also = self._on_failure(batch, self._queue)
                self._fail(batch + also, err)
            else:
                self.batches += 1
                self.batch_items += len(batch)
                self.write_seconds += loop.time() - started
                for entry in batch:  # queue order = offset order per channel
                    if not entry.future.done():
                        entry.future.set_result(None)
                if len(self._queue) < self._max_size:
                    # One loop turn: callers just resolved (publishers awaiting
                    # their acknowledgement) submit their next entries into
                    # the next batch instead of waiting a whole write for it.
                    await asyncio.sleep(0)
                self._behind = True

    @staticmethod
    def _fail(entries: list[Entry], err: SquallError) -> None:
        for entry in entries:
            if not entry.future.done():
                # one instance each: a shared one would collect every raiser's traceback
                entry.future.set_exception(type(err)(err.message))
                entry.future.exception()  # a cancelled caller must not log "never retrieved"
