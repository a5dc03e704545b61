"""Publishes a client sends without waiting run together: replies and offsets in command order, barriers kept."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from channels.types import ClientInfo
from handlers.hooks import Hooks
from handlers.protocol import Command
from handlers.publish_run import LIMIT, PublishRun
from handlers.ws_conn import WSConnection
from server.app import Squall
from tests.handlers.test_proxy import squall_app  # noqa: F401  (the fixture, built with squall_hooks)
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected

OPEN = {
    "history_size": 100,
    "history_ttl": 60,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_client": True,
    "allow_publish_for_anonymous": True,
    "allow_history_for_client": True,
    "allow_history_for_anonymous": True,
}
N = 40


@pytest.fixture(params=["memory", "redis"])
def squall_config(request: Any, redis_factory: Any) -> dict[str, Any]:  # noqa: F811
    if request.param == "memory":
        return test_config(namespaces=[{"name": "feed", **OPEN}])
    server = redis_factory()
    return test_config(engine="redis", redis_urls=[server.url], redis_prefix="pubrun", namespaces=[{"name": "feed", **OPEN}])


@pytest.fixture
def tracking() -> "Tracking":
    return Tracking()


@pytest.fixture
def squall_hooks(request: Any, tracking: "Tracking") -> Hooks | None:
    """No hooks, or (param "hook") the tracking on_publish hook."""
    return Hooks(on_publish=tracking.on_publish) if getattr(request, "param", None) == "hook" else None


async def burst(c: RawClient, channel: str, n: int) -> list[dict[str, Any]]:
    """``n`` publishes sent back to back, then a history read; every reply, in arrival order."""
    first = c.next_id + 1
    for i in range(n):
        await c.send({"id": first + i, "publish": {"channel": channel, "data": {"i": i}}})
    await c.send({"id": first + n, "history": {"channel": channel, "limit": -1}})
    c.next_id = first + n
    replies: list[dict[str, Any]] = []
    while len(replies) < n + 1:
        obj = await c.read()
        assert obj is not None, "closed"
        replies.append(obj)
    return replies


@pytest.mark.gen_test(timeout=30)
async def test_a_burst_of_publishes_keeps_command_order(ws_url: str, squall_app: Squall) -> None:
    """Replies in command order; offsets follow it; the history read after them sees all of them."""
    c = await connected(ws_url)
    replies = await burst(c, "feed:a", N)
    assert [r["id"] for r in replies] == list(range(2, N + 3))
    assert all(r.get("publish") == {} for r in replies[:N]), replies[:N]
    pubs = replies[N]["history"]["publications"]
    assert [p["data"]["i"] for p in pubs] == list(range(N))
    assert [int(p["offset"]) for p in pubs] == list(range(1, N + 1))
    c.conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_one_frame_of_publishes_then_a_read_keeps_its_order(ws_url: str, squall_app: Squall) -> None:
    """Publishes that start at once from one frame, then a pong and a history read in it: the read sees them all."""
    c = await connected(ws_url)
    first = c.next_id + 1
    lines = [{"id": first + i, "publish": {"channel": "feed:f", "data": {"i": i}}} for i in range(N)]
    lines += [{}, {"id": first + N, "history": {"channel": "feed:f", "limit": -1}}]
    await c.send_raw(b"\n".join(orjson.dumps(line) for line in lines))
    replies = [await c.read() for _ in range(N + 1)]
    assert [r["id"] for r in replies if r] == list(range(first, first + N + 1))
    pubs = replies[N]["history"]["publications"]
    assert [p["data"]["i"] for p in pubs] == list(range(N))
    c.conn.close()


@pytest.mark.gen_test(timeout=10)
async def test_finished_publishes_do_not_count_against_the_limit() -> None:
    """Many more than LIMIT publishes, each finished before the next: every one starts at once."""
    run = PublishRun()
    done: list[int] = []

    async def one(cmd: Command) -> None:
        done.append(cmd.id)

    for i in range(1, 3 * LIMIT + 1):
        assert run.start_now(one, Command(i, "publish", {})), i
        await asyncio.sleep(0)
    await run.drain()
    assert done == list(range(1, 3 * LIMIT + 1))


@pytest.mark.gen_test(timeout=30)
async def test_publishes_one_at_a_time_need_no_task_of_the_connection(
    ws_url: str, squall_app: Squall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client publishing in a closed loop (reply, then the next) never waits behind the connection's own Task."""
    consumed: list[int] = []
    real = WSConnection._consume

    def counting(self: WSConnection, session: Any, first: list[Command]) -> Any:
        consumed.extend(cmd.id for cmd in first)
        return real(self, session, first)

    monkeypatch.setattr(WSConnection, "_consume", counting)
    c = await connected(ws_url)
    for i in range(3 * LIMIT):
        reply = await c.call("publish", {"channel": "feed:loop", "data": {"i": i}})
        assert reply.get("publish") == {}, reply
    assert consumed == [1], consumed  # the connect only
    c.conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_burst_reaches_redis_together(ws_url: str, squall_app: Squall, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis engine: the burst's publishes were with Redis at the same time, not one round trip after another."""
    broker: Any = squall_app.ctx.hub.broker
    if not hasattr(broker, "_shards"):
        pytest.skip("memory engine: no pipeline to watch")
    commands = broker._shards.commands(0)
    c = await connected(ws_url)
    await burst(c, "feed:warm", 1)
    # How the burst splits into batches depends on timing; what does not is
    # how many scripts were waiting for Redis at once (one at a time: 1).
    waiting = {"now": 0, "most": 0}
    real = commands.run_packed  # the publish script's call, packed from its template

    def watched(script: Any, command: bytes) -> asyncio.Future[Any]:
        fut = real(script, command)
        waiting["now"] += 1
        waiting["most"] = max(waiting["most"], waiting["now"])
        fut.add_done_callback(lambda _: waiting.__setitem__("now", waiting["now"] - 1))
        return fut

    monkeypatch.setattr(commands, "run_packed", watched)
    replies = await burst(c, "feed:b", N)
    assert [r.get("publish") for r in replies[:N]] == [{}] * N, replies[:N]
    assert waiting["most"] > 1, waiting
    c.conn.close()


class Tracking:
    """An on_publish hook that records how many publishes were inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.seen: list[int] = []

    async def on_publish(self, info: ClientInfo, channel: str, data: Any) -> Any:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(0.002 * (3 - data["i"] % 3))  # answers would come back out of order
        self.seen.append(data["i"])
        self.inside -= 1
        return data


@pytest.mark.parametrize("squall_config", ["memory"], indirect=True)
@pytest.mark.parametrize("squall_hooks", ["hook"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_with_an_on_publish_hook_publishes_run_one_at_a_time(
    ws_url: str, squall_app: Squall, tracking: Tracking
) -> None:
    """A hook may await: its publishes are not started together, so none overtakes another."""
    c = await connected(ws_url)
    replies = await burst(c, "feed:h", 12)
    assert tracking.most == 1 and tracking.seen == list(range(12))
    assert [p["data"]["i"] for p in replies[12]["history"]["publications"]] == list(range(12))
    c.conn.close()
