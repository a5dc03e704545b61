"""Centrifugo's JSON form of the client protocol.

Each command, reply or push is one JSON object; several in one frame are
separated by newlines. Payloads (``data``, ``info``) are embedded JSON values;
``bytes`` values (from msgpack or protobuf clients that sent non-JSON bytes)
are written as base64 strings, the only way JSON can carry them.
"""

from __future__ import annotations

import base64
from typing import Any, Iterator

import orjson

from channels.errors import SquallError
from handlers.codec import MAX_ID, Command, ProtocolError, check_frame
from handlers.commands import METHODS  # the command table: the decoder knows what the session runs

_METHOD_SET = frozenset(METHODS)


def json_default(value: Any) -> Any:
    """orjson's fallback: bytes become base64 text, anything else is refused."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"malformed JSON: {e.msg}") from None


def to_command(obj: Any) -> Command:
    """A decoded map-form object (JSON or msgpack) -> Command, or ProtocolError."""
    if type(obj) is not dict:  # what orjson and msgpack give: no subclasses
        raise ProtocolError("command must be an object")
    cid = obj.get("id", 0)
    if type(cid) is not int or not 0 <= cid <= MAX_ID:  # a bool is not an id
        raise ProtocolError("command id must be an unsigned 32-bit integer")
    method = ""
    params: Any = None
    for key, value in obj.items():
        if key == "id":
            continue
        if key in _METHOD_SET:
            if method:
                raise ProtocolError("command has more than one method")
            method, params = key, value
        # unknown keys are ignored, like protobuf's unknown fields
    if method:
        if params is None:
            params = {}
        elif type(params) is not dict:
            raise ProtocolError(f"{method} params must be an object")
    elif cid:
        # an id but no known method: a reply error, not a disconnect
        return Command(cid, "?", {})
    return Command(cid, method, params or {})


class JsonCodec:
    """The JSON form; :class:`handlers.codec_msgpack.MsgpackCodec` changes only the bytes."""

    __slots__ = ("name", "binary", "subprotocol", "ping")

    def __init__(self, name: str = "json", subprotocol: str | None = "centrifuge-json") -> None:
        self.name = name
        self.binary = False
        self.subprotocol = subprotocol  # Centrifugo answers it when a client offers it
        self.ping = self.encode({})

    # ------------------------------------------------------------ bytes <-> objects
    def encode(self, obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj, default=json_default)

    def objects(self, data: bytes) -> Iterator[Any]:
        """The frame's objects, one per non-blank line."""
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            yield _loads(line)

    # ------------------------------------------------------------ Codec
    def decode_commands(self, frame: bytes | str) -> list[Command]:
        if isinstance(frame, str):
            frame = frame.encode("utf-8", "surrogatepass")
        if not self.binary and b"\n" not in frame and frame.strip():
            # One line, one command, as nearly every frame is: no generators
            # to resume (not for the msgpack form, whose frames have no lines).
            return [to_command(_loads(frame))]
        return check_frame(to_command(obj) for obj in self.objects(frame))

    def reply(self, cid: int, method: str, result: dict[str, Any]) -> bytes:
        return self.encode({"id": cid, method: result})

    def error(self, cid: int, err: SquallError) -> bytes:
        return self.encode({"id": cid, "error": err.to_dict()})

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({"push": {"channel": channel, kind: body}})

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({"push": {kind: body}})

    def disconnect_push(self, code: int, reason: str) -> bytes:
        return self.connection_push("disconnect", {"code": code, "reason": reason})

    def decode_replies(self, data: bytes) -> list[dict[str, Any]]:
        return list(self.objects(data))


JSON = JsonCodec()
