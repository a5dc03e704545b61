"""centrifuge-js (unchanged, under Node) over its emulated transports, WebSocket disabled."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory, test_config  # noqa: F401
from tests.interop.test_centrifuge_js import centrifuge_js  # noqa: F401

KEY = "emulation-test-key-0123456789"


def api(sp: SquallProcess, method: str, params: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        f"{sp.url}/api/{method}", data=json.dumps(params).encode(), headers={"X-API-Key": KEY}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def wait_nodes(sp: SquallProcess, n: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(api(sp, "info", {})["result"]["nodes"]) >= n:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{sp.url} did not see {n} nodes")


def run_js(
    js: Path, transport: str, stream: SquallProcess, emulation: SquallProcess, channel: str, fmt: str = "json"
) -> dict[str, Any]:
    r = subprocess.run(
        ["node", str(js / "emulation.mjs"), transport, stream.url, emulation.url, emulation.url, KEY, channel, fmt],
        cwd=js, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr + stream.logs()[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def check(out: dict[str, Any], transport: str) -> None:
    assert out["errors"] == []
    assert out["transport"] == transport
    assert len(out["connected"]) == 2  # the first stream, then the one after the break
    assert [p["offset"] for p in out["publications"]] == [1, 2, 3, 4, 5]
    assert [p["data"] for p in out["publications"]] == [{"n": i} for i in range(5)]
    assert out["presence"] == 1
    assert out["history"] == [1, 2, 3]
    assert out["subscribed"][0] == {"wasRecovering": False, "recovered": False}
    assert out["subscribed"][1] == {"wasRecovering": True, "recovered": True}


@pytest.mark.parametrize("transport", ["http_stream", "sse"])
def test_emulation_one_node(centrifuge_js: Path, squall_factory: Callable[..., SquallProcess], transport: str) -> None:
    """centrifuge-js with only http_stream or sse: publish, presence, history, recovery after a broken stream."""
    sp = squall_factory(test_config(api_key=KEY))
    out = run_js(centrifuge_js, transport, sp, sp, "chat:emu")
    check(out, transport)
    assert out["codec"] == "json"


def test_emulation_protobuf_build(centrifuge_js: Path, squall_factory: Callable[..., SquallProcess]) -> None:
    """centrifuge-js's protobuf build over http_stream (protobuf stream and EmulationRequest): the same session."""
    sp = squall_factory(test_config(api_key=KEY))
    out = run_js(centrifuge_js, "http_stream", sp, sp, "chat:emupb", "protobuf")
    check(out, "http_stream")
    assert out["codec"] == "protobuf"


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["http_stream", "sse"])
def test_emulation_commands_through_another_node(
    centrifuge_js: Path, squall_factory: Callable[..., SquallProcess], redis_server: RedisServer, transport: str
) -> None:
    """The stream on node A, every command POSTed to node B (no sticky routing): all of it works over Redis."""
    cfg = test_config(api_key=KEY, engine="redis", redis_urls=[redis_server.url], presence_ttl=3)
    a, b = squall_factory(cfg), squall_factory(cfg)
    wait_nodes(b, 2)
    out = run_js(centrifuge_js, transport, a, b, "chat:emu2")
    check(out, transport)
    assert "emulation request for an unknown session" not in a.logs()
