"""Backend metrics with the real Redis engine and MongoDB history: broker publish
latency, pub/sub lag, history write batches and their sizes."""

from __future__ import annotations

from typing import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from tests.helpers import squall_process
from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.wsclient import connected

pytestmark = [pytest.mark.redis, pytest.mark.mongo]


async def scrape(url: str) -> dict[str, float]:
    r = await AsyncHTTPClient().fetch(url + "/metrics")
    return {s.name: s.value for fam in text_string_to_metric_families(r.body.decode()) for s in fam.samples if not s.labels}


@pytest.mark.gen_test(timeout=60)
async def test_backend_counters_follow_publishes(
    redis_factory: Callable[[], RedisServer],
    secantus_factory: SecantusFactory,
    squall_factory: Callable[..., SquallProcess],
) -> None:
    """N publishes: N broker publishes, N history items, N lag samples, positive times."""
    redis, mongo = redis_factory(), secantus_factory()
    sp = squall_factory(
        squall_process.test_config(engine="redis", redis_urls=[redis.url], history="mongo", mongo_url=mongo.url)
    )
    c = await connected(sp.ws_url)
    await c.call("subscribe", {"channel": "chat:m"})
    before = await scrape(sp.url)
    for i in range(7):
        assert (await c.call("publish", {"channel": "chat:m", "data": i})).get("publish") == {}
    for _ in range(7):
        await c.next_push()
    after = await scrape(sp.url)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved("squall_broker_publishes_total") == 7
    assert moved("squall_history_batch_items_total") == 7
    assert 1 <= moved("squall_history_batches_total") <= 7
    assert moved("squall_broker_lag_messages_total") == 7
    assert moved("squall_broker_publish_seconds_total") > 0
    assert moved("squall_history_write_seconds_total") > 0
    assert moved("squall_broker_lag_seconds_total") >= 0
