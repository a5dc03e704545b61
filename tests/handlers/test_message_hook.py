"""An on_message hook that returns data sends it back to that client as a message push."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(hooks="tests.handlers.message_hooks:make")


@pytest.mark.gen_test
async def test_hook_answer_is_a_message_push(http_server, ws_url):
    """send {"ping": 7} gets {"push": {"message": {"data": {"pong": 7, "to": <client>}}}}; other sends nothing."""
    c = await connected(ws_url)
    other = await connected(ws_url)
    me = c.last_connect["connect"]["client"]
    await c.send({"send": {"data": {"ping": 7}}})
    assert (await c.next_push())["push"] == {"message": {"data": {"pong": 7, "to": me}}}
    await c.send({"send": {"data": "no answer"}})
    with pytest.raises(asyncio.TimeoutError):
        await c.next_push(timeout=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await other.next_push(timeout=0.1)
