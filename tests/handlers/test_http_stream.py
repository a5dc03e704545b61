"""Unidirectional HTTP streaming at /connection/uni_http_stream (NDJSON)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.handlers.test_sse import UniStream, wait_clients

PATH = "/connection/uni_http_stream"


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


async def _open(port: int, request: dict[str, Any]) -> UniStream:
    return await UniStream.open(port, PATH, method="POST", body=orjson.dumps(request))


@pytest.mark.gen_test
async def test_connect_then_newline_delimited_pushes(http_server, http_port, hub):
    """The stream is NDJSON: the connect message, then one push per line."""
    s = await _open(http_port, {"subs": {"chat:h": {}}})
    assert s.status == 200 and s.headers["content-type"] == "application/x-ndjson"
    assert s.headers["transfer-encoding"] == "chunked"
    connect = (await s.message())["connect"]
    assert connect["subs"]["chat:h"]["offset"] == 0
    for i in range(3):
        await hub.publish("chat:h", {"i": i})
    got = [await s.message() for _ in range(3)]
    assert [(m["channel"], m["pub"]["offset"], m["pub"]["data"]["i"]) for m in got] == [
        ("chat:h", 1, 0), ("chat:h", 2, 1), ("chat:h", 3, 2)
    ]
    s.close()


@pytest.mark.gen_test
async def test_recovery_with_subs_offsets_after_a_drop(http_server, http_port, hub):
    """Reconnecting with the last offset and epoch in subs returns exactly the missed publications."""
    s = await _open(http_port, {"subs": {"chat:rec": {}}})
    epoch = (await s.message())["connect"]["subs"]["chat:rec"]["epoch"]
    await hub.publish("chat:rec", "a")
    await hub.publish("chat:rec", "b")
    last = [await s.message() for _ in range(2)][-1]["pub"]["offset"]
    s.close()
    await wait_clients(hub, 0)
    for x in ("c", "d", "e"):
        await hub.publish("chat:rec", x)
    s2 = await _open(http_port, {"subs": {"chat:rec": {"recover": True, "offset": last, "epoch": epoch}}})
    sub = (await s2.message())["connect"]["subs"]["chat:rec"]
    assert sub["recovered"] is True
    assert [(p["offset"], p["data"]) for p in sub["publications"]] == [(3, "c"), (4, "d"), (5, "e")]
    await hub.publish("chat:rec", "f")
    pub = (await s2.message())["pub"]
    assert (pub["data"], pub["offset"]) == ("f", 6)
    s2.close()


@pytest.mark.gen_test
async def test_get_is_not_allowed_and_bad_body_is_400(http_server, http_port):
    """Only POST opens a stream; a body that is not a JSON object is refused with 400."""
    s = await UniStream.open(http_port, PATH)
    assert s.status == 405
    s = await UniStream.open(http_port, PATH, method="POST", body=b"[1]")
    assert s.status == 400
    s = await UniStream.open(http_port, PATH, method="POST", body=b"{not json")
    assert s.status == 400


@pytest.mark.gen_test
async def test_empty_body_connects_anonymously(http_server, http_port, hub):
    """An empty body is an empty connect request (anonymous, no subscriptions)."""
    s = await UniStream.open(http_port, PATH, method="POST")
    connect = (await s.message())["connect"]
    assert connect["client"] and "subs" not in connect
    await wait_clients(hub, 1)
    s.close()
    await wait_clients(hub, 0)
