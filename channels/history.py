"""The HistoryStore interface: where a channel's stream is kept.

A store used by the memory broker assigns offsets itself (:meth:`append`);
a store behind a broker that assigns offsets elsewhere (Redis) only persists
what it is given (:meth:`write`). Both keep the promise the broker relies on:
when the call returns, the publications are stored. :func:`select` and
:func:`new_epoch` are shared by every store (memory, Redis window, MongoDB).
"""

from __future__ import annotations

import random
from typing import Protocol

from channels.errors import UnrecoverablePosition

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


def new_epoch() -> str:
    """A fresh stream epoch: a changed epoch tells clients their positions are void.

    Eight hex digits from ``random`` (reseeded from the OS in every forked
    child), not ``secrets``: an epoch only has to differ from the channel's
    last one, it is no secret (every subscriber reads it), and the Redis
    engine draws one per publication in case the stream is new, where a
    ``getrandom`` system call each time showed in the profile.
    """
    return "%08x" % random.getrandbits(32)


def select(
    pubs: list[Publication], top: StreamPosition, query: HistoryQuery
) -> HistoryResult:
    """Apply Centrifugo's history semantics to an ordered list of publications.

    Forward, ``since`` returns what came after it (oldest first); with
    ``reverse``, what came before it (newest first), so both directions page.
    Shared by every store so limit/since/reverse mean the same everywhere.
    """
    if query.since is not None:
        if query.since.epoch and query.since.epoch != top.epoch:
            raise UnrecoverablePosition()
        mark = query.since.offset
        if query.reverse:
            # Centrifugo's backward iteration: the page before ``since``.
            pubs = [p for p in pubs if p.offset < mark]
        else:
            pubs = [p for p in pubs if p.offset > mark]
    if query.reverse:
        pubs = pubs[::-1]
    if query.limit == 0:
        pubs = []
    elif query.limit > 0:
        pubs = pubs[: query.limit]
    return HistoryResult(publications=pubs, position=top)
