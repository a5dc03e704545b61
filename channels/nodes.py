"""The cluster's node registry: who is out there, from their heartbeats.

Every node announces itself over the broker's control path; entries of nodes
that went silent for ``expire`` seconds are left out of :meth:`NodeRegistry.nodes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class NodeInfo:
    uid: str
    name: str
    num_clients: int = 0
    num_users: int = 0
    num_subs: int = 0
    num_channels: int = 0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "name": self.name,
            "num_clients": self.num_clients,
            "num_users": self.num_users,
            "num_subs": self.num_subs,
            "num_channels": self.num_channels,
        }


class NodeRegistry:
    """Other nodes as last heard, plus this one as it is now."""

    def __init__(self, uid: str, expire: float) -> None:
        self.uid = uid
        self.expire = expire
        self._nodes: dict[str, NodeInfo] = {}

    def nodes(self, me: NodeInfo) -> list[NodeInfo]:
        now = time.monotonic()
        self._nodes[me.uid] = me
        return [n for n in self._nodes.values() if n.uid == me.uid or now - n.updated < self.expire]

    def heard(self, msg: dict[str, Any]) -> None:
        """A node's heartbeat (a control message) arrived."""
        uid = str(msg.get("uid", ""))
        if not uid:
            return
        self._nodes[uid] = NodeInfo(
            uid=uid,
            name=str(msg.get("name", "")),
            num_clients=int(msg.get("num_clients", 0)),
            num_users=int(msg.get("num_users", 0)),
            num_subs=int(msg.get("num_subs", 0)),
            num_channels=int(msg.get("num_channels", 0)),
            updated=time.monotonic(),
        )
