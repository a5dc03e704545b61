"""The WebSocket's limits on the emulated transports: origins, the command rate limit, tokens."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from handlers.auth import make_token
from tests.handlers.test_emulation import commands, emulate
from tests.handlers.test_sse import UniStream, wait_clients
from tests.helpers.squall_process import test_config


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(client_command_rate_limit=1, client_command_burst=2,
                       allow_anonymous_connect_without_token=False, token_hmac_secret_key="s" * 32)


@pytest.fixture
def hub(squall_app: Any) -> Any:
    return squall_app.ctx.hub


@pytest.mark.gen_test
async def test_foreign_origin_is_refused(http_server, http_port):
    """A foreign Origin gets 403 on the stream and on /emulation, as on the WebSocket upgrade."""
    evil = {"Origin": "https://evil.example"}
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST",
                             body=commands({"id": 1, "connect": {}}), headers=evil)
    assert s.status == 403
    body = orjson.dumps({"session": "x", "node": "y", "data": "{}"})
    s = await UniStream.open(http_port, "/emulation", method="POST", body=body, headers=evil)
    assert s.status == 403


@pytest.mark.gen_test
async def test_token_required_and_rate_limit_apply(http_server, http_port, hub):
    """No token when anonymous connect is off: 3501; commands over the rate limit by /emulation: 111."""
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST", body=commands({"id": 1, "connect": {}}))
    assert (await s.message())["push"]["disconnect"]["code"] == 3501
    token = make_token("s" * 32, "alice")
    s = await UniStream.open(http_port, "/connection/http_stream", method="POST",
                             body=commands({"id": 1, "connect": {"token": token}}))
    connect = (await s.message())["connect"]
    assert await emulate(http_port, connect, *({"id": i, "ping": {}} for i in range(2, 6))) == (204, "")
    got = [await s.message() for _ in range(4)]
    assert [m.get("error", {}).get("code") for m in got].count(111) >= 2
    s.close()
    await wait_clients(hub, 0)
