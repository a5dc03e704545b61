"""The unidirectional transports' side of the session: its Output and its start.

A uni client sends one connect request and then only listens, so it never
reads a reply. :class:`UniOutput` is the :class:`~handlers.wire.Output` such a
session writes through: the connect result and each subscribe result are
collected into the single first message (``{"connect": {..., "subs": ...}}``),
a refused subscribe becomes an ``unsubscribe`` push after it, and a refused
connect becomes the disconnect. :meth:`UniOutput.start` runs the connect
request as commands (a ``connect``, then a ``subscribe`` for each channel of
``subs`` the token did not already subscribe, with the permission checks a
bidirectional client's subscribe gets) straight through the session's command
table, then releases what the wire held meanwhile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from channels import errors
from channels.errors import DisconnectCode, SquallError
from handlers.protocol import Codec, Command

if TYPE_CHECKING:
    from handlers.session import ClientSession
    from handlers.uni import UniWire

log = logging.getLogger("squall.uni")

_RECOVERY_FIELDS = ("recover", "offset", "epoch")


class UniCodec(Codec):
    """JSON codec whose pushes carry no ``{"push": ...}`` wrapper."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("json")

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({"channel": channel, kind: body})

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({kind: body})


UNI_JSON = UniCodec()


def uni_disconnect_for(err: SquallError) -> DisconnectCode:
    """A connect error becomes a disconnect: uni clients cannot read replies."""
    if err.code in (errors.TokenExpired.code, errors.Expired.code):
        return errors.EXPIRED
    if err.code == errors.TooManyRequests.code:
        return errors.TOO_MANY_REQUESTS
    if err.code in (errors.PermissionDenied.code, errors.Unauthorized.code):
        return errors.PERMISSION_DENIED
    if err.code in (errors.BadRequest.code, errors.UnknownChannel.code):
        return errors.BAD_REQUEST
    return errors.SERVER_ERROR


class UniOutput:
    """A listening session's Output; one per connection."""

    __slots__ = ("_wire", "_sub_ids", "_connect_result", "_refused")

    expects_pongs = False  # uni clients never answer pings; a dead peer shows as a write error

    def __init__(self, wire: UniWire) -> None:
        self._wire = wire
        self._sub_ids: dict[int, str] = {}  # subscribe command id -> channel
        self._connect_result: dict[str, Any] | None = None
        self._refused: list[tuple[str, SquallError]] = []

    async def start(self, s: ClientSession, request: dict[str, Any]) -> None:
        """Run the connect request as commands, then release the held output."""
        subs = request.get("subs") or {}
        if not isinstance(subs, dict):
            s.disconnect(errors.BAD_REQUEST, "subs must be an object")
            return
        await s.run(Command(1, "connect", request))
        if not s.connected:
            return
        cid = 1
        for channel in [c for c in subs if isinstance(c, str) and c not in s.subs]:
            cid += 1
            self._sub_ids[cid] = channel
            req = subs.get(channel)
            params = {k: v for k, v in req.items() if k in _RECOVERY_FIELDS} if isinstance(req, dict) else {}
            await s.run(Command(cid, "subscribe", {**params, "channel": channel}))
            if s.closed:
                return
        self._release(s)

    def _release(self, s: ClientSession) -> None:
        """The connect message first, then refusals, then what arrived meanwhile."""
        result = self._connect_result or {}
        self._connect_result = None
        w = self._wire
        held = w.release()
        s.write_wire(w.frame(w.codec.encode({"connect": result})))
        for channel, err in self._refused:
            s.write_wire(w.frame(w.codec.push(channel, "unsubscribe", {"code": 2000, "reason": err.message})))
        self._refused.clear()
        for data, conflate in held:
            s.write_wire(data, conflate)

    # ------------------------------------------------------------ Output
    def push(self, s: ClientSession, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        # The wire key is per connection, so this push is written to this
        # connection right after it is encoded: its offset is our position.
        w = self._wire
        if kind == "pub":
            offset = body.get("offset", 0)
            pos = w.positions.get(channel)
            if offset and pos is not None and offset > pos[0]:
                pos[0] = offset
                w.moved()
        return w.frame(w.codec.push(channel, kind, body))

    def reply(self, s: ClientSession, cid: int, method: str, result: dict[str, Any]) -> None:
        if method == "connect":
            result.pop("pong", None)
            for channel, sub in (result.get("subs") or {}).items():
                self._track(channel, sub)
            self._connect_result = result
        elif method == "subscribe":
            channel = self._sub_ids.pop(cid, "")
            self._track(channel, result)
            if self._connect_result is not None:
                self._connect_result.setdefault("subs", {})[channel] = result

    def error(self, s: ClientSession, cid: int, err: SquallError) -> None:
        channel = self._sub_ids.pop(cid, None)
        if channel is None:  # the connect itself failed
            log.info("uni connect from %s refused: %d %s", s.remote_ip, err.code, err.message)
            s.disconnect(uni_disconnect_for(err), err.message)
            return
        log.info("uni client=%s may not subscribe %s: %d %s", s.client_id, channel, err.code, err.message)
        self._refused.append((channel, err))

    def _track(self, channel: str, result: dict[str, Any]) -> None:
        epoch = result.get("epoch")
        if not epoch:
            return
        offset = int(result.get("offset", 0))
        for p in result.get("publications") or ():
            offset = max(offset, int(p.get("offset", 0)))
        self._wire.positions[channel] = [offset, epoch]
        self._wire.moved()


async def run(session: ClientSession, wire: UniWire, out: UniOutput, request: dict[str, Any]) -> None:
    """A listening session from its opening to its end: the connect request
    (and its subscriptions) run as commands, then it listens until closed."""
    wire.session = session
    try:
        session.opened()
    except errors.Disconnect as d:
        wire.close(d.code, d.reason)
        return
    try:
        await out.start(session, request)
        await wire.wait_done()
    finally:
        await session.closed_by_peer()
