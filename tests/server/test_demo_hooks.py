"""The demo's on_connect hook puts a guest's cleaned nickname into conn_info."""

from __future__ import annotations

import pytest

from server.demo_hooks import clean_name
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected


@pytest.fixture
def squall_config() -> dict:
    return test_config(hooks="server.demo_hooks:make")


@pytest.mark.gen_test
async def test_nickname_reaches_presence(ws_url: str) -> None:
    """A connect with data.name shows that name in presence."""
    c = await connected(ws_url, data={"name": "Ann <script>"})
    await c.call("subscribe", {"channel": "chat:names"})
    r = await c.call("presence", {"channel": "chat:names"})
    [entry] = r["presence"]["presence"].values()
    assert entry["conn_info"] == {"name": "Ann script"}


def test_clean_name_limits_and_filters() -> None:
    """Names lose markup characters and are cut at 32 characters."""
    assert clean_name("x" * 50) == "x" * 32
    assert clean_name(5) == ""
    assert clean_name(" Zoë-1.2 ") == "Zoë-1.2"
