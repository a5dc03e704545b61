"""Unidirectional HTTP streaming at ``/connection/uni_http_stream``.

``POST`` the connect request as a JSON body; the response is a stream of
newline-delimited JSON messages (chunked transfer encoding): the connect
message, then pushes, ``{}`` pings, and a final ``{"disconnect": ...}``. To
recover after a dropped stream, send the last offset and epoch of each
channel in the connect request's ``subs``:
``{"subs": {"metrics:cpu": {"recover": true, "offset": 41, "epoch": "..."}}}``.
"""

from __future__ import annotations

from handlers.uni import Framing, UniHandler


class NDJSONFraming(Framing):
    content_type = "application/x-ndjson"

    def frame(self, payload: bytes) -> bytes:
        return payload + b"\n"


class HttpStreamHandler(UniHandler):
    framing = NDJSONFraming()

    async def post(self) -> None:
        await self.serve(self.request.body)
