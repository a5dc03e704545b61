"""Hooks.setup's ClientSender on one node (memory engine): a hook's message reaches another client once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handlers.control import HookSender
from server.app import Squall
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(hooks="tests.interop.send_hooks:make")


@pytest.mark.gen_test
async def test_hook_message_to_another_client(http_server, ws_url, squall_app: Squall):
    """alice's send {"to": bob} makes the hook push {"message": {"data": {"from": alice, ...}}} to bob only, once."""
    alice, bob = await connected(ws_url), await connected(ws_url)
    me, him = alice.last_connect["connect"]["client"], bob.last_connect["connect"]["client"]
    await alice.send({"send": {"data": {"to": him, "text": "hi"}}})
    assert (await bob.next_push())["push"] == {"message": {"data": {"from": me, "text": "hi"}}}
    with pytest.raises(asyncio.TimeoutError):
        await bob.next_push(timeout=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await alice.next_push(timeout=0.1)
    with pytest.raises(ValueError):
        await HookSender(squall_app.ctx.hub).send("", {"x": 1})
