"""One loop-wide timer for server pings and pong deadlines.

A timer per connection costs a handle and a wake-up each; instead connections
sit in ``ping_interval / tick`` buckets and one periodic callback pings the
next bucket each tick. Pong deadlines are checked from a FIFO (deadlines are
appended in time order because the timeout is constant). New sockets that
must send ``connect`` within ``client_stale_timeout`` wait in a FIFO of their
own, checked on the same tick, grouped per tick of deadlines (a list entry
per socket, not a tuple and a float), so 3502 comes up to two ticks late.
"""

from __future__ import annotations

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


class Stalable(Protocol):
    def stale_due(self) -> None:
        """Its stale deadline passed (it decides whether it is still waiting for connect)."""
        ...


class Pinger:
    def __init__(self, ping_interval: float, pong_timeout: float) -> None:
        self.tick = max(0.05, min(1.0, ping_interval / 4, pong_timeout / 2))
        n = max(1, round(ping_interval / self.tick))
        self._buckets: list[set[Pingable]] = [set() for _ in range(n)]
        self._where: dict[Pingable, int] = {}
        self._next = 0
        self._next_bucket = 0  # where add() puts the next connection
        self._pong_timeout = pong_timeout
        self._deadlines: deque[tuple[float, float, Pingable]] = deque()
        # [first deadline, last deadline, sockets]: one group per tick of deadlines
        self._new: deque[tuple[float, list[float], list[Stalable]]] = deque()
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
        # Spread new connections so a reconnect storm does not ping in lockstep:
        # in turn, which spreads them evenly and costs less than a random draw
        i = self._next_bucket = (self._next_bucket + 1) % len(self._buckets)
        self._buckets[i].add(conn)
        self._where[conn] = i

    def remove(self, conn: Pingable) -> None:
        i = self._where.pop(conn, None)
        if i is not None:
            self._buckets[i].discard(conn)

    def watch_new(self, conn: Stalable, at: float) -> None:
        """``conn.stale_due()`` on a tick at or after monotonic time ``at`` (at most
        two ticks after); ``at`` must not be earlier than the previous call's
        (a constant timeout)."""
        new = self._new
        if new and at - new[-1][0] < self.tick:
            _, due, members = new[-1]
            due[0] = at  # the group fires when its latest member is due: never early
            members.append(conn)
        else:
            new.append((at, [at], [conn]))

    def __len__(self) -> int:
        return len(self._where)

    def _tick(self) -> None:
        now = time.monotonic()
        new = self._new
        while new and new[0][1][0] <= now:
            for waiting in new.popleft()[2]:
                waiting.stale_due()
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
