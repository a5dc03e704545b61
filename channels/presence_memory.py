"""Single-node presence: a dict per channel."""

from __future__ import annotations

from channels.types import ClientInfo


class MemoryPresenceManager:
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, ClientInfo]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def healthy(self) -> bool:
        return True

    async def add(self, channel: str, info: ClientInfo) -> None:
        self._channels.setdefault(channel, {})[info.client] = info

    async def remove(self, channel: str, client_id: str) -> None:
        entries = self._channels.get(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._channels[channel]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._channels.get(channel, {}))

    async def stats(self, channel: str) -> tuple[int, int]:
        entries = self._channels.get(channel, {})
        return len(entries), len({i.user for i in entries.values()})
