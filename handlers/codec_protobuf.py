"""Centrifugo's protobuf form of the client protocol (subprotocol ``centrifuge-protobuf``).

Framing: every Command, Reply or Push is one protobuf message prefixed with its
length as a varint; a binary WebSocket message carries one or more of them.
The schema is ``handlers/proto/client.proto`` (Centrifugo's field numbers).

Payloads (``data``, ``conn_info``, ``chan_info``) are raw bytes on this wire
while Squall's publications are JSON values, so they are translated at the
codec, never elsewhere:

* out: a JSON value is sent as its JSON bytes (what a JSON client sees inline);
  a ``bytes`` value is sent as those bytes, unchanged.
* in: bytes that parse as JSON become that JSON value (so JSON clients get
  the JSON itself); any other bytes stay ``bytes``. They then reach protobuf
  and msgpack clients unchanged and JSON clients as a base64 string (see
  docs/PROTOCOL.md; Centrifugo cannot deliver them to JSON clients at all).

Malformed input raises :class:`~handlers.codec.ProtocolError`: 3501 for a bad
varint, a truncated message, a length running past the frame, a known field
with the wrong wire type, two requests in one Command, bad UTF-8 in a string;
1009 for a declared length over ``max_message_size``. Unknown field numbers
are ignored (newer SDKs send fields Squall does not read).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from channels import errors
from channels.errors import SquallError
from handlers.codec import MAX_MESSAGE_SIZE, Command, ProtocolError, check_frame
from handlers.codec_json import json_default
from handlers.proto import client_pb2 as pb

SUBPROTOCOL = "centrifuge-protobuf"
_MAX_VARINT_BYTES = 10
_CLIENT_SIDE_LIMIT = 1 << 30  # decode_replies: the server is trusted, the frame bounds it anyway

# how each field is filled from / read into map form
_SCALAR, _BYTES, _MESSAGE, _REPEATED_MESSAGE, _MAP_SCALAR, _MAP_MESSAGE, _REPEATED_SCALAR = range(7)


def _repeated(fd: FieldDescriptor) -> bool:
    if hasattr(fd, "is_repeated"):  # protobuf >= 6; ``label`` is deprecated there
        return bool(fd.is_repeated)
    return bool(fd.label == FieldDescriptor.LABEL_REPEATED)


def _field_kind(fd: FieldDescriptor) -> int:
    mt = fd.message_type
    if mt is not None and mt.GetOptions().map_entry:
        return _MAP_MESSAGE if mt.fields_by_name["value"].message_type is not None else _MAP_SCALAR
    if mt is not None:
        return _REPEATED_MESSAGE if _repeated(fd) else _MESSAGE
    if _repeated(fd):
        return _REPEATED_SCALAR
    return _BYTES if fd.type == FieldDescriptor.TYPE_BYTES else _SCALAR


def _all_fields(desc: Descriptor) -> Iterator[FieldDescriptor]:
    yield from desc.fields
    for nested in desc.nested_types:
        yield from _all_fields(nested)


# every field of the schema -> its kind, computed once at import (the schema is fixed)
_KINDS: Mapping[FieldDescriptor, int] = MappingProxyType(
    {fd: _field_kind(fd) for m in pb.DESCRIPTOR.message_types_by_name.values() for fd in _all_fields(m)}
)
_kind = _KINDS.__getitem__


# ------------------------------------------------------------------ payloads
def payload_bytes(value: Any) -> bytes:
    """A payload's wire bytes: bytes as they are, any other value as its JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return orjson.dumps(value, default=json_default)


def payload_value(raw: bytes) -> Any:
    """Incoming payload bytes: the JSON value they spell, else the bytes themselves."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return bytes(raw)


def _raw(raw: bytes) -> Any:
    return bytes(raw)


# ------------------------------------------------------------------ framing
def varint(n: int) -> bytes:
    """``n`` (>= 0) as a protobuf varint."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it, or ProtocolError."""
    result = shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >= 1 << 64:
                raise ProtocolError("malformed varint: over 64 bits")
            return result, pos
        shift += 7
    raise ProtocolError("malformed varint: over 10 bytes")


def split(data: bytes, max_size: int) -> Iterator[bytes]:
    """The length-delimited messages of one frame."""
    pos, total = 0, len(data)
    while pos < total:
        size, pos = read_varint(data, pos)
        if size > max_size:
            raise ProtocolError(f"declared length {size} over {max_size}", errors.MESSAGE_TOO_BIG)
        end = pos + size
        if end > total:
            raise ProtocolError("truncated message")
        yield data[pos:end]
        pos = end


# ------------------------------------------------------------------ map form <-> messages
def fill(msg: Message, obj: dict[str, Any]) -> None:
    """Set ``msg``'s fields from a map-form object; keys the schema lacks are skipped."""
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in obj.items():
        fd = fields.get(key)
        if fd is None:
            continue
        kind = _kind(fd)
        if kind == _BYTES:
            setattr(msg, key, payload_bytes(value))  # None is JSON null, as JSON clients see it
        elif value is None:
            continue
        elif kind == _SCALAR:
            setattr(msg, key, value)
        elif kind == _MESSAGE:
            sub = getattr(msg, key)
            sub.SetInParent()  # an empty result is still a result
            fill(sub, value)
        elif kind == _REPEATED_MESSAGE:
            items = getattr(msg, key)
            for item in value:
                fill(items.add(), item)
        elif kind == _MAP_MESSAGE:
            entries = getattr(msg, key)
            for k, v in value.items():
                fill(entries[k], v)
        elif kind == _MAP_SCALAR:
            getattr(msg, key).update(value)
        else:
            getattr(msg, key).extend(value)


def to_map(msg: Message, payload: Callable[[bytes], Any]) -> dict[str, Any]:
    """A message's set fields in map form; ``payload`` converts bytes fields."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        kind = _kind(fd)
        if kind == _SCALAR:
            out[fd.name] = value
        elif kind == _BYTES:
            out[fd.name] = payload(value)
        elif kind == _MESSAGE:
            out[fd.name] = to_map(value, payload)
        elif kind == _REPEATED_MESSAGE:
            out[fd.name] = [to_map(v, payload) for v in value]
        elif kind == _MAP_MESSAGE:
            out[fd.name] = {k: to_map(v, payload) for k, v in value.items()}
        elif kind == _MAP_SCALAR:
            out[fd.name] = dict(value)
        else:
            out[fd.name] = list(value)
    return out


def check_wire_types(msg: Message) -> None:
    """ProtocolError if a field the schema knows came with another wire type.

    The protobuf runtime keeps such a field as an unknown one; Squall treats
    it as a malformed command, as it would a JSON string where an object goes."""
    desc: Descriptor = msg.DESCRIPTOR
    for unknown in UnknownFieldSet(msg):
        if unknown.field_number in desc.fields_by_number:
            raise ProtocolError(f"wrong wire type for {desc.name}.{desc.fields_by_number[unknown.field_number].name}")
    for fd, value in msg.ListFields():
        kind = _kind(fd)
        if kind == _MESSAGE:
            check_wire_types(value)
        elif kind == _REPEATED_MESSAGE:
            for v in value:
                check_wire_types(v)
        elif kind == _MAP_MESSAGE:
            for v in value.values():
                check_wire_types(v)


def to_command(raw: bytes) -> Command:
    """One Command message -> Command, or ProtocolError."""
    try:
        msg = pb.Command.FromString(raw)
    except DecodeError as e:
        raise ProtocolError(f"malformed protobuf: {e}") from None
    check_wire_types(msg)
    method = ""
    params: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.number == 1:
            continue
        if method:
            raise ProtocolError("command has more than one method")
        method, params = fd.name, to_map(value, payload_value)
    cid = msg.id
    if not method and cid:
        return Command(cid, "?", {})  # only unknown fields: a reply error, as in JSON
    return Command(cid, method, params)


# ------------------------------------------------------------------ the codec
class ProtobufCodec:
    """Centrifugo's protobuf form, in binary frames."""

    __slots__ = ("name", "binary", "subprotocol", "ping", "max_message_size")

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.name = "protobuf"
        self.binary = True
        self.subprotocol: str | None = SUBPROTOCOL
        self.max_message_size = max_message_size
        self.ping = varint(0)  # an empty Reply

    @staticmethod
    def _out(msg: Message) -> bytes:
        body = msg.SerializeToString()
        return varint(len(body)) + body

    def decode_commands(self, frame: bytes | str) -> list[Command]:
        if isinstance(frame, str):
            frame = frame.encode("utf-8", "surrogatepass")
        return check_frame(to_command(raw) for raw in split(frame, self.max_message_size))

    def encode(self, obj: dict[str, Any]) -> bytes:
        msg = pb.Reply()
        fill(msg, obj)
        return self._out(msg)

    def reply(self, cid: int, method: str, result: dict[str, Any]) -> bytes:
        msg = pb.Reply(id=cid)
        sub = getattr(msg, method)
        sub.SetInParent()
        fill(sub, result)
        return self._out(msg)

    def error(self, cid: int, err: SquallError) -> bytes:
        return self._out(pb.Reply(id=cid, error=pb.Error(code=err.code, message=err.message, temporary=err.temporary)))

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        msg = pb.Reply()
        push = msg.push
        push.channel = channel
        sub = getattr(push, kind)
        sub.SetInParent()
        fill(sub, body)
        return self._out(msg)

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        msg = pb.Reply()
        sub = getattr(msg.push, kind)
        sub.SetInParent()
        fill(sub, body)
        return self._out(msg)

    def disconnect_push(self, code: int, reason: str) -> bytes:
        return self.connection_push("disconnect", {"code": code, "reason": reason})

    def decode_replies(self, data: bytes) -> list[dict[str, Any]]:
        """Replies in map form with payloads as raw bytes, as a protobuf SDK sees them."""
        out = []
        for raw in split(data, _CLIENT_SIDE_LIMIT):
            try:
                out.append(to_map(pb.Reply.FromString(raw), _raw))
            except DecodeError as e:
                raise ProtocolError(f"malformed protobuf: {e}") from None
        return out


PROTOBUF = ProtobufCodec()
