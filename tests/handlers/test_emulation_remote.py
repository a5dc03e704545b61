"""POST /emulation to a node that does not hold the session waits for that node to run the batch, as Centrifugo's survey."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import orjson
import pytest

from tests.handlers.test_emulation import commands, open_stream, post
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory, test_config  # noqa: F401
from tests.interop.test_centrifuge_js_emulation import KEY, wait_nodes


async def remote_rpc(a: SquallProcess, b: SquallProcess, transport: str) -> tuple[tuple[int, str], float, Any, tuple[int, str]]:
    stream, connect = await open_stream(a.port, transport)
    try:
        body = {"session": connect["session"], "node": connect["node"], "data": commands({"id": 2, "rpc": {"method": "slow", "data": {"seconds": 1.0}}}).decode()}
        started = time.monotonic()
        answer = await post(b.port, orjson.dumps(body))
        elapsed = time.monotonic() - started
        reply = await stream.message()
        gone = {"session": "no-such-session", "node": connect["node"], "data": commands({"id": 3, "ping": {}}).decode()}
        unknown = await post(b.port, orjson.dumps(gone))
    finally:
        stream.close()
    return answer, elapsed, reply, unknown


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["http_stream", "sse"])
def test_post_on_another_node_waits_for_the_batch(
    squall_factory: Callable[..., SquallProcess], redis_server: RedisServer, transport: str
) -> None:
    """The stream on A, an RPC that sleeps 1 s POSTed to B: B answers 204 only after A ran it; an unknown session is 204 at once."""
    cfg = test_config(api_key=KEY, engine="redis", redis_urls=[redis_server.url], hooks="tests.handlers.emulation_hooks:make")
    a, b = squall_factory(cfg), squall_factory(cfg)
    wait_nodes(b, 2)
    answer, elapsed, reply, unknown = asyncio.run(remote_rpc(a, b, transport))
    assert answer == (204, "")
    assert elapsed >= 0.9, elapsed  # a lower bound: the answer came after the 1 s RPC, not before it
    assert reply == {"id": 2, "rpc": {"data": {"slept": True}}}
    assert unknown == (204, "")


@pytest.mark.redis
def test_post_for_a_node_that_never_answers_is_500(squall_factory: Callable[..., SquallProcess], redis_server: RedisServer) -> None:
    """The session's node stopped (SIGSTOP) while still listed: B answers 500 after Centrifugo's 10 s survey timeout, not 204."""
    import os
    import signal

    cfg = test_config(api_key=KEY, engine="redis", redis_urls=[redis_server.url])

    async def run(a: SquallProcess, b: SquallProcess) -> tuple[tuple[int, str], float]:
        stream, connect = await open_stream(a.port, "http_stream")
        body = {"session": connect["session"], "node": connect["node"], "data": commands({"id": 2, "ping": {}}).decode()}
        os.kill(a.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            answer = await post(b.port, orjson.dumps(body))
            return answer, time.monotonic() - started
        finally:
            os.kill(a.pid, signal.SIGCONT)
            stream.close()

    a, b = squall_factory(cfg), squall_factory(cfg)
    wait_nodes(b, 2)
    answer, elapsed = asyncio.run(run(a, b))
    assert answer == (500, "the session's node did not answer")
    assert elapsed >= 9.5, elapsed
