"""``POST /emulation``: the later commands of an emulated session.

centrifuge-js's ``http_stream`` and ``sse`` transports send each batch of
commands as ``{"session": "...", "node": "...", "data": "<commands>"}`` where
``data`` is the JSON protocol's frame (newline-separated commands) as a
string; centrifuge-js's protobuf build POSTs the protobuf EmulationRequest
(``application/octet-stream``, ``data`` the varint-delimited Commands). The batch runs on the session's node (:mod:`handlers.emulation_sessions`);
its replies arrive on the session's stream, not in this response.

Answers, as Centrifugo's: 204 once the batch ran on the session's node (also
for an unknown session on a known node: the commands are dropped); 400
malformed body; 404 unknown node; 413 body over ``max_message_size``; 403
origin not allowed; 500 when the session's node did not answer in 10 s. The body of an
error answer says what was wrong.
"""

from __future__ import annotations

import logging
import orjson

from channels.errors import BackendUnavailable
from handlers.codec import ProtocolError
from handlers.codec_protobuf import read_varint
from handlers.context import Context
from handlers.emulation_sessions import EmulationSessions, NoAnswer, UnknownNode
from handlers.uni import UniHandler

log = logging.getLogger("squall.emulation")


def parse_protobuf_request(body: bytes) -> tuple[str, str, bytes]:
    """(node, session, data) of a protobuf EmulationRequest (node 1, session 2, data 3)."""
    fields: dict[int, bytes] = {}
    pos = 0
    try:
        while pos < len(body):
            tag, pos = read_varint(body, pos)
            number, wire_type = tag >> 3, tag & 7
            if wire_type != 2:
                raise ValueError("EmulationRequest fields are length-delimited")
            size, pos = read_varint(body, pos)
            if pos + size > len(body):
                raise ValueError("truncated EmulationRequest")
            fields[number] = body[pos:pos + size]
            pos += size
    except ProtocolError as e:
        raise ValueError(f"malformed EmulationRequest: {e}") from None
    try:
        node, session = fields.get(1, b"").decode(), fields.get(2, b"").decode()
    except UnicodeDecodeError:
        raise ValueError("node and session must be UTF-8") from None
    if not session:
        raise ValueError("session required")
    if not node:
        raise ValueError("node required")
    return node, session, fields.get(3, b"")


def parse_request(body: bytes) -> tuple[str, str, bytes]:
    """(node, session, data) of an emulation request; ValueError saying what is wrong."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("body must be JSON") from None
    if not isinstance(req, dict):
        raise ValueError("body must be a JSON object")
    node, session, data = req.get("node"), req.get("session"), req.get("data")
    if not isinstance(session, str) or not session:
        raise ValueError("session required")
    if not isinstance(node, str) or not node:
        raise ValueError("node required")
    if not isinstance(data, str):
        raise ValueError("data must be a string (the JSON protocol's commands)")
    return node, session, data.encode("utf-8", "surrogatepass")


class EmulationHandler(UniHandler):
    def initialize(self, ctx: Context, sessions: EmulationSessions) -> None:  # type: ignore[override]
        super().initialize(ctx)
        self.sessions = sessions

    def _answer(self, status: int, why: str = "") -> None:
        self.set_status(status)
        if why:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(why)
        else:
            self.finish()

    async def post(self) -> None:
        if not self._origin_ok():
            self._answer(403, "origin not allowed")
            return
        body = self.request.body
        if len(body) > self.ctx.options.max_message_size:
            self._answer(413, "emulation request too large")
            return
        protobuf = self.request.headers.get("Content-Type", "").startswith("application/octet-stream")
        try:
            node, session, data = (parse_protobuf_request if protobuf else parse_request)(body)
        except ValueError as e:
            log.info("bad emulation request from %s: %s", self.request.remote_ip, e)
            self._answer(400, str(e))
            return
        try:
            await self.sessions.deliver(node, session, data)
        except UnknownNode:
            self._answer(404, "unknown node")
            return
        except BackendUnavailable:
            self._answer(503, "cannot reach the session's node now")
            return
        except NoAnswer:
            self._answer(500, "the session's node did not answer")
            return
        self._answer(204)
