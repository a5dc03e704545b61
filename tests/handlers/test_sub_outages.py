"""A command refused for want of a subscription that failed in a Redis outage: 100 with the cause, not 103."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.sub_outages import SubscribeOutages
from server.app import Squall
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server, wait_until  # noqa: F401
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected

MEMBERS_ONLY = {
    "presence": True,
    "history_size": 10,
    "history_ttl": 60,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_subscriber": True,
    "allow_publish_for_anonymous": True,
    "allow_history_for_subscriber": True,
    "allow_history_for_anonymous": True,
}
READ_ONLY = {k: v for k, v in MEMBERS_ONLY.items() if "publish" not in k}  # nobody publishes from a client


@pytest.fixture
def squall_config(redis_server: RedisServer) -> dict[str, Any]:  # noqa: F811
    return test_config(
        engine="redis", redis_urls=[redis_server.url], redis_prefix="suboutage",
        namespaces=[{"name": "room", **MEMBERS_ONLY}, {"name": "feed", **READ_ONLY}],
    )


def error(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, reply
    err: dict[str, Any] = reply["error"]
    return err


@pytest.mark.redis
@pytest.mark.gen_test(timeout=60)
async def test_publish_after_subscribe_failed_in_outage_names_the_outage(
    ws_url: str, squall_app: Squall, redis_server: RedisServer  # noqa: F811
) -> None:
    """Redis down: publish/history where the subscribe failed answer its 100 cause; forbidden or untried stay 103."""
    broker = squall_app.ctx.hub.broker
    c = await connected(ws_url)
    redis_server.stop()
    assert await wait_until(lambda: not broker.healthy(), timeout=20)

    refused = error(await c.call("subscribe", {"channel": "room:a"}))
    assert refused["code"] == 100 and refused.get("temporary") is True
    assert "redis" in refused["message"]
    got = error(await c.call("publish", {"channel": "room:a", "data": "hi"}))
    assert got == refused  # the outage and its cause, not "permission denied"
    assert error(await c.call("history", {"channel": "room:a", "limit": 1}))["code"] == 100

    assert error(await c.call("subscribe", {"channel": "feed:a"}))["code"] == 100
    assert error(await c.call("publish", {"channel": "feed:a", "data": "hi"}))["code"] == 103  # forbidden anyway
    assert error(await c.call("publish", {"channel": "room:never", "data": "hi"}))["code"] == 103  # never tried

    redis_server.start()
    assert await wait_until(broker.healthy, timeout=30)
    # up again but still not subscribed: the refusal is the true one again
    assert error(await c.call("publish", {"channel": "room:a", "data": "hi"}))["code"] == 103
    # The first try works: pooled connections killed with the old Redis are
    # replaced before reuse, not used for one failed call (channels/redis_shards.py).
    reply = await c.call("subscribe", {"channel": "room:a"})
    assert "subscribe" in reply, reply
    assert await c.call("publish", {"channel": "room:a", "data": "hi"}) == {"id": c.next_id, "publish": {}}
    c.close()


@pytest.mark.redis
@pytest.mark.gen_test(timeout=60)
async def test_unsubscribe_forgets_the_outage(ws_url: str, squall_app: Squall, redis_server: RedisServer) -> None:  # noqa: F811
    """After the client unsubscribes (gives up on the channel) its publish there is plain 103 again."""
    broker = squall_app.ctx.hub.broker
    c: RawClient = await connected(ws_url)
    redis_server.stop()
    assert await wait_until(lambda: not broker.healthy(), timeout=20)
    assert error(await c.call("subscribe", {"channel": "room:b"}))["code"] == 100
    assert error(await c.call("publish", {"channel": "room:b", "data": 1}))["code"] == 100
    await c.call("unsubscribe", {"channel": "room:b"})
    assert error(await c.call("publish", {"channel": "room:b", "data": 1}))["code"] == 103
    c.close()


def test_outages_kept_are_bounded_oldest_first() -> None:
    """At most ``limit`` channels are remembered; the oldest goes first, and a repeat counts as new."""
    o = SubscribeOutages(2)
    o.remember("a", "down a")
    o.remember("b", "down b")
    o.remember("a", "down a again")
    o.remember("c", "down c")
    assert (o.cause("a"), o.cause("b"), o.cause("c")) == ("down a again", None, "down c")
    o.forget("a")
    assert o.cause("a") is None
