"""Centrifugo client protocol v2, JSON and msgpack forms, as bytes in/bytes out.

Pure: no sockets, no I/O, no clocks. A transport feeds frames to
:func:`decode_frame` and writes what the ``encode_*`` functions return.

JSON form: each command/reply is a JSON object; several per frame are
separated by newlines. Msgpack form (Squall's extension, ``?format=msgpack``):
each command/reply is a msgpack map with the same keys; several per frame are
simply concatenated. Publication ``data`` is any JSON-compatible value in
both forms (msgpack ``bin`` values reach JSON clients base64-encoded).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Iterator

import msgpack
import orjson

from channels import errors
from handlers.commands import METHODS  # the command table is the one list of methods

_METHOD_SET = frozenset(METHODS)
MAX_ID = 2**32 - 1
MAX_COMMANDS_PER_FRAME = 100


class ProtocolError(Exception):
    """The frame cannot be understood: the connection must end (3501)."""

    def __init__(self, message: str) -> None:
        self.disconnect = errors.BAD_REQUEST
        super().__init__(message)


@dataclass(slots=True)
class Command:
    """One decoded command. ``method`` is "" for a bare ``{}`` (a pong)."""

    id: int
    method: str
    params: dict[str, Any]


def _to_command(obj: Any) -> Command:
    if not isinstance(obj, dict):
        raise ProtocolError("command must be an object")
    cid = obj.get("id", 0)
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= MAX_ID:
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
        if not isinstance(params, dict):
            raise ProtocolError(f"{method} params must be an object")
    elif cid:
        # an id but no known method: a reply error, not a disconnect
        return Command(cid, "?", {})
    return Command(cid, method, params or {})


def _json_objects(data: bytes) -> Iterator[Any]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ProtocolError(f"malformed JSON: {e.msg}") from None


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"extension type {code} not allowed")


def _msgpack_objects(data: bytes) -> Iterator[Any]:
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=len(data) + 1,
        ext_hook=_no_ext,
    )
    unpacker.feed(data)
    try:
        yield from unpacker
    except (msgpack.UnpackException, ValueError, TypeError) as e:
        raise ProtocolError(f"malformed msgpack: {e}") from None
    try:
        rest = unpacker.read_bytes(1)  # msgpack refuses while an object is half-read
    except ValueError:
        rest = b"?"
    if rest:
        raise ProtocolError("truncated msgpack")


def check_data(data: Any) -> int:
    """Raise BadRequest unless ``data`` can reach every client format.

    Msgpack input may hold what JSON cannot (binary map keys, timestamps,
    integers over 64 bits); such a publication would fail while being fanned
    out to JSON subscribers, so it is refused up front. Returns the JSON size.
    """
    try:
        return len(orjson.dumps(data, default=_json_default))
    except (TypeError, orjson.JSONEncodeError) as e:
        raise errors.BadRequest(f"data not representable as JSON: {e}") from None


def decode_frame(data: bytes | str, fmt: str) -> list[Command]:
    """Decode one WebSocket message into commands, or raise ProtocolError."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    objs = _json_objects(data) if fmt == "json" else _msgpack_objects(data)
    out: list[Command] = []
    ids: set[int] = set()
    for obj in objs:
        cmd = _to_command(obj)
        if cmd.id:
            if cmd.id in ids:
                raise ProtocolError("duplicate command id")
            ids.add(cmd.id)
        out.append(cmd)
        if len(out) > MAX_COMMANDS_PER_FRAME:
            raise ProtocolError("too many commands in one frame")
    if not out:
        raise ProtocolError("empty frame")
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot encode {type(value).__name__}")


class Codec:
    """Encodes replies and pushes for one wire format ("json" or "msgpack")."""

    __slots__ = ("name", "binary", "ping")

    def __init__(self, name: str) -> None:
        if name not in ("json", "msgpack"):
            raise ValueError(f"unknown format {name!r}")
        self.name = name
        self.binary = name == "msgpack"
        self.ping = self.encode({})

    def encode(self, obj: dict[str, Any]) -> bytes:
        if self.binary:
            return msgpack.packb(obj, use_bin_type=True)
        return orjson.dumps(obj, default=_json_default)

    def reply(self, cid: int, method: str, result: dict[str, Any]) -> bytes:
        return self.encode({"id": cid, method: result})

    def error(self, cid: int, err: errors.SquallError) -> bytes:
        return self.encode({"id": cid, "error": err.to_dict()})

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.encode({"push": {"channel": channel, kind: body}})

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        """A push about the connection itself (disconnect, refresh): it names no channel."""
        return self.encode({"push": {kind: body}})

    def disconnect_push(self, code: int, reason: str) -> bytes:
        return self.connection_push("disconnect", {"code": code, "reason": reason})


JSON = Codec("json")
MSGPACK = Codec("msgpack")


def codec_for(fmt: str) -> Codec:
    return MSGPACK if fmt == "msgpack" else JSON


def decode_reply_stream(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Decode replies/pushes (the client side); used by tests and the load tester."""
    objs = _json_objects(data) if fmt == "json" else _msgpack_objects(data)
    return [o for o in objs]
