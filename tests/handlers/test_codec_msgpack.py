"""The msgpack codec, bytes in and bytes out."""

from __future__ import annotations

import msgpack
import pytest

from channels import errors
from handlers.codec import Command, ProtocolError
from handlers.codec_msgpack import MSGPACK


def test_commands_in() -> None:
    """Concatenated maps decode in order; bin payloads stay bytes; an empty map is a pong."""
    # {"id":1,"publish":{"channel":"c","data":b"\x00"}} then {}, written byte by byte
    frame = b"\x82\xa2id\x01\xa7publish\x82\xa7channel\xa1c\xa4data\xc4\x01\x00" + b"\x80"
    assert MSGPACK.decode_commands(frame) == [Command(1, "publish", {"channel": "c", "data": b"\x00"}), Command(0, "", {})]


@pytest.mark.parametrize(
    "frame",
    [b"\x82\xa2id\x01", b"\xc1", b"\xd4\x01\x00", b"\x93\x01\x02\x03", b"\x81\x01\x80", b""],
    ids=["truncated", "never-used byte", "ext type", "array", "int map key", "empty"],
)
def test_malformed_is_bad_request(frame: bytes) -> None:
    """Truncated maps, invalid bytes, ext types, non-maps, non-string keys, empty frames: 3501."""
    with pytest.raises(ProtocolError) as e:
        MSGPACK.decode_commands(frame)
    assert e.value.disconnect == errors.BAD_REQUEST


def test_exact_bytes_out() -> None:
    """Replies, errors, pushes and the ping, byte for byte."""
    assert MSGPACK.ping == b"\x80"
    assert MSGPACK.binary and MSGPACK.subprotocol is None
    assert MSGPACK.reply(1, "ping", {}) == b"\x82\xa2id\x01\xa4ping\x80"
    assert MSGPACK.error(2, errors.BadRequest()) == b"\x82\xa2id\x02\xa5error\x82\xa4code\x6b\xa7message\xabbad request"
    assert MSGPACK.push("c", "pub", {"data": b"\x01"}) == b"\x81\xa4push\x82\xa7channel\xa1c\xa3pub\x81\xa4data\xc4\x01\x01"
    assert MSGPACK.disconnect_push(3005, "x") == b"\x81\xa4push\x81\xaadisconnect\x82\xa4code\xcd\x0b\xbd\xa6reason\xa1x"


def test_round_trip() -> None:
    """decode_replies reads back concatenated replies; msgpack's own decoder agrees."""
    reply = MSGPACK.reply(3, "presence", {"presence": {"i": {"user": "u", "client": "i"}}})
    assert MSGPACK.decode_replies(reply + MSGPACK.ping) == [{"id": 3, "presence": {"presence": {"i": {"user": "u", "client": "i"}}}}, {}]
    assert msgpack.unpackb(reply) == {"id": 3, "presence": {"presence": {"i": {"user": "u", "client": "i"}}}}
