"""In-process history: one bounded deque per channel. Single node only."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from channels.history import new_epoch, select
from channels.types import (
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)


@dataclass(slots=True)
class _Stream:
    epoch: str
    top: int = 0
    # (monotonic expiry or 0, publication)
    items: deque[tuple[float, Publication]] = field(default_factory=deque)


class MemoryHistoryStore:
    """Keeps ``history_size`` publications per channel for ``history_ttl``."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def healthy(self) -> bool:
        return True

    def _stream(self, channel: str) -> _Stream:
        s = self._streams.get(channel)
        if s is None:
            s = self._streams[channel] = _Stream(epoch=new_epoch())
        return s

    @staticmethod
    def _expire(s: _Stream, opts: StreamOptions) -> None:
        now = time.monotonic()
        items = s.items
        while items and items[0][0] and items[0][0] <= now:
            items.popleft()
        while len(items) > opts.history_size > 0:
            items.popleft()

    async def append(
        self, channel: str, pub: Publication, opts: StreamOptions
    ) -> Publication:
        s = self._stream(channel)
        s.top += 1
        pub.offset = s.top
        pub.epoch = s.epoch
        expiry = time.monotonic() + opts.history_ttl if opts.history_ttl > 0 else 0.0
        s.items.append((expiry, pub))
        self._expire(s, opts)
        return pub

    async def write(
        self, channel: str, pubs: list[Publication], opts: StreamOptions
    ) -> None:
        s = self._stream(channel)
        expiry = time.monotonic() + opts.history_ttl if opts.history_ttl > 0 else 0.0
        for pub in pubs:
            if pub.offset <= s.top:
                continue  # idempotent: already stored
            if pub.epoch:
                s.epoch = pub.epoch
            s.top = pub.offset
            s.items.append((expiry, pub))
        self._expire(s, opts)

    async def read(
        self, channel: str, query: HistoryQuery, opts: StreamOptions
    ) -> HistoryResult:
        s = self._stream(channel)
        self._expire(s, opts)
        top = StreamPosition(s.top, s.epoch)
        return select([p for _, p in s.items], top, query)

    async def position(self, channel: str) -> StreamPosition:
        s = self._stream(channel)
        return StreamPosition(s.top, s.epoch)

    async def remove(self, channel: str) -> None:
        s = self._streams.get(channel)
        if s is not None:
            s.items.clear()
