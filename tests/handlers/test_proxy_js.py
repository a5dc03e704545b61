"""The HTTP proxy driven by centrifuge-js under Node (in-process Squall, a real backend)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.app import Squall
from tests.handlers.test_proxy import proxy_config, squall_app, squall_hooks, squall_settings  # noqa: F401
from tests.helpers.backend_app import Answer, Backend, backend  # noqa: F401

JS = Path(__file__).resolve().parents[1] / "interop" / "js"


@pytest.fixture
def squall_config(backend: Backend) -> dict[str, Any]:
    return proxy_config(backend, proxy_emulated_headers=["X-Emulated"])


@pytest.mark.gen_test(timeout=60)
async def test_centrifuge_js_connect_subscribe_publish_rpc_through_proxy(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """centrifuge-js: connect (data, name, version, emulated headers from their own allow-list), subscribe, a rewritten publish, a refused one, rpc."""
    if shutil.which("node") is None or not (JS / "node_modules" / "centrifuge").is_dir():
        pytest.skip("node or centrifuge-js (tests/interop/js) not installed")
    backend.answer("/connect", lambda b: Answer({"result": {"user": "js-user", "data": {"hello": b["name"]}}}))
    backend.answer("/subscribe", lambda b: Answer({"result": {"data": {"granted": b["channel"]}}}))
    backend.answer("/publish", lambda b: Answer({"error": {"code": 4003, "message": "refused"}}) if "refuse" in b["data"]["text"]
                   else Answer({"result": {"data": {"text": b["data"]["text"] + "!", "by": b["user"]}}}))
    backend.answer("/rpc", lambda b: Answer({"result": {"data": {"echo": b["data"], "method": b["method"]}}}))
    proc = await asyncio.create_subprocess_exec(
        "node", str(JS / "proxy_client.mjs"), ws_url, "px:js", cwd=str(JS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stdout.decode() + stderr.decode()
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["connectData"] == {"hello": "js-app"}
    assert out["subscribeData"] == {"granted": "px:js"}
    assert out["publications"] == [{"text": "hi!", "by": "js-user"}]
    assert out["refused"] == 4003
    assert out["rpc"] == {"echo": {"v": 1}, "method": "echo"}
    [connect] = backend.got("/connect")
    assert connect.body["data"] == {"from": "js"} and connect.body["version"] == "9.9.9"
    assert connect.body["transport"] == "websocket" and connect.body["protocol"] == "json"
    assert connect.headers.get("X-Emulated") == "yes" and "X-Not-Allowed" not in connect.headers
    # Authorization is in proxy_http_headers (the transport's allow-list) but not in
    # proxy_emulated_headers: a client-sent copy is not forwarded (GHSA-9468-v6mj-fppw)
    assert "Authorization" not in connect.headers
    [sub] = backend.got("/subscribe")
    assert sub.body["data"] == {"want": "px:js"} and sub.body["user"] == "js-user"
