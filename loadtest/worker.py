"""One load-generating process: connect, run the scenario, drain, report.

Phases are separated by :class:`Sync` points so that with ``--workers N``
every subscription exists before anyone publishes, and worker 0 samples the
server (CPU, RSS) at the same moments for everyone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from typing import Any, Callable, Protocol

import jwt

from loadtest.api_publish import ApiPublisher
from loadtest.plan import Plan, Target
from loadtest.protocol import CommandError, Conn, Reply
from loadtest.serverstats import ServerSampler
from loadtest.tracker import Tracker
from loadtest.websocket import HandshakeError

log = logging.getLogger("loadtest")

Emit = Callable[[str, dict[str, Any]], None]


class Sync(Protocol):
    async def wait(self, point: str) -> None: ...

    def abort(self) -> None: ...


class NoSync:
    """A single worker has nobody to wait for."""

    async def wait(self, point: str) -> None:
        return None

    def abort(self) -> None:
        return None


def make_token(target: Target, i: int) -> str:
    if target.token:
        return target.token
    if target.hmac_secret:
        return jwt.encode({"sub": f"loadtest-{i}"}, target.hmac_secret, algorithm="HS256")
    return ""


class Worker:
    def __init__(self, plan: Plan, target: Target, index: int, sync: Sync, emit: Emit) -> None:
        self.plan = plan
        self.target = target
        self.index = index
        self.sync = sync
        self.emit = emit
        self.tracker = Tracker(track_positions=plan.scenario == "churn")
        self.conns: dict[int, Conn] = {}
        self.sampler = ServerSampler(target.server_pid, target.stats_url, target.stats_key) if index == 0 else None
        self.api: ApiPublisher | None = None
        self.t0 = 0.0
        self.run_started = 0.0
        self.storm_seconds = 0.0
        self.phase = "start"
        self._published_total = 0
        # connections between a churn close and the end of their reopen: churn
        # must not pick them again (a second reopen would orphan the first's
        # pending connect, which then times out although the server answered)
        self._reopening: set[int] = set()

    # ------------------------------------------------------------ main
    async def run(self) -> dict[str, Any]:
        plan = self.plan
        self.t0 = time.monotonic()
        ticker = asyncio.ensure_future(self._ticker())
        samples: dict[str, dict[str, float]] = {}
        connect_seconds = run_seconds = 0.0
        t_connect = time.monotonic()
        tasks: list[asyncio.Future[None]] = []
        interrupted = ""
        try:
            await self.sync.wait("start")
            if self.sampler:
                samples["start"] = self.sampler.sample(with_stats=True)
            self.phase = "connect"
            t_connect = time.monotonic()
            await self._connect_all()
            connect_seconds = time.monotonic() - t_connect
            await self.sync.wait("connected")
            if self.sampler:
                samples["connected"] = self.sampler.sample(with_stats=True)
            if self.target.publish_via == "api":
                self.api = ApiPublisher(self.target.api_url, self.target.api_key, plan.connect_timeout)
                await self.api.start()
            self.phase = "run"
            self.run_started = time.monotonic()
            self.tracker.measure_from_us = time.time_ns() // 1000 + int(plan.warmup * 1e6)
            stop_at = self.run_started + plan.duration
            tasks = [asyncio.ensure_future(self._publisher(c, stop_at)) for c in self._publisher_conns()]
            if plan.scenario == "churn":
                tasks.append(asyncio.ensure_future(self._churn(stop_at)))
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
            self.phase = "drain"
            await asyncio.gather(*tasks)
            await self.sync.wait("published")
            await self._drain()
            run_seconds = time.monotonic() - self.run_started
            await self.sync.wait("drained")
            if self.sampler:
                samples["end"] = self.sampler.sample(with_stats=True)
        except (asyncio.CancelledError, threading.BrokenBarrierError):
            # Ctrl-C (the runner cancels the main task) or another worker
            # stopped: report what was measured so far, marked as partial.
            interrupted = self.phase
            self.sync.abort()  # release the other workers waiting at a barrier
            for t in tasks:
                t.cancel()
            if self.phase == "connect":
                connect_seconds = time.monotonic() - t_connect
            if self.run_started:
                run_seconds = time.monotonic() - self.run_started
        finally:
            ticker.cancel()
            self.phase = "close"
            if self.api is not None:
                await self.api.close()
            for c in self.conns.values():
                c.close()
            await asyncio.sleep(0.05)
        self._tick()
        result = self.tracker.result()
        result.update(
            worker=self.index,
            connect_seconds=connect_seconds,
            run_seconds=run_seconds,
            storm_seconds=self.storm_seconds,
            server=samples,
            interrupted=interrupted,
        )
        return result

    # ------------------------------------------------------------ connect
    async def _connect_all(self) -> None:
        plan = self.plan
        mine = list(plan.mine(self.index))
        per_worker_ramp = plan.ramp / plan.workers if plan.ramp > 0 else 0.0
        gate = asyncio.Semaphore(plan.connect_concurrency)
        start = time.monotonic()

        async def one(k: int, i: int) -> None:
            if per_worker_ramp:
                delay = start + k / per_worker_ramp - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with gate:
                await self._open(i, recover=False)

        await asyncio.gather(*(one(k, i) for k, i in enumerate(mine)))

    def _source(self, i: int) -> str | None:
        s = self.target.sources
        return s[i % len(s)] if s else None

    async def _open(self, i: int, recover: bool) -> bool:
        """Connect and subscribe connection ``i``; False (and counted) on failure."""
        t = self.target
        conn = self.conns.get(i)
        if conn is None:
            conn = self.conns[i] = Conn(i, self.tracker)
        began = time.monotonic()
        try:
            await conn.open(t.host, t.port, t.path, make_token(t, i), self._source(i), self.plan.connect_timeout)
        except CommandError as e:
            self.tracker.connect_failures += 1
            self.tracker.error("reconnect" if recover else "connect", e.code)
            conn.close()
            return False
        except (OSError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
            self.tracker.connect_failures += 1
            code = f"http-{e.status}" if isinstance(e, HandshakeError) and e.status else type(e).__name__
            self.tracker.error("reconnect" if recover else "connect", code)
            log.debug("connect %d failed: %s", i, e)
            conn.close()
            return False
        if recover:
            self.tracker.reconnects += 1
        else:
            self.tracker.connects += 1
            self.tracker.connect_time.record_value(max(1, int((time.monotonic() - began) * 1e6)))
        ok = True
        for ch in self.plan.channels_of(i):
            body: dict[str, Any] = {"channel": ch}
            if recover and ch in conn.epochs:
                body.update(recover=True, offset=conn.offsets.get(ch, 0), epoch=conn.epochs[ch])
            try:
                await conn.call(
                    "subscribe", body, self.plan.connect_timeout,
                    on_result=functools.partial(self._subscribed, conn, ch, recover=recover),
                )
            except CommandError as e:
                self.tracker.error("subscribe", e.code)
                ok = False
                continue
            except asyncio.TimeoutError:
                self.tracker.error("subscribe", "timeout")
                ok = False
        return ok

    def _subscribed(self, conn: Conn, ch: str, res: Reply, recover: bool) -> None:
        tr = self.tracker
        if ch not in conn.subscribed:  # its first subscription, even if a reconnect made it
            conn.subscribed.add(ch)
            tr.subscribers[ch] += 1
        if "epoch" in res:
            conn.epochs[ch] = str(res["epoch"])
        if res.get("offset") and ch not in conn.offsets:
            conn.offsets[ch] = int(res["offset"])
        if recover and ch in conn.epochs:
            if res.get("recovered"):
                tr.recovered += 1
            else:
                tr.not_recovered += 1
        now_us = time.time_ns() // 1000
        for pub in res.get("publications") or ():
            tr.on_pub(conn, ch, pub, now_us, recovered=True)

    # ------------------------------------------------------------ publish
    def _publisher_conns(self) -> list[Conn]:
        out = []
        for i, c in self.conns.items():
            chans, _ = self.plan.publishes_of(i)
            if chans and c.is_open:
                out.append(c)
        return out

    async def _publisher(self, conn: Conn, stop_at: float) -> None:
        plan = self.plan
        chans, rate = plan.publishes_of(conn.index)
        pid = f"p{conn.index}"
        pad = "x" * max(0, plan.message_size - 60)
        seqs = dict.fromkeys(chans, 0)
        tr = self.tracker
        inflight = 0
        freed = asyncio.Event()
        total_rate = rate * len(chans)
        rnd = random.Random(plan.seed + conn.index)
        begin = time.monotonic() + (rnd.random() / total_rate if total_rate else 0.0)
        sent = 0

        def make_cb(ch: str) -> Callable[[Reply], None]:
            def done(reply: Reply) -> None:
                nonlocal inflight
                inflight -= 1
                err = reply.get("error")
                if err is None:
                    tr.published[ch] += 1
                    self._published_total += 1
                else:
                    tr.error("publish", err.get("code", 0))
                freed.set()

            return done

        callbacks = {ch: make_cb(ch) for ch in chans}
        while conn.is_open:
            now = time.monotonic()
            if now >= stop_at:
                break
            if total_rate:
                due = begin + sent / total_rate
                if due > now:
                    await asyncio.sleep(min(due - now, stop_at - now))
                    continue
            if inflight >= plan.window:
                freed.clear()
                try:
                    await asyncio.wait_for(freed.wait(), max(0.001, stop_at - now))
                except asyncio.TimeoutError:
                    pass
                continue
            ch = chans[sent % len(chans)]
            seqs[ch] += 1
            data = {"s": seqs[ch], "t": time.time_ns() // 1000, "p": pid, "x": pad}
            inflight += 1
            sent += 1
            if self.api is not None:
                self.api.publish(ch, data, callbacks[ch])
            else:
                conn.send("publish", {"channel": ch, "data": data}, callbacks[ch])
            if not total_rate and sent % 32 == 0:
                await asyncio.sleep(0)  # let replies and pushes in
        deadline = time.monotonic() + 10.0
        while inflight > 0 and conn.is_open and time.monotonic() < deadline:
            freed.clear()
            try:
                await asyncio.wait_for(freed.wait(), 0.2)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------ churn
    async def _churn(self, stop_at: float) -> None:
        plan = self.plan
        rnd = random.Random(plan.seed * 7 + self.index)
        subs = [i for i in self.conns if i < plan.subscriber_count]
        if not subs:
            return
        rate = plan.churn_rate / plan.workers
        storm_at = self.run_started + plan.storm_at if plan.storm_at >= 0 else None
        pending: set[asyncio.Task[bool]] = set()
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if storm_at is not None and now >= storm_at:
                storm_at = None
                await asyncio.gather(*pending)
                await self._storm(subs)
                next_at = time.monotonic()
                continue
            if rate > 0 and now >= next_at:
                next_at += 1.0 / rate
                i = rnd.choice(subs)
                conn = self.conns[i]
                if conn.is_open and i not in self._reopening:
                    conn.close()
                    self._reopening.add(i)
                    t = asyncio.ensure_future(self._reopen(i, rnd.uniform(0.05, 0.3)))
                    pending.add(t)
                    t.add_done_callback(pending.discard)
            wake = min(next_at if rate > 0 else stop_at, stop_at, storm_at or stop_at)
            await asyncio.sleep(max(0.001, wake - time.monotonic()))
        await asyncio.gather(*pending)

    async def _reopen(self, i: int, delay: float) -> bool:
        try:
            await asyncio.sleep(delay)
            return await self._open(i, recover=True)
        finally:
            self._reopening.discard(i)

    async def _storm(self, subs: list[int]) -> None:
        """Everyone drops at once and comes back at once (bounded concurrency)."""
        for i in subs:
            self.conns[i].close()
        began = time.monotonic()
        gate = asyncio.Semaphore(self.plan.connect_concurrency)

        async def back(i: int) -> None:
            async with gate:
                await self._open(i, recover=True)

        await asyncio.gather(*(back(i) for i in subs))
        self.storm_seconds = time.monotonic() - began

    # ------------------------------------------------------------ drain
    async def _drain(self) -> None:
        plan = self.plan
        expected = self._local_expected() if plan.workers == 1 else None
        end = time.monotonic() + plan.drain
        last = self.tracker.deliveries
        last_change = time.monotonic()
        while time.monotonic() < end:
            got = self.tracker.deliveries
            if expected is not None and got >= expected:
                return
            if got != last:
                last, last_change = got, time.monotonic()
            elif time.monotonic() - last_change >= plan.quiet:
                return
            await asyncio.sleep(0.02)

    def _local_expected(self) -> int:
        tr = self.tracker
        return sum(n * tr.subscribers.get(ch, 0) for ch, n in tr.published.items())

    # ------------------------------------------------------------ progress
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._tick()

    def _tick(self) -> None:
        tr = self.tracker
        tick: dict[str, Any] = {
            "worker": self.index,
            "t": round(time.monotonic() - self.t0, 3),
            "phase": self.phase,
            "open": sum(1 for c in self.conns.values() if c.is_open),
            "connects": tr.connects,
            "deliveries": tr.deliveries,
            "published": self._published_total,
            "errors": sum(tr.errors.values()),
            "disconnects": sum(tr.disconnects.values()),
            "hist": tr.take_interval(),
        }
        if self.sampler:
            tick["server"] = self.sampler.sample()
        self.emit("tick", tick)


async def run_worker(plan: Plan, target: Target, index: int, sync: Sync, emit: Emit) -> dict[str, Any]:
    return await Worker(plan, target, index, sync, emit).run()
