"""Malformed or out-of-order input gets a documented error or disconnect code."""

from __future__ import annotations

import logging

import msgpack
import pytest

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected


@pytest.fixture
def squall_config() -> dict:
    return test_config(max_message_size=4096)


async def assert_bystander_unaffected(ws_url: str) -> None:
    c = await connected(ws_url)
    await c.call("subscribe", {"channel": "live:ok"})
    await c.call("publish", {"channel": "live:ok", "data": "still fine"})
    push = await c.next_push()
    assert push["push"]["pub"]["data"] == "still fine"
    c.close()


async def closes_with(c: RawClient, code: int) -> None:
    got, _ = await c.wait_closed()
    assert got == code


@pytest.mark.gen_test
async def test_malformed_json_disconnects_bad_request(ws_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Malformed JSON ends the connection with 3501, logged once."""
    caplog.set_level(logging.INFO, logger="squall")
    bystander = await connected(ws_url)
    c = await RawClient.open(ws_url)
    await c.send_raw(b'{"id": 1, "connect": {')
    await closes_with(c, 3501)
    assert len([r for r in caplog.records if "bad frame" in r.getMessage()]) == 1
    await assert_bystander_unaffected(ws_url)
    r = await bystander.call("presence_stats", {"channel": "chat:x"})
    assert "presence_stats" in r


@pytest.mark.gen_test
async def test_malformed_msgpack_disconnects_bad_request(ws_url: str) -> None:
    """Truncated msgpack on a msgpack connection ends it with 3501."""
    c = await RawClient.open(ws_url, fmt="msgpack")
    await c.send_raw(b"\x82\xa2id\x01\xa7connect", binary=True)
    await closes_with(c, 3501)
    await assert_bystander_unaffected(ws_url)


@pytest.mark.gen_test
async def test_unknown_command_gets_method_not_found(ws_url: str) -> None:
    """A command with an id but no known method is answered with error 104."""
    c = await connected(ws_url)
    await c.send({"id": 7, "fly": {}})
    r = await c.read()
    assert r == {"id": 7, "error": {"code": 104, "message": "method not found"}}


@pytest.mark.gen_test
async def test_command_before_connect_disconnects(ws_url: str) -> None:
    """Anything but connect as the first command ends the connection with 3501."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "subscribe": {"channel": "chat:a"}})
    await closes_with(c, 3501)


@pytest.mark.gen_test
async def test_binary_frame_on_json_connection(ws_url: str) -> None:
    """A binary frame on a JSON connection ends it with 3506 (inappropriate protocol)."""
    c = await connected(ws_url)
    await c.send_raw(b'{"id":2,"ping":{}}', binary=True)
    await closes_with(c, 3506)
    await assert_bystander_unaffected(ws_url)


@pytest.mark.gen_test
async def test_frame_over_size_limit_closes_1009(ws_url: str) -> None:
    """A frame over max_message_size is closed by the WebSocket layer with 1009."""
    c = await connected(ws_url)
    await c.send({"id": 2, "publish": {"channel": "live:a", "data": "x" * 10000}})
    await closes_with(c, 1009)
    await assert_bystander_unaffected(ws_url)


@pytest.mark.gen_test
async def test_duplicate_command_id_disconnects(ws_url: str) -> None:
    """Two commands with the same id in one frame end the connection with 3501."""
    c = await connected(ws_url)
    frame = b'{"id":5,"subscribe":{"channel":"chat:d"}}\n{"id":5,"subscribe":{"channel":"chat:e"}}'
    await c.send_raw(frame)
    await closes_with(c, 3501)
    await assert_bystander_unaffected(ws_url)


@pytest.mark.gen_test
async def test_unknown_namespace_is_102(ws_url: str) -> None:
    """Subscribing to a channel of an unknown namespace is error 102."""
    c = await connected(ws_url)
    r = await c.call("subscribe", {"channel": "nope:room"})
    assert r["error"]["code"] == 102


@pytest.mark.gen_test
async def test_wrong_param_types_are_bad_request(ws_url: str) -> None:
    """Wrong parameter types give error 107, the connection stays."""
    c = await connected(ws_url)
    r = await c.call("subscribe", {"channel": 5})
    assert r["error"]["code"] == 107
    r = await c.call("history", {"channel": "chat:a", "limit": "ten"})
    assert r["error"]["code"] in (103, 107)
    r = await c.call("subscribe", {"channel": "chat:a", "recover": True, "offset": -1})
    assert r["error"]["code"] == 107
    assert "ping" in await c.call("ping")


@pytest.mark.parametrize("cid", [b"-1", b"1.5", b"4294967296"], ids=["negative", "fractional", "2^32"])
@pytest.mark.gen_test
async def test_id_not_uint32_disconnects(ws_url: str, cid: bytes) -> None:
    """A negative, fractional or huge id is a protocol error (3501)."""
    c = await connected(ws_url)
    await c.send_raw(b'{"id":' + cid + b',"ping":{}}')
    await closes_with(c, 3501)


@pytest.mark.gen_test
async def test_msgpack_form_roundtrip(ws_url: str) -> None:
    """The msgpack form carries the same messages in binary frames."""
    c = await connected(ws_url, fmt="msgpack")
    r = await c.call("subscribe", {"channel": "chat:m"})
    assert r["subscribe"]["epoch"]
    await c.call("publish", {"channel": "chat:m", "data": {"v": [1, 2, 3]}})
    push = await c.next_push()
    assert push["push"]["pub"]["data"] == {"v": [1, 2, 3]}
    raw = msgpack.packb({"id": 99, "presence_stats": {"channel": "chat:m"}})
    await c.send_raw(raw, binary=True)
    r = await c.read()
    assert r == {"id": 99, "presence_stats": {"num_clients": 1, "num_users": 1}}


@pytest.mark.gen_test
async def test_json_and_msgpack_subscribers_both_receive(ws_url: str) -> None:
    """One publication reaches JSON and msgpack subscribers alike."""
    j = await connected(ws_url)
    m = await connected(ws_url, fmt="msgpack")
    for c in (j, m):
        await c.call("subscribe", {"channel": "live:mix"})
    await j.call("publish", {"channel": "live:mix", "data": "both"})
    assert (await j.next_push())["push"]["pub"]["data"] == "both"
    assert (await m.next_push())["push"]["pub"]["data"] == "both"
