"""Delivery: outbox -> sinks, at least once, retried with capped backoff and jitter.

A sink is an async callable taking a batch of events (their dict form) that
raises when it did not take them all; the batch is then tried again, whole,
after ``min_delay * 2**(attempt-1)`` seconds capped at ``max_delay`` (a
random 50-100 % of it, so nodes recovering together do not hit the receiver
in step). A batch leaves the outbox once every sink took it, or after
``max_attempts`` (0 = never give up), counted as failed. A sink that took a
batch before another one failed gets it again: receivers drop duplicates by
event ``id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable

from channels.events import EventStats, Outbox

log = logging.getLogger("squall.events")

Sink = Callable[[list[dict[str, Any]]], Awaitable[None]]


def backoff(attempt: int, min_delay: float, max_delay: float, rnd: Callable[[], float] = random.random) -> float:
    """Seconds before retry ``attempt`` (1-based): exponential, capped, 50-100 % jitter."""
    base = min(max_delay, min_delay * (2 ** min(attempt - 1, 30)))
    return base * (0.5 + 0.5 * rnd())


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        sinks: list[Sink],
        stats: EventStats,
        *,
        batch_size: int = 100,
        min_delay: float = 0.2,
        max_delay: float = 10.0,
        max_attempts: int = 0,
    ) -> None:
        self.outbox = outbox
        self.sinks = sinks
        self.stats = stats
        self.batch_size = batch_size
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.sinks:
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                batch = await self.outbox.read(self.batch_size, 1.0)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("events: outbox read failed: %s", e)
                await asyncio.sleep(1.0)
                continue
            if batch:
                await self._deliver([r for r, _ in batch], [e.to_dict() for _, e in batch])

    async def _deliver(self, receipts: list[str], events: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            try:
                for sink in self.sinks:
                    await sink(events)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                attempt += 1
                if self.max_attempts and attempt >= self.max_attempts:
                    log.error("events: giving up %d events after %d attempts: %s", len(events), attempt, e)
                    self.stats.failed += len(events)
                    break
                self.stats.retried += len(events)
                delay = backoff(attempt, self.min_delay, self.max_delay)
                log.warning("events: delivery of %d failed (%s); retry %d in %.2fs", len(events), e, attempt, delay)
                await asyncio.sleep(delay)
                try:
                    await self.outbox.touch(receipts)
                except Exception:
                    pass
                continue
            self.stats.sent += len(events)
            break
        while True:  # an event delivered must leave the outbox: retry the ack itself
            try:
                await self.outbox.ack(receipts)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("events: ack failed (%s); retrying", e)
                await asyncio.sleep(0.5)
