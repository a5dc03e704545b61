"""The protobuf codec, bytes in and bytes out, checked against centrifuge-python's own protobuf codec."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from centrifuge.codecs import _ProtobufCodec as SdkCodec

from channels import errors
from handlers.codec import MAX_COMMANDS_PER_FRAME, Command, ProtocolError
from handlers.codec_protobuf import PROTOBUF, ProtobufCodec, read_varint, varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import JSON, METHODS


def sdk_frame(*commands: dict[str, Any]) -> bytes:
    """Commands as centrifuge-python sends them with use_protobuf=True (its own schema and encoder)."""
    return bytes(SdkCodec.encode_commands(list(commands)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------ schema
def test_methods_are_the_schemas_commands() -> None:
    """Every method of the command table is a request field of client.proto's Command, and back."""
    fields = [f.name for f in pb.Command.DESCRIPTOR.fields if f.name != "id"]
    assert sorted(fields) == sorted(METHODS)


# ------------------------------------------------------------------ bytes in
def test_hand_written_connect_bytes() -> None:
    """A connect command written byte by byte, and a pong, in one frame."""
    request = b"\x0a\x03tok" + b"\x12\x02{}" + b"\x22\x07browser"  # token, data, name
    command = b"\x08\x01" + b"\x22" + bytes([len(request)]) + request  # id 1, connect (field 4)
    frame = bytes([len(command)]) + command + b"\x00"  # then an empty Command: a pong
    assert PROTOBUF.decode_commands(frame) == [
        Command(1, "connect", {"token": "tok", "data": {}, "name": "browser"}),
        Command(0, "", {}),
    ]


def test_every_sdk_command() -> None:
    """What centrifuge-python encodes for each command decodes to the JSON form's params."""
    frame = sdk_frame(
        {"id": 1, "connect": {"token": "t", "data": b64(b'{"a":1}'), "name": "py",
                              "subs": {"news": {"recover": True, "offset": 4, "epoch": "e"}}}},
        {"id": 2, "subscribe": {"channel": "chat:a", "recover": True, "offset": 7, "epoch": "ep",
                                "positioned": True, "recoverable": True, "join_leave": True, "flag": 2, "token": "st"}},
        {"id": 3, "unsubscribe": {"channel": "chat:a"}},
        {"id": 4, "publish": {"channel": "chat:a", "data": b64(b'{"text":"hi"}')}},
        {"id": 5, "presence": {"channel": "chat:a"}},
        {"id": 6, "presence_stats": {"channel": "chat:a"}},
        {"id": 7, "history": {"channel": "chat:a", "limit": -1, "since": {"offset": 3, "epoch": "ep"}, "reverse": True}},
        {"id": 8, "ping": {}},
        {"send": {"data": b64(b"[1,2]")}},
        {"id": 9, "rpc": {"method": "sum", "data": b64(b'{"x":2}')}},
        {"id": 10, "refresh": {"token": "t2"}},
        {"id": 11, "sub_refresh": {"channel": "chat:a", "token": "st2"}},
        {},
    )
    assert PROTOBUF.decode_commands(frame) == [
        Command(1, "connect", {"token": "t", "data": {"a": 1}, "name": "py",
                               "subs": {"news": {"recover": True, "offset": 4, "epoch": "e"}}}),
        Command(2, "subscribe", {"channel": "chat:a", "token": "st", "recover": True, "epoch": "ep", "offset": 7,
                                 "positioned": True, "recoverable": True, "join_leave": True, "flag": 2}),
        Command(3, "unsubscribe", {"channel": "chat:a"}),
        Command(4, "publish", {"channel": "chat:a", "data": {"text": "hi"}}),
        Command(5, "presence", {"channel": "chat:a"}),
        Command(6, "presence_stats", {"channel": "chat:a"}),
        Command(7, "history", {"channel": "chat:a", "limit": -1, "since": {"offset": 3, "epoch": "ep"}, "reverse": True}),
        Command(8, "ping", {}),
        Command(0, "send", {"data": [1, 2]}),
        Command(9, "rpc", {"data": {"x": 2}, "method": "sum"}),
        Command(10, "refresh", {"token": "t2"}),
        Command(11, "sub_refresh", {"channel": "chat:a", "token": "st2"}),
        Command(0, "", {}),
    ]


def test_payload_bytes_become_json_or_stay_bytes() -> None:
    """JSON bytes become the JSON value; other bytes stay bytes; empty data is no data (publish says 'data required')."""
    frame = sdk_frame(
        {"id": 1, "publish": {"channel": "c", "data": b64(b'"text"')}},
        {"id": 2, "publish": {"channel": "c", "data": b64(b"\x89PNG\x00")}},
        {"id": 3, "publish": {"channel": "c", "data": b64(b"")}},
        {"id": 4, "publish": {"channel": "c", "data": b64(b"null")}},
    )
    assert [c.params for c in PROTOBUF.decode_commands(frame)] == [
        {"channel": "c", "data": "text"},
        {"channel": "c", "data": b"\x89PNG\x00"},
        {"channel": "c"},
        {"channel": "c", "data": None},
    ]


def test_unknown_fields_are_ignored() -> None:
    """Fields Squall does not declare (a newer SDK's) are skipped; a command of only those is method-not-found."""
    sub = b"\x0a\x01c" + b"\x8a\x01\x01x"  # channel, then SubscribeRequest.cursor (17), not in Squall's schema
    cmd = b"\x08\x05\x2a" + bytes([len(sub)]) + sub
    newer = b"\x08\x06" + b"\x82\x01\x00"  # id 6 and an unknown request field 16
    frame = bytes([len(cmd)]) + cmd + bytes([len(newer)]) + newer
    assert PROTOBUF.decode_commands(frame) == [Command(5, "subscribe", {"channel": "c"}), Command(6, "?", {})]


# ------------------------------------------------------------------ bytes out
def test_exact_reply_bytes() -> None:
    """Replies, errors and the ping, byte for byte."""
    assert PROTOBUF.ping == b"\x00"  # an empty Reply
    assert PROTOBUF.reply(1, "publish", {}) == b"\x04\x08\x01\x42\x00"  # id 1, an empty PublishResult (8)
    assert PROTOBUF.reply(2, "presence_stats", {"num_clients": 3, "num_users": 2}) == b"\x08\x08\x02\x52\x04\x08\x03\x10\x02"
    assert PROTOBUF.error(3, errors.BadRequest()) == b"\x13\x08\x03\x12\x0f\x08\x6b\x12\x0bbad request"
    assert PROTOBUF.error(4, errors.InternalError()) == (
        b"\x1f\x08\x04\x12\x1b\x08\x64\x12\x15internal server error\x18\x01"
    )


def test_exact_push_bytes() -> None:
    """A publication push carries its data as the JSON bytes, then offset and info."""
    body = {"data": {"a": 1}, "offset": 5, "info": {"user": "u", "client": "c"}}
    pub = b'\x22\x07{"a":1}' + b"\x2a\x06\x0a\x01u\x12\x01c" + b"\x30\x05"  # data(4), info(5), offset(6)
    push = b"\x12\x02ch" + b"\x22" + bytes([len(pub)]) + pub  # channel(2), pub(4)
    reply = b"\x22" + bytes([len(push)]) + push  # Reply.push(4)
    assert PROTOBUF.push("ch", "pub", body) == bytes([len(reply)]) + reply
    assert PROTOBUF.disconnect_push(3501, "bad") == b"\x0c\x22\x0a\x5a\x08\x08\xad\x1b\x12\x03bad"
    assert PROTOBUF.connection_push("refresh", {}) == b"\x04\x22\x02\x62\x00"  # an empty Refresh still says refresh


def test_sdk_reads_every_reply_and_push() -> None:
    """centrifuge-python's protobuf decoder reads each reply and push Squall sends as the SDK expects."""
    pub = {"data": {"n": 1}, "offset": 9, "info": {"user": "u", "client": "c", "conn_info": {"name": "x"}},
           "tags": {"k": "v"}, "time": 1700000000000}
    info = {"user": "u", "client": "c"}
    frames = [
        PROTOBUF.reply(1, "connect", {"client": "cid", "version": "0.1", "ping": 25, "pong": True, "node": "n1",
                                      "expires": True, "ttl": 60,
                                      "subs": {"news": {"epoch": "e", "offset": 2, "recoverable": True,
                                                        "publications": [pub]}}}),
        PROTOBUF.reply(2, "subscribe", {"epoch": "e", "offset": 9, "recoverable": True, "positioned": True,
                                        "was_recovering": True, "recovered": True, "publications": [pub],
                                        "expires": True, "ttl": 30}),
        PROTOBUF.reply(3, "unsubscribe", {}),
        PROTOBUF.reply(4, "presence", {"presence": {"c": info}}),
        PROTOBUF.reply(5, "history", {"publications": [pub], "epoch": "e", "offset": 9}),
        PROTOBUF.reply(6, "ping", {}),
        PROTOBUF.reply(7, "rpc", {"data": {"sum": 3}}),
        PROTOBUF.reply(8, "refresh", {"client": "cid", "version": "0.1", "expires": True, "ttl": 60}),
        PROTOBUF.reply(9, "sub_refresh", {"expires": True, "ttl": 30}),
        PROTOBUF.error(10, errors.PermissionDenied()),
        PROTOBUF.push("chat", "pub", pub),
        PROTOBUF.push("chat", "join", {"info": info}),
        PROTOBUF.push("chat", "leave", {"info": info}),
        PROTOBUF.push("chat", "unsubscribe", {"code": 2000, "reason": "server unsubscribe"}),
        PROTOBUF.push("chat", "subscribe", {"recoverable": True, "epoch": "e", "offset": 4, "positioned": True}),
        PROTOBUF.push("chat", "message", {"data": "hello"}),
        PROTOBUF.connection_push("connect", {"client": "cid", "version": "0.1", "ping": 25, "pong": True}),
        PROTOBUF.connection_push("refresh", {"expires": True, "ttl": 5}),
        PROTOBUF.disconnect_push(3005, "connection expired"),
        PROTOBUF.ping,
    ]
    replies = SdkCodec.decode_replies(b"".join(frames))  # several messages in one frame
    sdk_pub = {"data": b64(b'{"n":1}'), "offset": "9", "info": {"user": "u", "client": "c", "conn_info": b64(b'{"name":"x"}')},
               "tags": {"k": "v"}, "time": "1700000000000"}  # MessageToDict: bytes as base64, 64-bit ints as strings
    assert replies == [
        {"id": 1, "connect": {"client": "cid", "version": "0.1", "expires": True, "ttl": 60, "ping": 25, "pong": True,
                              "node": "n1", "subs": {"news": {"recoverable": True, "epoch": "e", "offset": "2",
                                                               "publications": [sdk_pub]}}}},
        {"id": 2, "subscribe": {"expires": True, "ttl": 30, "recoverable": True, "epoch": "e", "publications": [sdk_pub],
                                "recovered": True, "offset": "9", "positioned": True, "was_recovering": True}},
        {"id": 3, "unsubscribe": {}},
        {"id": 4, "presence": {"presence": {"c": info}}},
        {"id": 5, "history": {"publications": [sdk_pub], "epoch": "e", "offset": "9"}},
        {"id": 6, "ping": {}},
        {"id": 7, "rpc": {"data": b64(b'{"sum":3}')}},
        {"id": 8, "refresh": {"client": "cid", "version": "0.1", "expires": True, "ttl": 60}},
        {"id": 9, "sub_refresh": {"expires": True, "ttl": 30}},
        {"id": 10, "error": {"code": 103, "message": "permission denied"}},
        {"push": {"channel": "chat", "pub": sdk_pub}},
        {"push": {"channel": "chat", "join": {"info": info}}},
        {"push": {"channel": "chat", "leave": {"info": info}}},
        {"push": {"channel": "chat", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}},
        {"push": {"channel": "chat", "subscribe": {"recoverable": True, "epoch": "e", "offset": "4", "positioned": True}}},
        {"push": {"channel": "chat", "message": {"data": b64(b'"hello"')}}},
        {"push": {"connect": {"client": "cid", "version": "0.1", "ping": 25, "pong": True}}},
        {"push": {"refresh": {"expires": True, "ttl": 5}}},
        {"push": {"disconnect": {"code": 3005, "reason": "connection expired"}}},
        {},
    ]


def test_round_trip() -> None:
    """decode_replies(encode(x)) gives x back, payloads as the bytes a protobuf client holds."""
    obj = {"id": 7, "history": {"publications": [{"data": [1, "x"], "offset": 3, "tags": {"a": "b"}}], "epoch": "e", "offset": 3}}
    assert PROTOBUF.decode_replies(PROTOBUF.encode(obj)) == [
        {"id": 7, "history": {"publications": [{"data": b'[1,"x"]', "offset": 3, "tags": {"a": "b"}}], "epoch": "e", "offset": 3}}
    ]
    binary = PROTOBUF.push("c", "pub", {"data": b"\x00\xff"})
    assert PROTOBUF.decode_replies(binary) == [{"push": {"channel": "c", "pub": {"data": b"\x00\xff"}}}]


def test_json_and_protobuf_clients_see_one_publication() -> None:
    """A JSON client's JSON reaches protobuf clients as its bytes; a protobuf client's JSON bytes reach JSON clients inline; other bytes as base64."""
    [from_json] = JSON.decode_commands(b'{"id":1,"publish":{"channel":"c","data":{"text":"hi"}}}')
    [got] = PROTOBUF.decode_replies(PROTOBUF.push("c", "pub", {"data": from_json.params["data"]}))
    assert got["push"]["pub"]["data"] == b'{"text":"hi"}'
    [from_pb, from_pb_binary] = PROTOBUF.decode_commands(sdk_frame(
        {"id": 1, "publish": {"channel": "c", "data": b64(b'{"text": "hi"}')}},
        {"id": 2, "publish": {"channel": "c", "data": b64(b"\x00\x01")}},
    ))
    assert JSON.push("c", "pub", {"data": from_pb.params["data"]}) == b'{"push":{"channel":"c","pub":{"data":{"text":"hi"}}}}'
    assert JSON.push("c", "pub", {"data": from_pb_binary.params["data"]}) == b'{"push":{"channel":"c","pub":{"data":"AAE="}}}'
    [binary] = PROTOBUF.decode_replies(PROTOBUF.push("c", "pub", {"data": from_pb_binary.params["data"]}))
    assert binary["push"]["pub"]["data"] == b"\x00\x01"


def test_push_bytes_are_shareable() -> None:
    """A push's bytes depend only on channel, kind and body: the hub may encode once per wire_key and reuse them."""
    body = {"data": {"a": [1, 2]}, "offset": 1}
    first = PROTOBUF.push("c", "pub", body)
    assert PROTOBUF.push("c", "pub", dict(body)) == first
    assert ProtobufCodec().push("c", "pub", body) == first
    assert body == {"data": {"a": [1, 2]}, "offset": 1}  # the shared body is not changed


# ------------------------------------------------------------------ hostile input
def cmd(raw: bytes) -> bytes:
    return varint(len(raw)) + raw


BAD_REQUEST = [
    ("truncated varint", b"\x80"),
    ("varint over 10 bytes", b"\xff" * 11),
    ("varint over 64 bits", b"\xff" * 9 + b"\x7f"),
    ("length past the frame", b"\x05\x08\x01"),
    ("length past the frame, not over the limit", varint(60000) + b"\x08\x01"),
    ("truncated field inside", cmd(b"\x22\x05\x0a\x03t")),
    ("bad field varint", cmd(b"\x08\xff\xff")),
    ("wrong wire type: id as fixed32", cmd(b"\x0d\x01\x00\x00\x00")),
    ("wrong wire type: connect as varint", cmd(b"\x08\x01\x20\x05")),
    ("wrong wire type nested: token as varint", cmd(b"\x08\x01\x22\x02\x08\x01")),
    ("wrong wire type deep: subs entry's recover as bytes", cmd(b"\x08\x01\x22\x09\x1a\x07\x0a\x01c\x12\x02\x1a\x00")),
    ("two methods", cmd(b"\x08\x01\x3a\x00\x5a\x00")),
    ("bad UTF-8 in a string", cmd(b"\x08\x01\x2a\x03\x0a\x01\xff")),
    ("end group without start", cmd(b"\x0c")),
    ("field number 0", cmd(b"\x00\x01")),
    ("duplicate id", cmd(b"\x08\x01\x5a\x00") * 2),
    ("empty frame", b""),
    ("too many commands", cmd(b"\x5a\x00") * (MAX_COMMANDS_PER_FRAME + 1)),
]


@pytest.mark.parametrize("frame", [f for _, f in BAD_REQUEST], ids=[n for n, _ in BAD_REQUEST])
def test_malformed_is_bad_request(frame: bytes) -> None:
    """Each malformed frame raises ProtocolError with disconnect 3501."""
    with pytest.raises(ProtocolError) as e:
        PROTOBUF.decode_commands(frame)
    assert e.value.disconnect == errors.BAD_REQUEST


@pytest.mark.parametrize("size", [65537, 2**31, 2**64 - 1])
def test_huge_length_is_message_too_big(size: int) -> None:
    """A declared length over max_message_size raises ProtocolError with 1009, before any allocation."""
    with pytest.raises(ProtocolError) as e:
        PROTOBUF.decode_commands(varint(size) + b"\x08\x01")
    assert e.value.disconnect == errors.MESSAGE_TOO_BIG
    with pytest.raises(ProtocolError) as e:
        ProtobufCodec(max_message_size=10).decode_commands(cmd(b"\x08\x01\x42\x09\x0a\x07chat:ab"))
    assert e.value.disconnect == errors.MESSAGE_TOO_BIG


def test_varint_helpers() -> None:
    """varint and read_varint agree at the byte-length boundaries."""
    for n in (0, 1, 127, 128, 300, 2**32 - 1, 2**63, 2**64 - 1):
        raw = varint(n)
        assert read_varint(raw + b"x", 0) == (n, len(raw))
    assert varint(300) == b"\xac\x02"
