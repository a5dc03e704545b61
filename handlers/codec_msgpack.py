"""Squall's msgpack form (``?format=msgpack``): the JSON form's objects in msgpack.

Each command, reply or push is a msgpack map with the JSON form's keys;
several in one frame are simply concatenated (msgpack is self-delimiting).
Payloads are any msgpack value that also exists in JSON, plus ``bin``.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgpack

from handlers.codec import ProtocolError
from handlers.codec_json import JsonCodec


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"extension type {code} not allowed")


class MsgpackCodec(JsonCodec):
    """The JSON form's object model in msgpack bytes, in binary frames."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("msgpack", subprotocol=None)  # Squall's own: selected by ?format=msgpack only
        self.binary = True

    def encode(self, obj: dict[str, Any]) -> bytes:
        out: bytes = msgpack.packb(obj, use_bin_type=True)
        return out

    def objects(self, data: bytes) -> Iterator[Any]:
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


MSGPACK = MsgpackCodec()
