"""Two Squall processes on redis+sentinel:// while the master fails: publishing resumes on the promoted
replica and no subscriber is left with a silent gap, even when the failover loses writes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any, Callable

import pytest
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler

from tests.helpers import squall_process
from tests.helpers.redis_server import SentinelGroup, redis_sentinel, wait_until  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.waiting import until
from tests.helpers.wsclient import RawClient, connected

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHANNEL = "chat:sentinel"


class Segments(SubscriptionEventHandler):
    """What arrived, cut at each (re)subscribe, with how that subscribe ended."""

    def __init__(self) -> None:
        self.subscribes: list[SubscribedContext] = []
        self.segments: list[list[tuple[int, Any]]] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribes.append(ctx)
        self.segments.append([])

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.segments[-1].append((ctx.pub.offset, ctx.pub.data))

    @property
    def data(self) -> list[Any]:
        return [d for seg in self.segments for _, d in seg]

    def silent_gaps(self, stored: dict[int, Any], epoch: str) -> list[str]:
        """Every way this subscriber could hold something other than the stream (``stored``, the history of
        ``epoch``) without being told."""
        problems, last = [], None
        for ctx, seg in zip(self.subscribes, self.segments):
            told = not ctx.was_recovering or not ctx.recovered  # a fresh start or recovered: false
            pos = ctx.stream_position.offset if ctx.stream_position else 0
            if ctx.stream_position is None or ctx.stream_position.epoch != epoch:
                stored = {}  # another epoch's offsets: nothing to compare
            # recovered: true continues the previous segment; otherwise it starts after the reply's position
            first = (last + 1) if (not told and last is not None) else pos + 1
            offsets = [o for o, _ in seg]
            if offsets and offsets != list(range(first, first + len(offsets))):
                problems.append(f"hole or repeat: expected from {first}, got {offsets[:12]}")
            problems += [f"offset {o} holds {d!r}, history {got!r}" for o, d in seg if (got := stored.get(o, d)) != d]
            if offsets:
                last = offsets[-1]
        return problems


async def subscribers(nodes: list[SquallProcess]) -> tuple[list[Client], list[Segments]]:
    clients, trackers = [], []
    for sp in nodes:
        t = Segments()
        c = Client(sp.ws_url, timeout=5.0, min_reconnect_delay=0.1, max_reconnect_delay=1.0)
        s = c.new_subscription(CHANNEL, t)
        await c.connect()
        await s.subscribe()
        assert await wait_until(lambda: t.subscribes, 10)
        clients.append(c)
        trackers.append(t)
    return clients, trackers


async def publish_until_acked(pub: RawClient, data: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await pub.call("publish", {"channel": CHANNEL, "data": data}, timeout=10)
        if r.get("publish") == {}:
            return
        assert r["error"]["code"] == 100 and r["error"].get("temporary") is True, r
        await asyncio.sleep(0.3)
    raise AssertionError(f"publishing {data!r} never succeeded after the failover")


async def history(pub: RawClient) -> tuple[dict[int, Any], str, int]:
    """The channel's history by offset, its epoch and its top offset."""
    hist = (await pub.call("history", {"channel": CHANNEL, "limit": -1}, timeout=10))["history"]
    return {p["offset"]: p["data"] for p in hist["publications"]}, hist["epoch"], int(hist.get("offset", 0))


@pytest.mark.gen_test(timeout=150)
async def test_master_sigkill_under_traffic(
    redis_sentinel: SentinelGroup, squall_factory: Callable[..., SquallProcess]
) -> None:
    """150 publications, the master SIGKILLed at the 50th: every subscriber (both nodes, recovery on) has every
    acknowledged one with consecutive offsets or was told recovered: false, and holds what history holds."""
    old = redis_sentinel.master()
    cfg = squall_process.test_config(engine="redis", redis_urls=[redis_sentinel.url])
    a, b = squall_factory(cfg), squall_factory(cfg)
    clients, trackers = await subscribers([a, b, b])
    pub = await connected(a.ws_url)
    acked, failed, killed_at = [], 0, 0.0
    for i in range(150):  # bounded: 150 publications, 20 ms apart (300 ms while refused)
        if i == 50:
            old.stop()  # SIGKILL: the sentinels see it down after 1 s and promote the replica
            killed_at = time.monotonic()
        r = await pub.call("publish", {"channel": CHANNEL, "data": i}, timeout=10)
        if r.get("publish") == {}:
            acked.append(i)
        else:
            assert r["error"]["code"] == 100 and r["error"].get("temporary") is True, r
            failed += 1
        await asyncio.sleep(0.02 if r.get("publish") == {} else 0.3)
    assert redis_sentinel.wait_failover(old, timeout=5) is not old
    assert acked[-1] == 149, f"publishing never came back after the failover ({failed} refused)"
    resumed = next(i for i in acked if i > 50)
    print(f"SENTINEL sigkill: {failed} refused, resumed at {resumed}, {time.monotonic() - killed_at:.1f}s after the kill")
    await until(lambda: all(149 in t.data for t in trackers), timeout=30, what="the last publication everywhere")
    stored, epoch, _top = await history(pub)
    for t in trackers:
        assert not t.silent_gaps(stored, epoch), t.silent_gaps(stored, epoch)
        missing = set(acked) - set(t.data)
        assert not missing or any(s.was_recovering and not s.recovered for s in t.subscribes), sorted(missing)[:10]
    for c in clients:
        await c.disconnect()


@pytest.mark.gen_test(timeout=150)
async def test_failover_that_loses_writes(
    redis_sentinel: SentinelGroup, squall_factory: Callable[..., SquallProcess]
) -> None:
    """Three publications reach only the master (its replica is SIGSTOPped and unlinked), then the master dies: the promoted
    replica's stream is three behind and its offsets are reused. Subscribers that saw the lost ones are told
    recovered: false instead of silently holding the lost ones where the stream now has others: the node that
    delivered them sees the stream rewound on its resync and starts a new epoch."""
    old, replica = redis_sentinel.master(), redis_sentinel.servers[1]
    assert replica.proc is not None
    cfg = squall_process.test_config(engine="redis", redis_urls=[redis_sentinel.url])
    a, b = squall_factory(cfg), squall_factory(cfg)
    clients, trackers = await subscribers([a, b, b])
    pub = await connected(a.ws_url)
    for i in range(5):
        await publish_until_acked(pub, f"kept{i}")
    await until(lambda: all(len(t.data) == 5 for t in trackers), timeout=10, what="the first five everywhere")
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        with old.client() as c:  # the stopped replica's link dropped: what follows is in no replica's socket
            assert c.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
        for i in range(3):
            r = await pub.call("publish", {"channel": CHANNEL, "data": f"lost{i}"}, timeout=5)
            assert r.get("publish") == {}, r  # acknowledged by the master alone
        await until(lambda: all(len(t.data) == 8 for t in trackers), timeout=10, what="the lost three delivered")
        old.stop()
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert redis_sentinel.wait_failover(old) is replica
    for i in range(5):
        await publish_until_acked(pub, f"after{i}")
        await asyncio.sleep(0.05)

    def caught_up(t: Segments, top: int, epoch: str) -> bool:
        """On the stream's epoch and at its top: received it, or positioned there by a recovered: false."""
        last, seg = t.subscribes[-1].stream_position, t.segments[-1]
        return last is not None and last.epoch == epoch and (last.offset >= top or bool(seg) and seg[-1][0] == top)

    # The node that delivered the lost publications starts a new epoch on its resync, which may come after
    # the publishing above: read the stream until every subscriber sits on its current epoch and top.
    deadline = time.monotonic() + 30
    while True:
        stored, epoch, top = await history(pub)
        if all(caught_up(t, top, epoch) for t in trackers) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert all(caught_up(t, top, epoch) for t in trackers), [t.subscribes[-1] for t in trackers]
    assert not any(str(d).startswith("lost") for d in stored.values()), stored  # the promoted replica never had them
    for t in trackers:
        assert not t.silent_gaps(stored, epoch), t.silent_gaps(stored, epoch)
        assert any(s.was_recovering and not s.recovered for s in t.subscribes), "never told its position is gone"
    for c in clients:
        await c.disconnect()
