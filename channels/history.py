"""The HistoryStore interface: where a channel's stream is kept.

A store used by the memory broker assigns offsets itself (:meth:`append`);
a store behind a broker that assigns offsets elsewhere (Redis) only persists
what it is given (:meth:`write`). Both keep the promise the broker relies on:
when the call returns, the publications are stored.
"""

from __future__ import annotations

from typing import Protocol

from channels.types import (
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)


class HistoryStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def append(
        self, channel: str, pub: Publication, opts: StreamOptions
    ) -> Publication:
        """Give ``pub`` the channel's next offset and epoch, store it, return it.

        Calls for one channel complete in offset order.
        """
        ...

    async def write(
        self, channel: str, pubs: list[Publication], opts: StreamOptions
    ) -> None:
        """Store publications whose offsets were assigned elsewhere (idempotent)."""
        ...

    async def read(
        self, channel: str, query: HistoryQuery, opts: StreamOptions
    ) -> HistoryResult: ...

    async def position(self, channel: str) -> StreamPosition: ...

    async def remove(self, channel: str) -> None: ...

    def healthy(self) -> bool: ...
