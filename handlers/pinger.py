"""One loop-wide timer for server pings and pong deadlines.

A timer per connection costs a handle and a wake-up each; instead connections
sit in ``ping_interval / tick`` buckets and one periodic callback pings the
next bucket each tick. Pong deadlines are checked from a FIFO (deadlines are
appended in time order because the timeout is constant).
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Protocol

from tornado.ioloop import PeriodicCallback


class Pingable(Protocol):
    def send_ping(self, now: float) -> None: ...

    def pong_overdue(self, sent_at: float) -> bool:
        """True when no pong arrived since the ping sent at ``sent_at``."""
        ...

    def no_pong(self) -> None: ...


class Pinger:
    def __init__(self, ping_interval: float, pong_timeout: float) -> None:
        self.tick = max(0.05, min(1.0, ping_interval / 4, pong_timeout / 2))
        n = max(1, round(ping_interval / self.tick))
        self._buckets: list[set[Pingable]] = [set() for _ in range(n)]
        self._where: dict[Pingable, int] = {}
        self._next = 0
        self._pong_timeout = pong_timeout
        self._deadlines: deque[tuple[float, float, Pingable]] = deque()
        self._pc: PeriodicCallback | None = None

    def start(self) -> None:
        if self._pc is None:
            self._pc = PeriodicCallback(self._tick, self.tick * 1000)
            self._pc.start()

    def stop(self) -> None:
        if self._pc is not None:
            self._pc.stop()
            self._pc = None

    def add(self, conn: Pingable) -> None:
        # Spread new connections so a reconnect storm does not ping in lockstep.
        i = random.randrange(len(self._buckets))
        self._buckets[i].add(conn)
        self._where[conn] = i

    def remove(self, conn: Pingable) -> None:
        i = self._where.pop(conn, None)
        if i is not None:
            self._buckets[i].discard(conn)

    def __len__(self) -> int:
        return len(self._where)

    def _tick(self) -> None:
        now = time.monotonic()
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            _, sent, conn = dl.popleft()
            if conn in self._where and conn.pong_overdue(sent):
                self.remove(conn)
                conn.no_pong()
        bucket = self._buckets[self._next]
        self._next = (self._next + 1) % len(self._buckets)
        deadline = now + self._pong_timeout
        for conn in list(bucket):
            conn.send_ping(now)
            dl.append((deadline, now, conn))
