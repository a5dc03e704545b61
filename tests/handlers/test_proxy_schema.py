"""Centrifugo's proxy JSON, bytes in / bytes out (handlers/proxy_schema.py)."""

from __future__ import annotations

import base64

import orjson
import pytest

from channels.errors import Disconnect
from handlers import proxy_schema as s

BASE = s.ClientFields("c1", "websocket", "json")
BIN = s.ClientFields("c1", "websocket", "protobuf", s.ENCODING_BINARY)


def test_connect_request_bytes() -> None:
    """connect: the four base fields, data inline, name/version/channels."""
    raw = s.connect_request(BASE, {"a": 1}, "app", "1.0", ["chat:x"])
    assert orjson.loads(raw) == {
        "client": "c1", "transport": "websocket", "protocol": "json", "encoding": "json",
        "data": {"a": 1}, "name": "app", "version": "1.0", "channels": ["chat:x"],
    }


def test_binary_encoding_and_non_json_bytes_go_as_b64data() -> None:
    """Binary encoding sends every payload as b64data; bytes that are not JSON always do."""
    assert orjson.loads(s.publish_request(BIN, "u", None, "ch", {"a": 1}))["b64data"] == base64.b64encode(b'{"a":1}').decode()
    body = orjson.loads(s.rpc_request(BASE, "u", {"m": 1}, "m1", b"\xff\x00"))
    assert body["b64data"] == base64.b64encode(b"\xff\x00").decode() and "data" not in body
    assert body["meta"] == {"m": 1} and body["method"] == "m1" and body["user"] == "u"


def test_channel_requests() -> None:
    """subscribe (token, data), sub_refresh and refresh bodies."""
    assert orjson.loads(s.subscribe_request(BASE, "u", None, "ch", "tok", None)) == {
        **BASE.to_dict(), "user": "u", "channel": "ch", "token": "tok"}
    assert orjson.loads(s.sub_refresh_request(BASE, "u", None, "ch")) == {**BASE.to_dict(), "user": "u", "channel": "ch"}
    assert orjson.loads(s.refresh_request(BASE, "u", {"k": 1})) == {**BASE.to_dict(), "user": "u", "meta": {"k": 1}}


def test_connect_result_fields() -> None:
    """user, expire_at, info, b64data (JSON bytes decoded), channels, subs with override, meta."""
    r = s.parse_response(orjson.dumps({"result": {
        "user": "5", "expire_at": 100, "info": {"i": 1}, "b64data": base64.b64encode(b'{"d":2}').decode(),
        "channels": ["a"], "subs": {"b": {"b64info": base64.b64encode(b"\x01").decode(), "override": {"presence": {"value": True}}}},
        "meta": {"m": 3},
    }}))
    assert r is not None
    c = s.ConnectResult.parse(r)
    assert (c.user, c.expire_at, c.info, c.data, c.channels, c.meta) == ("5", 100, {"i": 1}, {"d": 2}, ("a",), {"m": 3})
    assert c.subs["b"].info == b"\x01" and c.subs["b"].override.changes() == {"presence": True}


def test_publish_and_refresh_results() -> None:
    """publish: data replaces (even a falsy one), none keeps; refresh: expired / expire_at."""
    assert s.PublishResult.parse({"data": 0}).replaced
    assert not s.PublishResult.parse({}).replaced and not s.PublishResult.parse(None).replaced
    assert s.RefreshResult.parse({"expired": True}).expired
    assert s.RefreshResult.parse({"expire_at": 9}).expire_at == 9
    assert s.rpc_data({"data": [1]}) == [1] and s.rpc_data(None) is None


def test_error_and_disconnect_raise() -> None:
    """error -> BackendError with code/message/temporary; disconnect -> Disconnect with code/reason."""
    with pytest.raises(s.BackendError) as e:
        s.parse_response(b'{"error": {"code": 1001, "message": "nope", "temporary": true}}')
    assert (e.value.code, e.value.message, e.value.temporary) == (1001, "nope", True)
    with pytest.raises(Disconnect) as d:
        s.parse_response(b'{"disconnect": {"code": 4500, "reason": "bye"}}')
    assert (d.value.code, d.value.reason) == (4500, "bye")
    assert s.parse_response(b"{}") is None


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'"x"', b'{"result": []}', b'{"error": {"code": 0}}', b'{"error": {"code": "1"}}',
    b'{"error": {"code": 1, "message": 5}}', b'{"disconnect": {"reason": "x"}}', b'{"disconnect": 1}',
])
def test_malformed_responses(raw: bytes) -> None:
    """Anything but Centrifugo's response shape is MalformedResponse."""
    with pytest.raises(s.MalformedResponse):
        s.parse_response(raw)


@pytest.mark.parametrize("result", [
    {"user": 1}, {"expire_at": -1}, {"expire_at": True}, {"channels": "a"}, {"channels": [1]}, {"subs": ["a"]},
    {"b64data": "***"}, {"subs": {"a": {"override": {"presence": True}}}},
])
def test_malformed_connect_results(result: dict) -> None:
    """Wrong types in a connect result are MalformedResponse, not a crash."""
    with pytest.raises(s.MalformedResponse):
        s.ConnectResult.parse(result)
