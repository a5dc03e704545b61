"""The JSON codec, bytes in and bytes out."""

from __future__ import annotations

import pytest

from channels import errors
from handlers.codec import Command, ProtocolError
from handlers.codec_json import JSON, JsonCodec
from handlers.protocol import codec_for


def test_commands_in() -> None:
    """Newline-separated objects decode in order; a bare {} is a pong; blank lines are skipped."""
    frame = b'{"id":1,"connect":{"token":"t","data":{"a":1}}}\n\n{"id":2,"subscribe":{"channel":"c","recover":true,"offset":3}}\n{}'
    assert JSON.decode_commands(frame) == [
        Command(1, "connect", {"token": "t", "data": {"a": 1}}),
        Command(2, "subscribe", {"channel": "c", "recover": True, "offset": 3}),
        Command(0, "", {}),
    ]
    assert JSON.decode_commands('{"id":3,"ping":{}}') == [Command(3, "ping", {})]  # a text frame as str


def test_unknown_method_and_keys() -> None:
    """An id with no known method is '?' (answered 104); unknown keys are ignored; a null request is {}."""
    assert JSON.decode_commands(b'{"id":4,"frobnicate":{}}') == [Command(4, "?", {})]
    assert JSON.decode_commands(b'{"id":5,"ping":null,"extra":1}') == [Command(5, "ping", {})]


def test_one_line_frame_decodes_as_with_a_newline() -> None:
    """A one-command frame (the fast path) decodes exactly as the same line followed by a newline."""
    for line in (b'{"id":7,"publish":{"channel":"c","data":{"x":1}}}', b' {"id":8,"ping":{}} ', b"{}"):
        assert JSON.decode_commands(line) == JSON.decode_commands(line + b"\n")


@pytest.mark.parametrize(
    "frame",
    [b"{", b"[1]", b'{"id":-1}', b'{"id":true,"ping":{}}', b'{"id":4294967296}', b'{"id":1,"ping":[]}',
     b'{"id":1,"ping":{},"rpc":{}}', b'{"id":1,"ping":{}}\n{"id":1,"ping":{}}', b"", b"  ", b"\n \n",
     b"\n".join([b'{"ping":{}}'] * 101)],
)
def test_malformed_is_bad_request(frame: bytes) -> None:
    """Bad JSON, non-objects, bad ids, two methods, duplicate ids, empty and oversized frames: 3501."""
    with pytest.raises(ProtocolError) as e:
        JSON.decode_commands(frame)
    assert e.value.disconnect == errors.BAD_REQUEST


def test_exact_bytes_out() -> None:
    """Replies, errors, pushes and the ping, byte for byte."""
    assert JSON.ping == b"{}"
    assert JSON.reply(1, "publish", {}) == b'{"id":1,"publish":{}}'
    assert JSON.error(2, errors.BackendUnavailable()) == b'{"id":2,"error":{"code":100,"message":"backend unavailable","temporary":true}}'
    assert JSON.push("c", "pub", {"data": {"x": 1}, "offset": 2}) == b'{"push":{"channel":"c","pub":{"data":{"x":1},"offset":2}}}'
    assert JSON.push("c", "pub", {"data": b"\x00\x01"}) == b'{"push":{"channel":"c","pub":{"data":"AAE="}}}'  # bytes: base64
    assert JSON.connection_push("refresh", {"ttl": 5}) == b'{"push":{"refresh":{"ttl":5}}}'
    assert JSON.disconnect_push(3501, "bad request") == b'{"push":{"disconnect":{"code":3501,"reason":"bad request"}}}'


def test_round_trip() -> None:
    """decode_replies reads back what the codec wrote, several per frame."""
    frames = [JSON.reply(1, "history", {"publications": [{"data": [1], "offset": 1}], "epoch": "e", "offset": 1}), JSON.ping]
    assert JSON.decode_replies(b"\n".join(frames)) == [
        {"id": 1, "history": {"publications": [{"data": [1], "offset": 1}], "epoch": "e", "offset": 1}},
        {},
    ]


def test_facade_is_the_codec() -> None:
    """The protocol module's JSON codec writes the same bytes as the codec object; text frames."""
    c = codec_for("json")
    assert (c.name, c.binary, c.subprotocol) == ("json", False, "centrifuge-json")
    assert c.push("c", "join", {"info": {"user": "u", "client": "i"}}) == JsonCodec().push("c", "join", {"info": {"user": "u", "client": "i"}})
