"""The memory engine's outbox: one node, in this process.

Events wait here until every sink took them, so a webhook outage loses
nothing while Squall runs; a restart loses what was still waiting (use the
Redis engine for an outbox that survives it: docs/EVENTS.md). One node means
its own channel transitions are the cluster's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from channels.events import Event


class MemoryOutbox:
    def __init__(self, max_len: int = 1_000_000) -> None:
        self.max_len = max_len
        self._events: OrderedDict[str, Event] = OrderedDict()  # receipt -> event, oldest first
        self._unread: deque[str] = deque()
        self._seq = 0
        self._ready = asyncio.Event()
        self.dropped = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def put(self, events: list[Event]) -> None:
        for e in events:
            self._seq += 1
            receipt = str(self._seq)
            self._events[receipt] = e
            self._unread.append(receipt)
        while len(self._events) > self.max_len:
            self._events.popitem(last=False)
            self.dropped += 1
        self._ready.set()

    async def transition(self, channel: str, occupied: bool, event: Event) -> tuple[bool, bool]:
        await self.put([event])
        return True, True

    async def heartbeat(self, ttl: float) -> bool:
        return True  # one node: never swept

    async def sweep(self, id_base: str) -> int:
        return 0  # no other node to outlive

    async def read(self, count: int, block: float) -> list[tuple[str, Event]]:
        if not self._unread:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), block)
            except asyncio.TimeoutError:
                return []
        out: list[tuple[str, Event]] = []
        while self._unread and len(out) < count:
            receipt = self._unread.popleft()
            event = self._events.get(receipt)
            if event is not None:
                out.append((receipt, event))
        return out

    async def touch(self, receipts: list[str]) -> None:
        pass

    async def ack(self, receipts: list[str]) -> None:
        for r in receipts:
            self._events.pop(r, None)

    def pending(self) -> int:
        return len(self._events)
