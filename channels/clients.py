"""This node's connections, by client id and by user.

The server API and node-to-node control ops find connections here (to
disconnect a user everywhere, to subscribe a client server-side); the hub is
built on it.
"""

from __future__ import annotations

from channels.errors import DisconnectCode
from channels.transport import Subscriber


class ClientRegistry:
    def __init__(self) -> None:
        self._clients: dict[str, Subscriber] = {}
        self._users: dict[str, set[Subscriber]] = {}

    def add_client(self, sub: Subscriber) -> None:
        self._clients[sub.client_id] = sub
        self._users.setdefault(sub.user, set()).add(sub)

    def remove_client(self, sub: Subscriber) -> None:
        self._clients.pop(sub.client_id, None)
        conns = self._users.get(sub.user)
        if conns is not None:
            conns.discard(sub)
            if not conns:
                del self._users[sub.user]

    def client(self, client_id: str) -> Subscriber | None:
        return self._clients.get(client_id)

    def user_connections(self, user: str) -> list[Subscriber]:
        return list(self._users.get(user, ()))

    def clients(self) -> list[Subscriber]:
        return list(self._clients.values())

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        return len(self._users)

    def disconnect_user(self, user: str, code: DisconnectCode, reason: str | None = None, client: str = "") -> int:
        """Close ``user``'s connections here (only ``client``'s, when given)."""
        n = 0
        for sub in self.user_connections(user):
            if client and sub.client_id != client:
                continue
            sub.disconnect(code, reason)
            n += 1
        return n
