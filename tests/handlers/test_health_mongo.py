"""/ready follows a real MongoDB-wire outage: 503 naming the history store, 200 once back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.helpers.mongo_server import SecantusFactory, SecantusServer, secantus_factory  # noqa: F401
from tests.helpers.squall_process import test_config

pytestmark = pytest.mark.mongo


@pytest.fixture
def mongo(secantus_factory: SecantusFactory) -> SecantusServer:  # noqa: F811
    return secantus_factory()


@pytest.fixture
def squall_config(mongo: SecantusServer) -> dict[str, Any]:
    return test_config(history="mongo", mongo_url=mongo.url, mongo_database="readytest")


async def wait_ready(port: int, want: int, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    async def ready() -> tuple[int, dict[str, Any]]:
        r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/ready", raise_error=False)
        return r.code, json.loads(r.body)

    code, body = await ready()
    for _ in range(int(timeout / 0.1)):
        if code == want:
            break
        await asyncio.sleep(0.1)
        code, body = await ready()
    return code, body


@pytest.mark.gen_test(timeout=90)
async def test_ready_turns_503_when_mongo_stops_and_200_when_it_returns(http_server, http_port, mongo):
    """Stopping the store makes /ready 503 with the history reason; restarting makes it 200."""
    code, body = await wait_ready(http_port, 200)
    assert (code, body) == (200, {"status": "ready"})
    mongo.stop()
    code, body = await wait_ready(http_port, 503)
    assert code == 503
    assert any(r.startswith("history store unreachable") for r in body["reasons"]), body
    mongo.start()
    code, body = await wait_ready(http_port, 200)
    assert (code, body) == (200, {"status": "ready"})
