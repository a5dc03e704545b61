"""Auto-pipelining against a real redis-server: order, one reply per call, no resend, NOSCRIPT."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from channels.redis_batch import CommandPipeline
from channels.redis_shards import RedisShards, _no_maint_notifications
from channels.resp_template import OPEN, CommandTemplate
from tests.helpers.redis_server import MutingProxy, RedisServer

pytestmark = pytest.mark.redis

# KEYS: 1 counter. ARGV: 1 "fail" to raise. Returns the counter after the increment.
COUNT = """
if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end
return redis.call('incr', KEYS[1])
"""

# Keeps Redis busy for a while (a busy loop; scripts cannot sleep), then returns 1.
SLOW = """
local x = 0
for i = 1, 3000000 do x = x + i end
return 1
"""


def client(url: str, timeout: float = 2.0) -> aioredis.Redis:
    """Pooled as the server pools (stale connections replaced before reuse)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=8, socket_timeout=timeout, timeout=timeout, **_no_maint_notifications()
    )
    return aioredis.Redis(connection_pool=pool)


async def counter(url: str, key: str) -> int:
    c = aioredis.Redis.from_url(url)
    try:
        return int(await c.get(key) or 0)
    finally:
        await c.aclose()


@contextlib.asynccontextmanager
async def opened(url: str, timeout: float = 2.0, **kw: Any) -> AsyncIterator[CommandPipeline]:
    """A pipeline over its own pooled client, closed afterwards."""
    c = client(url, timeout)
    p = CommandPipeline(c, **kw)
    try:
        yield p
    finally:
        await p.close()
        await c.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_calls_share_pipelines_and_keep_queue_order(redis_url: str) -> None:
    """500 calls at once: each gets its own reply, in the order queued, in far fewer round trips."""
    async with opened(redis_url) as pipeline:
        script = pipeline.script(COUNT)
        replies = await asyncio.gather(*(pipeline.run_script(script, ["n"], ["ok"]) for _ in range(500)))
        assert replies == list(range(1, 501))
        assert pipeline.calls == 500
        assert pipeline.batches < 50


@pytest.mark.gen_test(timeout=30)
async def test_a_lone_call_leaves_at_once(redis_url: str) -> None:
    """One call is one batch of one: nothing waits for company."""
    async with opened(redis_url) as pipeline:
        script = pipeline.script(COUNT)
        assert await pipeline.run_script(script, ["lone"], ["ok"]) == 1
        assert (pipeline.batches, pipeline.calls) == (1, 1)


@pytest.mark.gen_test(timeout=30)
async def test_an_error_reply_fails_only_its_own_call(redis_url: str) -> None:
    """A script error in the middle of a batch reaches that caller; its neighbours succeed."""
    async with opened(redis_url) as pipeline:
        script = pipeline.script(COUNT)
        args = ["fail" if i == 5 else "ok" for i in range(10)]
        results = await asyncio.gather(*(pipeline.run_script(script, ["e"], [a]) for a in args), return_exceptions=True)
        assert isinstance(results[5], ResponseError) and "asked to fail" in str(results[5])
        assert [r for i, r in enumerate(results) if i != 5] == list(range(1, 10))


@pytest.mark.parametrize("max_batch", [512, 2])
@pytest.mark.gen_test(timeout=30)
async def test_noscript_after_flush_loads_and_runs_each_call_once(redis_url: str, max_batch: int) -> None:
    """SCRIPT FLUSH (a restarted Redis): the calls (one batch, or many in flight) are sent again after a load, in order, none twice."""
    async with opened(redis_url, max_batch=max_batch) as pipeline:
        script = pipeline.script(COUNT)
        assert await pipeline.run_script(script, ["f"], ["ok"]) == 1
        c = aioredis.Redis.from_url(redis_url)
        await c.script_flush()
        await c.aclose()
        replies = await asyncio.gather(*(pipeline.run_script(script, ["f"], ["ok"]) for _ in range(50)))
        assert replies == list(range(2, 52))
        assert await counter(redis_url, "f") == 51


@pytest.mark.gen_test(timeout=30)
async def test_packed_calls_mix_with_argument_calls_and_survive_noscript(redis_url: str) -> None:
    """run_packed (a template's bytes) and run_script calls share batches in queue order, and after SCRIPT FLUSH both are sent again once."""
    async with opened(redis_url, max_batch=3) as pipeline:
        script = pipeline.script(COUNT)
        template = CommandTemplate(("EVALSHA", script.sha, 1, "p", OPEN))
        assert await pipeline.run_packed(script, template.fill(b"ok")) == 1
        c = aioredis.Redis.from_url(redis_url)
        await c.script_flush()
        await c.aclose()
        calls = [pipeline.run_packed(script, template.fill(b"ok")) if i % 2 else pipeline.run_script(script, ["p"], ["ok"])
                 for i in range(20)]
        assert await asyncio.gather(*calls) == list(range(2, 22))
        assert await counter(redis_url, "p") == 21


@pytest.mark.gen_test(timeout=30)
async def test_publish_goes_through_the_pipeline(redis_url: str) -> None:
    """PUBLISH answers the number of subscribers Redis reached."""
    async with opened(redis_url) as pipeline:
        sub = aioredis.Redis.from_url(redis_url).pubsub()
        await sub.subscribe("topic")
        try:
            counts = await asyncio.gather(*(pipeline.publish(b"topic", b"x%d" % i) for i in range(20)))
            assert counts == [1] * 20
        finally:
            await sub.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_batches_leave_while_earlier_replies_are_due_and_keep_order(redis_url: str) -> None:
    """Redis busy with a slow script: later batches are written without waiting (up to the bound), replies in order."""
    async with opened(redis_url, max_batch=1, max_in_flight=4) as pipeline:
        slow, script = pipeline.script(SLOW), pipeline.script(COUNT)
        assert await pipeline.run_script(slow, [], []) == 1  # both scripts loaded: no NOSCRIPT below
        assert await pipeline.run_script(script, ["o"], ["ok"]) == 1
        first = pipeline.run_script(slow, [], [])
        rest = [pipeline.run_script(script, ["o"], ["ok"]) for _ in range(30)]
        assert await first == 1
        assert await asyncio.gather(*rest) == list(range(2, 32))
        assert pipeline.peak_in_flight == 4
        assert pipeline.batches == 33


@pytest.mark.parametrize("max_batch", [512, 3])
@pytest.mark.gen_test(timeout=40)
async def test_lost_replies_fail_the_batch_and_nothing_is_sent_twice(redis_server: RedisServer, max_batch: int) -> None:
    """Replies that never come (one batch, or several in flight): every caller hears an error; Redis ran each call once."""
    proxy = MutingProxy(redis_server.port)
    await proxy.start()
    try:
        async with opened(proxy.url, timeout=0.5, max_batch=max_batch) as p:
            script = p.script(COUNT)
            assert await p.run_script(script, ["m"], ["ok"]) == 1  # the connection exists, then goes deaf
            proxy.mute_existing()
            results = await asyncio.gather(*(p.run_script(script, ["m"], ["ok"]) for _ in range(20)), return_exceptions=True)
            assert all(isinstance(r, (RedisError, OSError, asyncio.TimeoutError)) for r in results), results
            # The calls reached Redis once each; the next one (on a fresh connection) follows them.
            assert await p.run_script(script, ["m"], ["ok"]) == 22
            assert await counter(redis_server.url, "m") == 22
    finally:
        await proxy.close()


@pytest.mark.gen_test(timeout=40)
async def test_dead_redis_fails_calls_and_the_pipeline_recovers(redis_server: RedisServer) -> None:
    """Redis down: calls fail (not hang); Redis back: the same pipeline serves again."""
    async with opened(redis_server.url, timeout=0.5) as p:
        script = p.script(COUNT)
        assert await p.run_script(script, ["d"], ["ok"]) == 1
        redis_server.stop()
        results = await asyncio.gather(*(p.run_script(script, ["d"], ["ok"]) for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, (RedisError, OSError, asyncio.TimeoutError)) for r in results), results
        redis_server.start()
        assert await p.run_script(script, ["d"], ["ok"]) == 1  # a fresh server: the script is loaded again


@pytest.mark.gen_test(timeout=30)
async def test_a_cancelled_caller_does_not_disturb_the_others(redis_url: str) -> None:
    """A caller that stops waiting: its call still runs once, the rest get their replies."""
    async with opened(redis_url) as pipeline:
        script = pipeline.script(COUNT)
        tasks = [asyncio.ensure_future(pipeline.run_script(script, ["x"], ["ok"])) for _ in range(30)]
        await asyncio.sleep(0)  # all queued
        tasks[3].cancel()
        results: list[Any] = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError)
        rest = [r for i, r in enumerate(results) if i != 3]
        assert len(rest) == 29 and all(isinstance(r, int) for r in rest)
        assert await pipeline.run_script(script, ["x"], ["ok"]) == 31


@pytest.mark.gen_test(timeout=30)
async def test_close_fails_queued_calls(redis_url: str) -> None:
    """Closing with calls queued: they fail with an error instead of hanging; later calls are refused."""
    async with opened(redis_url, max_batch=1) as p:
        script = p.script(COUNT)
        tasks = [asyncio.ensure_future(p.run_script(script, ["q"], ["ok"])) for _ in range(50)]
        await asyncio.sleep(0)
        await p.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert any(isinstance(r, RedisError) for r in results)
        assert all(isinstance(r, (int, RedisError)) for r in results)
        with pytest.raises(RedisError):
            await p.run_script(script, ["q"], ["ok"])


@pytest.mark.gen_test(timeout=40)
async def test_first_call_after_a_redis_restart_works(redis_server: RedisServer) -> None:
    """Pooled connections the old Redis closed are replaced before reuse, not failed once each."""
    shards = RedisShards([redis_server.url], prefix="t", cluster=False)
    commands = shards.commands(0)
    script = commands.script(COUNT)
    try:
        for _ in range(3):  # several pooled connections, all used before the restart
            await asyncio.gather(*(commands.run_script(script, ["r"], ["ok"]) for _ in range(20)))
        redis_server.stop()
        await asyncio.sleep(0.3)  # the client sees every socket close
        redis_server.start()
        assert await commands.run_script(script, ["r"], ["ok"]) == 1
    finally:
        await shards.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_unexpected_read_failure_fails_the_calls_in_flight(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply read failing with no Redis error type: the callers hear a RedisError (no hang); the pipeline recovers."""
    from redis.asyncio.connection import Connection

    async with opened(redis_url) as p:
        script = p.script(COUNT)
        assert await p.run_script(script, ["u"], ["ok"]) == 1

        async def broken(self: Connection, *args: Any, **kwargs: Any) -> Any:
            raise ValueError("not a redis error")

        monkeypatch.setattr(Connection, "read_response", broken)
        results = await asyncio.gather(*(p.run_script(script, ["u"], ["ok"]) for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, RedisError) for r in results), results
        monkeypatch.undo()
        assert await p.run_script(script, ["u"], ["ok"]) == 12  # the ten ran once each; nothing resent
