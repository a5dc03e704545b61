"""A hook sends to any client (Hooks.setup's ClientSender): on this node and, over Redis, on another node.

centrifuge-js receives the pushes as its 'message' event (centrifuge-python,
0.7.0 here, has no message event and no send; it calls the hook through RPC).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from centrifuge import Client, ClientEventHandler, ConnectedContext

from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory, test_config  # noqa: F401
from tests.interop.test_centrifuge_js import centrifuge_js  # noqa: F401
from tests.interop.test_centrifuge_js_emulation import KEY, wait_nodes


class Ids(ClientEventHandler):
    def __init__(self) -> None:
        self.client = ""

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.client = ctx.client


async def alice_sends(url: str, bob: str, carol: str) -> tuple[str, list[Any]]:
    """centrifuge-python on node A asks the hook (RPC dm) for three messages: bob, carol, an unknown id."""
    ids = Ids()
    alice = Client(url, events=ids, timeout=5)
    await alice.connect()
    try:
        answers = [
            (await alice.rpc("dm", {"to": to, "text": text})).data
            for to, text in ((bob, "across nodes"), (carol, "same node"), ("no-such-client", "lost"))
        ]
    finally:
        await alice.disconnect()
    return ids.client, answers


@pytest.mark.redis
def test_hook_sends_to_clients_on_both_nodes(
    centrifuge_js: Path, squall_factory: Callable[..., SquallProcess], redis_server: RedisServer
) -> None:
    """bob (node B) gets alice's and carol's messages, carol (node A) alice's, each exactly once; an unknown id is no error."""
    cfg = test_config(api_key=KEY, engine="redis", redis_urls=[redis_server.url], hooks="tests.interop.send_hooks:make")
    a, b = squall_factory(cfg), squall_factory(cfg)
    wait_nodes(b, 2)
    proc = subprocess.Popen(
        ["node", str(centrifuge_js / "hook_message.mjs"), a.ws_url, b.ws_url, "2", "1"],
        cwd=centrifuge_js, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        ids = json.loads(first)
        alice, answers = asyncio.run(alice_sends(a.ws_url, ids["bob"], ids["carol"]))
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest + err + a.logs()[-2000:] + b.logs()[-2000:]
    out = json.loads(rest.strip().splitlines()[-1])
    assert out["errors"] == []
    assert answers == [{"sent": True}] * 3
    assert sorted(out["bob"], key=lambda m: m["text"]) == [
        {"from": alice, "text": "across nodes"},
        {"from": ids["carol"], "text": "hello bob"},
    ]
    assert out["carol"] == [{"from": alice, "text": "same node"}]
