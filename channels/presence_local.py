"""This node's presence entries, mirrored in the presence backend.

The backend expires entries a node stops refreshing (a dead node's clients
disappear within ``presence_ttl``), so the node keeps its own list and
re-adds every entry on each heartbeat. A failed backend call is logged and
left to the next heartbeat; presence never blocks a subscribe.
"""

from __future__ import annotations

import logging

from channels.errors import BackendUnavailable
from channels.presence import PresenceManager
from channels.types import ClientInfo

log = logging.getLogger("squall.hub")


class LocalPresence:
    def __init__(self, manager: PresenceManager) -> None:
        self.manager = manager
        self._entries: dict[str, dict[str, ClientInfo]] = {}  # channel -> client -> info

    async def add(self, channel: str, info: ClientInfo) -> None:
        self._entries.setdefault(channel, {})[info.client] = info
        await self._send(channel, info, "add")

    async def update(self, channel: str, info: ClientInfo) -> None:
        """A client's info changed: only an entry it already has is replaced.
        Its ``chan_info`` is the subscription's (token or proxy), so it stays."""
        entries = self._entries.get(channel)
        old = entries.get(info.client) if entries is not None else None
        if entries is None or old is None:
            return
        new = ClientInfo(client=info.client, user=info.user, conn_info=info.conn_info, chan_info=old.chan_info)
        entries[info.client] = new
        await self._send(channel, new, "update")

    async def remove(self, channel: str, client_id: str) -> None:
        local = self._entries.get(channel)
        if local is not None:
            local.pop(client_id, None)
            if not local:
                del self._entries[channel]
        try:
            await self.manager.remove(channel, client_id)
        except BackendUnavailable:
            log.warning("presence remove failed for %s", channel)

    async def refresh(self) -> None:
        """Re-add every entry (raises BackendUnavailable: the heartbeat retries)."""
        for channel, entries in list(self._entries.items()):
            for client, info in list(entries.items()):
                if entries.get(client) is not info:
                    continue  # left while earlier entries were refreshed: never re-add it
                await self.manager.add(channel, info)

    def entries(self) -> dict[str, dict[str, ClientInfo]]:
        return self._entries

    async def _send(self, channel: str, info: ClientInfo, what: str) -> None:
        try:
            await self.manager.add(channel, info)
        except BackendUnavailable:
            log.warning("presence %s failed for %s", what, channel)
