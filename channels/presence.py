"""The PresenceManager interface: who is subscribed to a channel, cluster-wide."""

from __future__ import annotations

from typing import Protocol

from channels.types import ClientInfo


class PresenceManager(Protocol):
    """Entries expire unless refreshed, so a dead node's clients disappear."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, channel: str, info: ClientInfo) -> None:
        """Add or refresh ``info.client`` in ``channel``."""
        ...

    async def remove(self, channel: str, client_id: str) -> None: ...

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Client id -> info for every live entry."""
        ...

    async def stats(self, channel: str) -> tuple[int, int]:
        """(number of clients, number of distinct users)."""
        ...

    def healthy(self) -> bool: ...
