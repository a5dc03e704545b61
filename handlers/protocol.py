"""Centrifugo's client protocol, as bytes in/bytes out: the pure protocol layer's front.

Pure: no sockets, no I/O, no clocks. The formats are one codec object each
behind the :class:`handlers.codec.Codec` interface:

* ``json`` (:mod:`handlers.codec_json`): Centrifugo's JSON form, text frames;
* ``msgpack`` (:mod:`handlers.codec_msgpack`): Squall's extension, the JSON
  form's objects in msgpack;
* ``protobuf`` (:mod:`handlers.codec_protobuf`): Centrifugo's protobuf form,
  varint-length-delimited messages (subprotocol ``centrifuge-protobuf``).

:func:`codec_for` is the one place a format name becomes a codec.
docs/PROTOCOL.md has the forms and how a client selects one.
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import orjson

from channels import errors
from channels.errors import SquallError
from handlers import codec
from handlers.codec import MAX_COMMANDS_PER_FRAME, MAX_ID, MAX_MESSAGE_SIZE, Command, ProtocolError
from handlers.codec_json import JSON as _JSON
from handlers.codec_json import json_default
from handlers.codec_msgpack import MSGPACK as _MSGPACK
from handlers.codec_protobuf import PROTOBUF as _PROTOBUF
from handlers.codec_protobuf import ProtobufCodec
from handlers.commands import METHODS  # the command table is the one list of methods

__all__ = [
    "FORMATS", "MAX_COMMANDS_PER_FRAME", "MAX_ID", "METHODS", "Codec", "Command", "JSON", "MSGPACK",
    "PROTOBUF", "SUBPROTOCOLS", "ProtocolError", "check_data", "codec_for", "decode_frame", "decode_reply_stream",
    "formats", "negotiate",
]

# format name (the ``format`` query argument) -> its codec
FORMATS: Mapping[str, codec.Codec] = MappingProxyType({c.name: c for c in (_JSON, _MSGPACK, _PROTOBUF)})
# the codec a WebSocket subprotocol selects (Sec-WebSocket-Protocol)
SUBPROTOCOLS: Mapping[str, str] = MappingProxyType({c.subprotocol: c.name for c in FORMATS.values() if c.subprotocol})


def _format(name: str) -> codec.Codec:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}") from None


class Codec:
    """The codec of one format, by name: a thin front over the shared codec object.

    It is itself a :class:`handlers.codec.Codec`. Transports may subclass it to
    change the envelope (:class:`handlers.uni.UniCodec` drops the push wrapper:
    ``disconnect_push`` goes through ``connection_push`` for that reason).
    """

    __slots__ = ("name", "binary", "subprotocol", "ping", "_impl")

    def __init__(self, name: str, impl: codec.Codec | None = None) -> None:
        impl = _format(name) if impl is None else impl
        self._impl = impl
        self.name = impl.name
        self.binary = impl.binary
        self.subprotocol = impl.subprotocol
        self.ping = impl.ping

    def decode_commands(self, frame: bytes | str) -> list[Command]:
        return self._impl.decode_commands(frame)

    def encode(self, obj: dict[str, Any]) -> bytes:
        return self._impl.encode(obj)

    def reply(self, cid: int, method: str, result: dict[str, Any]) -> bytes:
        return self._impl.reply(cid, method, result)

    def error(self, cid: int, err: SquallError) -> bytes:
        return self._impl.error(cid, err)

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self._impl.push(channel, kind, body)

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        return self._impl.connection_push(kind, body)

    def disconnect_push(self, code: int, reason: str) -> bytes:
        return self.connection_push("disconnect", {"code": code, "reason": reason})

    def decode_replies(self, data: bytes) -> list[dict[str, Any]]:
        return self._impl.decode_replies(data)


JSON = Codec("json")
MSGPACK = Codec("msgpack")
PROTOBUF = Codec("protobuf")
_BY_NAME: Mapping[str, Codec] = MappingProxyType({c.name: c for c in (JSON, MSGPACK, PROTOBUF)})


def codec_for(fmt: str) -> Codec:
    """The codec of format ``fmt`` ("json", "msgpack", "protobuf"); ValueError for others."""
    try:
        return _BY_NAME[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}") from None


@lru_cache(maxsize=8)
def formats(max_message_size: int = MAX_MESSAGE_SIZE) -> Mapping[str, Codec]:
    """The codecs of a server whose ``max_message_size`` is given: the protobuf
    one refuses a declared length over it (1009). Built once per size and
    shared (they are immutable); the default size gives the module's codecs."""
    if max_message_size == MAX_MESSAGE_SIZE:
        return _BY_NAME
    protobuf = Codec("protobuf", ProtobufCodec(max_message_size=max_message_size))
    return MappingProxyType({"json": JSON, "msgpack": MSGPACK, "protobuf": protobuf})


def negotiate(
    query_format: str | None, offered: Iterable[str] = (), max_message_size: int = MAX_MESSAGE_SIZE,
) -> tuple[Codec, str | None]:
    """The codec of a WebSocket upgrade and the Sec-WebSocket-Protocol to answer (None: no header).

    As Centrifugo: an offered ``centrifuge-protobuf`` selects protobuf (current
    SDKs), else the ``format`` query argument does (``protobuf``, as older SDKs
    ask; ``msgpack``; default ``json``). A format's subprotocol is answered only
    if the client offered it. ValueError for an unknown ``format``.
    """
    offered = set(offered)
    codecs = formats(max_message_size)
    if _PROTOBUF.subprotocol in offered:
        return codecs["protobuf"], _PROTOBUF.subprotocol
    try:
        chosen = codecs[query_format or "json"]
    except KeyError:
        raise ValueError(f"unknown format {query_format!r}") from None
    return chosen, chosen.subprotocol if chosen.subprotocol in offered else None


def check_data(data: Any) -> int:
    """Raise BadRequest unless ``data`` can reach every client format.

    Msgpack input may hold what JSON cannot (binary map keys, timestamps,
    integers over 64 bits); such a publication would fail while being fanned
    out to JSON subscribers, so it is refused up front. Returns the JSON size.
    """
    try:
        return len(orjson.dumps(data, default=json_default))
    except (TypeError, orjson.JSONEncodeError) as e:
        raise errors.BadRequest(f"data not representable as JSON: {e}") from None


def decode_frame(data: bytes | str, fmt: str) -> list[Command]:
    """Decode one WebSocket message into commands, or raise ProtocolError."""
    return _format(fmt).decode_commands(data)


def decode_reply_stream(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Decode replies/pushes (the client side); used by tests and the load tester."""
    return _format(fmt).decode_replies(data)
