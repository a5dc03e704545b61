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

As Centrifugo's survey, the POST is answered once the session's node has run
the batch (its replies are then on the stream): the receiving node waits for
the ``emulation_answer`` control op naming its request, sent back by the
session's node when the batch ran or was dropped, at most ``answer_timeout``
(Centrifugo's survey timeout, 10 s; then :class:`NoAnswer`, HTTP 500).
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
ANSWER_OP = "emulation_answer"
ANSWER_TIMEOUT = 10.0


class UnknownNode(Exception):
    """The request names a node this one has not heard of (HTTP 404)."""


class NoAnswer(Exception):
    """The session's node did not say within the timeout that it ran the batch (HTTP 500)."""


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _settled() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class _Inbox:
    """One session's pending command batches: run in order, one at a time;
    each batch's future is settled once it ran (or was given up)."""

    __slots__ = ("session", "batches", "running")

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.batches: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self.running = False


class EmulationSessions:
    """Session id -> emulated session on this node; the ``emulation`` control op."""

    __slots__ = ("_hub", "_by_id", "_max_pending", "_waiting", "_answer_timeout")

    def __init__(self, hub: Hub, max_pending: int = 64, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self._hub = hub
        self._by_id: dict[str, _Inbox] = {}
        self._max_pending = max_pending
        self._waiting: dict[str, asyncio.Future[None]] = {}  # request id -> its answer, for batches sent to other nodes
        self._answer_timeout = answer_timeout
        hub.register_control(CONTROL_OP, self._on_control)
        hub.register_control(ANSWER_OP, self._on_answer)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, session: ClientSession) -> str:
        sid = secrets.token_urlsafe(18)
        self._by_id[sid] = _Inbox(session)
        return sid

    def remove(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    async def deliver(self, node: str, sid: str, data: bytes) -> None:
        """Run ``data`` (the session's encoded commands) on the session's node
        and return once it ran there. Raises UnknownNode when ``node`` is not
        a live node of the cluster, NoAnswer when it does not answer in time."""
        hub = self._hub
        if node == hub.node_id:
            ran = self.run_local(sid, data)
        else:
            if node not in {n.uid for n in hub.nodes()}:
                raise UnknownNode(node)
            rid = secrets.token_urlsafe(12)
            ran = self._waiting[rid] = asyncio.get_running_loop().create_future()
            try:
                await hub.send_control(CONTROL_OP, node=node, session=sid, data=data, origin=hub.node_id, rid=rid)
            except BaseException:
                self._waiting.pop(rid, None)
                raise
            ran.add_done_callback(lambda _: self._waiting.pop(rid, None))
        try:
            await asyncio.wait_for(asyncio.shield(ran), self._answer_timeout)
        except asyncio.TimeoutError:
            raise NoAnswer(node) from None
        finally:
            _settle(ran)  # timed out or cancelled: nothing waits any more (a late answer finds nothing)

    def _on_control(self, msg: dict[str, Any]) -> None:
        if msg.get("node") != self._hub.node_id:
            return
        data = msg.get("data")
        sid = msg.get("session")
        if not (isinstance(sid, str) and isinstance(data, (bytes, str))):
            return
        ran = self.run_local(sid, data.encode() if isinstance(data, str) else data)
        origin, rid = msg.get("origin"), msg.get("rid")
        if isinstance(origin, str) and isinstance(rid, str):
            hub = self._hub
            ran.add_done_callback(lambda _: hub.spawn(hub.send_control(ANSWER_OP, node=origin, rid=rid)))

    def _on_answer(self, msg: dict[str, Any]) -> None:
        if msg.get("node") != self._hub.node_id:
            return
        fut = self._waiting.get(str(msg.get("rid", "")))
        if fut is not None:
            _settle(fut)

    def run_local(self, sid: str, data: bytes) -> asyncio.Future[None]:
        """Queue a batch for a session of this node: settled once it ran, at
        once when there is no such session or too much is pending (dropped)."""
        box = self._by_id.get(sid)
        if box is None:
            log.info("emulation request for an unknown session dropped")
            return _settled()
        if len(box.batches) >= self._max_pending:
            log.info("client=%s: too many emulation requests pending; dropped", box.session.client_id)
            return _settled()
        ran: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        box.batches.append((data, ran))
        if not box.running:
            box.running = True
            self._hub.spawn(self._drain(box))
        return ran

    async def _drain(self, box: _Inbox) -> None:
        try:
            while box.batches:
                data, ran = box.batches.popleft()
                try:
                    if box.session.closed:
                        break
                    await box.session.handle_frame(data)
                finally:
                    _settle(ran)
                await asyncio.sleep(0)
        finally:
            box.running = False
            while box.batches:  # the session closed: what is left never runs
                _settle(box.batches.popleft()[1])
