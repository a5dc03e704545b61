"""/ready follows a real Redis outage: 503 naming the broker while down, 200 once back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import test_config

pytestmark = pytest.mark.redis


@pytest.fixture
def squall_config(redis_server: RedisServer) -> dict[str, Any]:  # noqa: F811
    return test_config(engine="redis", redis_urls=[redis_server.url], redis_prefix="readytest")


async def ready(port: int) -> tuple[int, dict[str, Any]]:
    r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/ready", raise_error=False)
    return r.code, json.loads(r.body)


async def wait_ready(port: int, want: int, timeout: float = 20.0) -> tuple[int, dict[str, Any]]:
    code, body = await ready(port)
    for _ in range(int(timeout / 0.1)):
        if code == want:
            break
        await asyncio.sleep(0.1)
        code, body = await ready(port)
    return code, body


@pytest.mark.gen_test(timeout=60)
async def test_ready_turns_503_when_redis_stops_and_200_when_it_returns(http_server, http_port, redis_server):  # noqa: F811
    """Killing redis-server makes /ready 503 (broker, presence); restarting it makes it 200 again."""
    code, body = await wait_ready(http_port, 200)
    assert (code, body) == (200, {"status": "ready"})
    redis_server.stop()
    code, body = await wait_ready(http_port, 503)
    assert code == 503
    assert body["status"] == "unavailable"
    assert any(r.startswith("broker unreachable") for r in body["reasons"]), body
    health = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/health")
    assert health.code == 200 and json.loads(health.body)["broker"] == "down"  # liveness unaffected
    redis_server.start()
    code, body = await wait_ready(http_port, 200)
    assert (code, body) == (200, {"status": "ready"})
