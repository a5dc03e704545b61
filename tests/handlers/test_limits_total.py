"""The node-wide connection limit (3504)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(client_connection_limit=2)


@pytest.mark.gen_test
async def test_total_connection_limit_3504(ws_url: str) -> None:
    """With client_connection_limit = 2 the third socket is closed with 3504; the others keep working."""
    a, b = await connected(ws_url), await connected(ws_url)
    c = await RawClient.open(ws_url)
    got, _ = await c.wait_closed()
    assert got == 3504
    assert "ping" in await a.call("ping", {}) and "ping" in await b.call("ping", {})
    a.close()
    b.close()
