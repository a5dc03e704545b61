"""This node's emulated sessions, and how an emulation request reaches one.

A bidirectional HTTP-streaming or SSE client (centrifuge-js's ``http_stream``
and ``sse`` transports) reads its replies from one long response and sends
each later command as a ``POST /emulation`` carrying the ``session`` and
``node`` its connect reply named. That POST may land on any node: if the
session lives here its commands run at once; otherwise they travel the
broker's control path (``hub.send_control("emulation", ...)``; the Redis
engine's control channel across nodes) and the named node runs them.

The session id is a secret (unlike the client id, which other users see in
presence): whoever knows it can send commands as that connection.

As Centrifugo: a node nobody has heard of is a 404; an unknown session on a
known node is dropped (the client's command times out, as on Centrifugo).
Commands of one session run one batch at a time, in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

from channels.hub import Hub

if TYPE_CHECKING:
    from handlers.session import ClientSession

log = logging.getLogger("squall.emulation")

CONTROL_OP = "emulation"


class UnknownNode(Exception):
    """The request names a node this one has not heard of (HTTP 404)."""


class _Inbox:
    """One session's pending command batches: run in order, one at a time."""

    __slots__ = ("session", "batches", "running")

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.batches: deque[bytes] = deque()
        self.running = False


class EmulationSessions:
    """Session id -> emulated session on this node; the ``emulation`` control op."""

    __slots__ = ("_hub", "_by_id", "_max_pending")

    def __init__(self, hub: Hub, max_pending: int = 64) -> None:
        self._hub = hub
        self._by_id: dict[str, _Inbox] = {}
        self._max_pending = max_pending
        hub.register_control(CONTROL_OP, self._on_control)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, session: ClientSession) -> str:
        sid = secrets.token_urlsafe(18)
        self._by_id[sid] = _Inbox(session)
        return sid

    def remove(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    async def deliver(self, node: str, sid: str, data: bytes) -> None:
        """Run ``data`` (the session's encoded commands) on the session's node.
        Raises UnknownNode when ``node`` is not a live node of the cluster."""
        hub = self._hub
        if node == hub.node_id:
            self.run_local(sid, data)
            return
        if node not in {n.uid for n in hub.nodes()}:
            raise UnknownNode(node)
        await hub.send_control(CONTROL_OP, node=node, session=sid, data=data)

    def _on_control(self, msg: dict[str, Any]) -> None:
        if msg.get("node") != self._hub.node_id:
            return
        data = msg.get("data")
        sid = msg.get("session")
        if isinstance(sid, str) and isinstance(data, (bytes, str)):
            self.run_local(sid, data.encode() if isinstance(data, str) else data)

    def run_local(self, sid: str, data: bytes) -> bool:
        """Queue a batch for a session of this node; False if there is none."""
        box = self._by_id.get(sid)
        if box is None:
            log.info("emulation request for an unknown session dropped")
            return False
        if len(box.batches) >= self._max_pending:
            log.info("client=%s: too many emulation requests pending; dropped", box.session.client_id)
            return True
        box.batches.append(data)
        if not box.running:
            box.running = True
            self._hub.spawn(self._drain(box))
        return True

    async def _drain(self, box: _Inbox) -> None:
        try:
            while box.batches:
                data = box.batches.popleft()
                if box.session.closed:
                    box.batches.clear()
                    break
                await box.session.handle_frame(data)
                await asyncio.sleep(0)
        finally:
            box.running = False
