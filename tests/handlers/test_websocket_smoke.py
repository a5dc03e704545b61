"""Smoke tests of the WebSocket transport through an in-process server."""

import pytest

from tests.helpers.wsclient import connected


@pytest.mark.gen_test
async def test_connect_subscribe_publish_roundtrip(ws_url):
    """A publication reaches the subscriber with offset 1 in a history channel."""
    c = await connected(ws_url)
    r = await c.call("subscribe", {"channel": "chat:a"})
    assert r["subscribe"]["offset"] == 0 and r["subscribe"]["epoch"]
    r = await c.call("publish", {"channel": "chat:a", "data": {"x": 1}})
    assert r == {"id": 3, "publish": {}}
    push = await c.next_push()
    assert push["push"]["channel"] == "chat:a"
    assert push["push"]["pub"]["data"] == {"x": 1}
    assert push["push"]["pub"]["offset"] == 1
