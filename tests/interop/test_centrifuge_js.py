"""The official centrifuge-js SDK (from npm, under Node) against Squall, unchanged: its JSON and its protobuf build."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from handlers.auth import make_token
from server.app import Squall
from tests.helpers.squall_process import SquallProcess, squall_factory, test_config  # noqa: F401
from tests.helpers.waiting import until
from tests.interop.test_centrifuge_python import SECRET

JS = Path(__file__).with_name("js")


@pytest.fixture(scope="module")
def centrifuge_js() -> Path:
    """centrifuge-js and ws installed from npm into tests/interop/js (once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (JS / "node_modules" / "centrifuge").is_dir():
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS, capture_output=True, text=True, timeout=300,
        )
        if r.returncode != 0:
            pytest.fail(f"npm install failed: {r.stderr[-2000:]}")
    return JS


def test_centrifuge_js_publish_subscribe_presence_history(centrifuge_js: Path, squall_factory) -> None:
    """centrifuge-js connects, publishes, receives in order, reads presence and history."""
    sp: SquallProcess = squall_factory(test_config())
    r = subprocess.run(
        ["node", str(centrifuge_js / "client.mjs"), sp.ws_url, "chat:js"],
        cwd=centrifuge_js, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["connected"] and out["errors"] == []
    assert [p["offset"] for p in out["publications"]] == [1, 2, 3]
    assert [p["data"] for p in out["publications"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert out["presence"] == 1
    assert out["history"] == [1, 2, 3]


class Scenario:
    """tests/interop/js/scenario.mjs under Node, on this test's loop: its events, read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    async def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (seen or still to come) for which ``pred`` holds; fails on an 'error' event."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                assert ev["event"] != "error", self.events
                if pred(ev):
                    return ev
            seen = len(self.events)
            assert self.proc.stdout is not None
            line = await asyncio.wait_for(self.proc.stdout.readline(), max(0.01, end - loop.time()))
            assert line, f"node exited: {self.events}"
            self.events.append(json.loads(line))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    async def finish(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"done\n")
        try:
            await self.wait(lambda e: e["event"] == "bye", timeout=5)
            await asyncio.wait_for(self.proc.wait(), 5)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()  # this test's own child, by its handle
                await self.proc.wait()


@pytest.fixture
def squall_config() -> dict[str, Any]:
    """The permissive config, a token key and the interop hooks (an ``echo`` RPC), for the in-process server."""
    return test_config(token_hmac_secret_key=SECRET, hooks="tests.interop.hooks:make")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_centrifuge_js_full(centrifuge_js: Path, ws_url: str, squall_app: Squall, fmt: str) -> None:
    """centrifuge-js (its protobuf build in protobuf mode): token, publish, presence, stats, history pages, RPC,
    refresh, recovery after an abrupt drop, server-side subscriptions (token and server API)."""
    hub = squall_app.ctx.hub
    first = make_token(SECRET, "jsuser", info={"name": "JS"}, channels=["chat:personal"], extra={"exp": int(time.time()) + 2})
    refresh_exp = int(time.time()) + 120
    refreshed = make_token(SECRET, "jsuser", info={"name": "JS"}, channels=["chat:personal"], extra={"exp": refresh_exp})
    proc = await asyncio.create_subprocess_exec(
        "node", str(centrifuge_js / "scenario.mjs"), ws_url, fmt, first, refreshed,
        cwd=centrifuge_js, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    sc = Scenario(proc)
    try:
        await sc.wait(lambda e: e["event"] == "connected")
        [sess] = hub.clients()
        assert sess.wire.codec.name == fmt and sess.user == "jsuser"
        # publish, presence, stats, history pages, RPC
        report = await sc.wait(lambda e: e["event"] == "report")
        assert [(p["offset"], p["data"]) for p in sc.named("pub")] == [(1, {"n": 0}), (2, {"n": 1}), (3, {"n": 2})]
        assert report["presence"] == [{"user": "jsuser", "connInfo": {"name": "JS"}}]
        assert report["stats"] == {"clients": 1, "users": 1}
        assert report["pages"] == [[1, 2], [3]] and report["pageData"] == [{"n": 0}, {"n": 1}]
        assert report["back"] == [3, 2] and report["top"] == 3
        assert report["rpc"] == {"echo": {"q": 1}, "user": "jsuser"}
        # server-side subscription from the token
        await sc.wait(lambda e: e["event"] == "server_subscribed" and e["channel"] == "chat:personal")
        await hub.publish("chat:personal", {"to": "js"})
        await sc.wait(lambda e: e["event"] == "server_pub" and e["channel"] == "chat:personal")
        # refresh: the 2 s token is replaced through getToken + the refresh command, on the same connection
        await sc.wait(lambda e: e["event"] == "get_token", timeout=10)
        await until(lambda: sess.expire_at == refresh_exp, timeout=10)
        assert not sess.closed and sc.named("disconnected") == []
        # recovery after an abrupt drop (no close frame)
        sess.wire._stream.close()  # type: ignore[attr-defined]
        await until(lambda: sess.closed)
        for i in range(5):
            await hub.publish("chat:js", {"missed": i})
        again = await sc.wait(lambda e: e["event"] == "subscribed" and e["wasRecovering"], timeout=15)
        assert again["recovered"], sc.events
        await sc.wait(lambda e: e["event"] == "pub" and e["offset"] == 8)
        assert [p["offset"] for p in sc.named("pub")] == list(range(1, 9))
        assert [p["data"] for p in sc.named("pub")][3:] == [{"missed": i} for i in range(5)]
        # a server API subscription on the new connection
        [sess2] = hub.clients()
        assert sess2 is not sess and sess2.wire.codec.name == fmt
        await sess2.server_side_subscribe("chat:api")
        await sc.wait(lambda e: e["event"] == "server_subscribed" and e["channel"] == "chat:api")
        await hub.publish("chat:api", "hi")
        pub = await sc.wait(lambda e: e["event"] == "server_pub" and e["channel"] == "chat:api")
        assert (pub["offset"], pub["data"]) == (1, "hi")
    finally:
        await sc.finish()
