"""Consecutive publishes of one connection run together.

A session runs its commands one at a time, in order. For a publish that
waits on Redis, that is one round trip per publication: a client (a feed, a
bridge) that sends many publishes without waiting gets one publication per
round trip, and each reaches the channel's subscribers alone, one socket
write per delivery. Here a run of consecutive publishes is started together:
each one's broker call is queued in command order before any of them waits
(so Redis assigns offsets in that order: the Redis engine pipelines what is
queued, channels/redis_batch.py), and they complete, and are replied to, in
that order. Any other command waits until the run has finished, so a
subscribe, unsubscribe or refresh still sees every earlier publish done.

Only used when nothing can suspend a publish before its broker call: no
``on_publish`` hook and no proxy (either may answer out of order).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Coroutine

from handlers.protocol import Command

LIMIT = 16  # publishes of one connection in flight at once; more wait for the oldest


class PublishRun:
    """The publishes a session has started and not yet seen finish."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: deque[asyncio.Task[None]] = deque()

    async def start(self, run: Callable[[Command], Coroutine[Any, Any, None]], cmd: Command) -> None:
        """Start ``run(cmd)``; waits first while LIMIT are in flight."""
        tasks = self._tasks
        _forget_finished(tasks)
        while len(tasks) >= LIMIT:
            await tasks.popleft()
        self.start_now(run, cmd)

    def start_now(self, run: Callable[[Command], Coroutine[Any, Any, None]], cmd: Command) -> bool:
        """Start ``run(cmd)`` unless LIMIT are in flight (False: nothing started)."""
        tasks = self._tasks
        _forget_finished(tasks)
        if len(tasks) >= LIMIT:
            return False
        tasks.append(asyncio.get_running_loop().create_task(run(cmd)))
        return True

    async def drain(self) -> None:
        """Wait until every started publish has finished (and been replied to)."""
        tasks = self._tasks
        while tasks:
            await tasks.popleft()


def _forget_finished(tasks: deque[asyncio.Task[None]]) -> None:
    """Drop the oldest publishes that have finished: only those in flight count
    against LIMIT (finished ones kept would make every later publish wait)."""
    while tasks and tasks[0].done():
        done = tasks.popleft()
        if not done.cancelled():
            done.result()  # a failure surfaces to the caller, as awaiting it would
