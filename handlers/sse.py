"""Unidirectional Server-Sent Events at ``/connection/uni_sse``.

``GET`` with the connect request as JSON in the ``cf_connect`` query
parameter (what a browser's EventSource can do), or ``POST`` with it as the
body. Every message is one event, ``data: <json>``; pings are ``data: {}``.

Squall's extension, recovery through ``Last-Event-ID``: after each batch of
events that moved a history channel, the server sends an id-only event whose
id is the connection's stream positions, the JSON object
``{"<channel>": [<offset>, "<epoch>"], ...}``. EventSource keeps the last id
and sends it as the ``Last-Event-ID`` header when it reconnects; Squall turns
it into ``subs`` recovery positions (it wins over positions in ``cf_connect``,
which is the same URL on every reconnect). Publications missed in between
arrive in the connect message's ``subs[channel].publications`` and nothing is
lost while the channel's history still holds them (``recovered: true``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from handlers.uni import Framing, UniHandler

log = logging.getLogger("squall.sse")

MAX_EVENT_ID = 8192


class SSEFraming(Framing):
    content_type = "text/event-stream; charset=utf-8"

    def frame(self, payload: bytes) -> bytes:
        return b"data: " + payload + b"\n\n"

    def trailer(self, positions: dict[str, list[Any]]) -> bytes:
        return b"id: " + orjson.dumps(positions) + b"\n\n"


def positions_from_event_id(value: str) -> dict[str, dict[str, Any]]:
    """``subs`` recovery requests from a Last-Event-ID we issued ({} if not ours)."""
    if not value or len(value) > MAX_EVENT_ID:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for channel, pos in parsed.items():
        if (
            isinstance(pos, list)
            and len(pos) == 2
            and isinstance(pos[0], int)
            and not isinstance(pos[0], bool)
            and pos[0] >= 0
            and isinstance(pos[1], str)
        ):
            out[channel] = {"recover": True, "offset": pos[0], "epoch": pos[1]}
    return out


class SSEHandler(UniHandler):
    framing = SSEFraming()

    def adjust_request(self, request: dict[str, Any]) -> dict[str, Any]:
        last = positions_from_event_id(self.request.headers.get("Last-Event-ID", ""))
        if not last:
            return request
        subs = request.get("subs")
        subs = dict(subs) if isinstance(subs, dict) else {}
        for channel, pos in last.items():
            old = subs.get(channel)
            subs[channel] = {**(old if isinstance(old, dict) else {}), **pos}
        return {**request, "subs": subs}

    async def get(self) -> None:
        await self.serve(self.get_query_argument("cf_connect", ""))

    async def post(self) -> None:
        await self.serve(self.request.body)
