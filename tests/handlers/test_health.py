"""/health and /ready with the memory engine: both 200, with the documented bodies."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import AsyncHTTPClient


async def get(port: int, path: str) -> tuple[int, dict]:
    r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}{path}", raise_error=False)
    return r.code, json.loads(r.body)


@pytest.mark.gen_test
async def test_health_answers_with_node_and_backend_state(http_server, http_port, squall_app):
    """/health is 200 and names the node; backends are reported, not judged."""
    code, body = await get(http_port, "/health")
    assert code == 200
    assert body["status"] == "ok"
    assert body["node"] == squall_app.ctx.hub.node_id
    assert body["broker"] == "up" and body["presence"] == "up"


@pytest.mark.gen_test
async def test_ready_is_200_with_memory_backends(http_server, http_port):
    """The memory engine is always reachable: /ready is 200 and not cached."""
    r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/ready")
    assert r.code == 200
    assert json.loads(r.body) == {"status": "ready"}
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.gen_test
async def test_ready_is_503_while_shutting_down(http_server, http_port, squall_app):
    """Once shutdown stops admitting clients, /ready tells load balancers to drain."""
    squall_app.ctx.limiter.stop_admitting()
    code, body = await get(http_port, "/ready")
    assert code == 503 and "shutting down" in body["reasons"]
    code, _ = await get(http_port, "/health")
    assert code == 200
