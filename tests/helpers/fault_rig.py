"""Fault-injection rig: two Squall nodes over Redis with MongoDB history,
centrifuge-python subscribers that record every offset they see, server-API
publishers (cent) that record every outcome, and the bookkeeping that turns
those records into the suite's figures.

A client x channel pair's stream is cut into *segments*: a segment starts at a
subscribe position and runs, offset after offset, until the SDK reports a flag
(a resubscribe with ``recovered: false``, or a subscribe after an
unsubscribe). An offset skipped inside a segment is a **silent gap**; the
offsets between two segments are a **flagged gap**; an offset at or below the
segment's last one is a **duplicate**. An acknowledged publication is
*missing at a client* when its (epoch, offset) lies inside one of that client's
segments but the client did not get it there (a silent gap, or other data).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from aiohttp import ClientSession, TCPConnector
from cent import AsyncClient, CentApiResponseError, CentError, HistoryRequest, PresenceRequest, PublishRequest
from centrifuge import (
    Client,
    PublicationContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)
from pymongo import AsyncMongoClient

from tests.helpers.mongo_server import SecantusServer
from tests.helpers.redis_server import RedisServer
from tests.helpers.squall_process import OPEN_NAMESPACE, SquallProcess, test_config

API_KEY = "fault-suite-key"
MONGO_DB = "faults"
HOT_WINDOW = 20
PRESENCE_TTL = 3  # seconds: a killed node's presence entries must be gone this long after


# ------------------------------------------------------------------ recording
@dataclass(frozen=True)
class Subscribed:
    t: float
    was_recovering: bool
    recovered: bool
    epoch: str
    offset: int


@dataclass(frozen=True)
class Pub:
    t: float
    offset: int
    pub_id: Any


@dataclass(frozen=True)
class Unsubscribed:
    t: float
    code: int
    reason: str


@dataclass(frozen=True)
class Subscribing:
    t: float
    code: int
    reason: str


Event = Subscribed | Pub | Unsubscribed | Subscribing


class OffsetRecorder(SubscriptionEventHandler):
    """One subscription's events, in the order the SDK reported them."""

    def __init__(self, client: str, node: str, channel: str, clock: Callable[[], float]) -> None:
        self.client = client
        self.node = node
        self.channel = channel
        self.events: list[Event] = []
        self.errors: list[str] = []  # subscribe errors the SDK reported (it retries them)
        self._clock = clock

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.events.append(Subscribing(self._clock(), ctx.code, ctx.reason))

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        pos = ctx.stream_position
        self.events.append(Subscribed(self._clock(), ctx.was_recovering, ctx.recovered,
                                      pos.epoch if pos else "", pos.offset if pos else 0))

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.events.append(Unsubscribed(self._clock(), ctx.code, ctx.reason))

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.errors.append(f"t={self._clock():.2f} {ctx.code} {ctx.error!r}")

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        self.events.append(Pub(self._clock(), ctx.pub.offset, data.get("id") if isinstance(data, dict) else data))


# ------------------------------------------------------------------ analysis
@dataclass
class Segment:
    epoch: str
    start: int  # the subscribe position: the segment covers offsets start+1 .. last
    last: int
    received: dict[int, Any] = field(default_factory=dict)  # offset -> publication id

    def covers(self, epoch: str, offset: int) -> bool:
        return epoch == self.epoch and self.start < offset <= self.last


@dataclass(frozen=True)
class Gap:
    epoch: str
    first: int  # first offset skipped
    last: int  # last offset skipped
    t: float  # when the offset after the gap arrived
    why: str = "offset skipped"


@dataclass(frozen=True)
class Flag:
    kind: str  # "recovered false", "resubscribe after unsubscribe", "fresh subscribe"
    t: float
    old: tuple[str, int] | None  # (epoch, last offset) before the flag
    new: tuple[str, int]


@dataclass
class PairAnalysis:
    segments: list[Segment] = field(default_factory=list)
    silent: list[Gap] = field(default_factory=list)
    flagged: list[Flag] = field(default_factory=list)
    duplicates: int = 0
    recoveries: int = 0  # resubscribes answered recovered: true
    subscribed: bool = False  # subscribed after its last event

    @property
    def current(self) -> Segment | None:
        return self.segments[-1] if self.segments else None


def analyse(events: Iterable[Event]) -> PairAnalysis:
    """Cut one pair's events into segments; count silent gaps, flags and duplicates."""
    out = PairAnalysis()
    after_unsubscribe = False
    for ev in events:
        seg = out.current
        if isinstance(ev, Subscribed):
            out.subscribed = True
            if seg is None:
                out.segments.append(Segment(ev.epoch, ev.offset, ev.offset))
            elif after_unsubscribe or not ev.was_recovering or not ev.recovered:
                kind = ("resubscribe after unsubscribe" if after_unsubscribe
                        else "recovered false" if ev.was_recovering else "fresh subscribe")
                out.flagged.append(Flag(kind, ev.t, (seg.epoch, seg.last), (ev.epoch, ev.offset)))
                out.segments.append(Segment(ev.epoch, ev.offset, ev.offset))
            elif ev.epoch != seg.epoch:
                # recovered: true into another stream: what came between is gone unannounced
                out.silent.append(Gap(seg.epoch, seg.last + 1, -1, ev.t, f"recovered true into epoch {ev.epoch}"))
                out.segments.append(Segment(ev.epoch, ev.offset, ev.offset))
            else:
                out.recoveries += 1  # recovered publications follow as Pub events
            after_unsubscribe = False
        elif isinstance(ev, Pub):
            if seg is None:
                continue  # cannot happen: the SDK delivers only while subscribed
            if ev.offset <= seg.last:
                out.duplicates += 1
                continue
            if ev.offset > seg.last + 1:
                out.silent.append(Gap(seg.epoch, seg.last + 1, ev.offset - 1, ev.t))
            seg.last = ev.offset
            seg.received[ev.offset] = ev.pub_id
        elif isinstance(ev, Unsubscribed):
            out.subscribed = False
            after_unsubscribe = True
        elif isinstance(ev, Subscribing):
            out.subscribed = False
    return out


# ------------------------------------------------------------------ publishing
@dataclass(frozen=True)
class Outcome:
    pub_id: int
    channel: str
    node: str
    t: float
    acked: bool
    epoch: str = ""
    offset: int = 0
    error: str = ""  # "code 100", "transport", ...


async def publish_one(api: AsyncClient, node: str, channel: str, pub_id: int, clock: Callable[[], float]) -> Outcome:
    """One API publish; an acknowledgement carries the stored (epoch, offset)."""
    t = clock()
    try:
        res = await api.publish(PublishRequest(channel=channel, data={"id": pub_id}))
    except CentApiResponseError as e:
        return Outcome(pub_id, channel, node, t, False, error=f"code {e.code}")
    except (CentError, OSError, asyncio.TimeoutError) as e:
        return Outcome(pub_id, channel, node, t, False, error=type(e).__name__)
    if not res.epoch or not res.offset:
        return Outcome(pub_id, channel, node, t, False, error=f"no position in {res!r}")
    return Outcome(pub_id, channel, node, t, True, res.epoch, res.offset)


# ------------------------------------------------------------------ the rig
def rig_config(redis: RedisServer, mongo: SecantusServer) -> dict[str, Any]:
    """Redis engine, MongoDB history, the server API on, a history namespace big enough for a run."""
    ns = {**OPEN_NAMESPACE, "name": "faults", "history_size": 100000, "history_ttl": 3600,
          "force_recovery": True, "presence": True, "join_leave": False}
    # a small Redis window, so a client away for more than HOT_WINDOW / per-channel rate
    # seconds recovers partly from MongoDB (the path of issue 20's cause 2)
    return test_config(engine="redis", redis_urls=[redis.url], history="mongo", mongo_url=mongo.url,
                       mongo_database=MONGO_DB, api_key=API_KEY, namespaces=[ns], history_hot_window=HOT_WINDOW,
                       presence_ttl=PRESENCE_TTL)


@dataclass
class Report:
    scenario: str
    attempted: int = 0
    acked: int = 0
    refused: int = 0
    refused_stored: int = 0
    missing_history: list[Outcome] = field(default_factory=list)
    missing_clients: list[tuple[str, Outcome]] = field(default_factory=list)  # (pair, outcome)
    pairs: int = 0
    silent: list[tuple[str, Gap]] = field(default_factory=list)
    flagged: list[tuple[str, Flag]] = field(default_factory=list)
    duplicates: int = 0
    recoveries: int = 0
    stuck: list[str] = field(default_factory=list)
    presence: list[str] = field(default_factory=list)  # channels whose presence is not the connected clients
    subscribe_errors: dict[str, int] = field(default_factory=dict)  # what the SDK's on_error saw (it retries)
    errors: dict[str, int] = field(default_factory=dict)
    traffic_s: float = 0.0
    total_s: float = 0.0
    fault_window: tuple[float, float] = (0.0, 0.0)

    def line(self) -> str:
        errs = ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "-"
        missing = len(self.missing_history) + self.refused - self.refused_stored  # in no history at the end
        return (f"FAULTS {self.scenario}: published={self.attempted} acked={self.acked} refused={self.refused} "
                f"(stored anyway {self.refused_stored}; {errs}) missing={missing} "
                f"acked_missing_history={len(self.missing_history)} "
                f"acked_missing_clients={len(self.missing_clients)} pairs={self.pairs} "
                f"silent_gaps={len(self.silent)} flagged_gaps={len(self.flagged)} duplicates={self.duplicates} "
                f"recovered_true={self.recoveries} stuck={len(self.stuck)} presence_wrong={len(self.presence)} "
                f"subscribe_errors={sum(self.subscribe_errors.values())} "
                f"fault=t{self.fault_window[0]:.1f}-{self.fault_window[1]:.1f}s "
                f"traffic={self.traffic_s:.1f}s total={self.total_s:.1f}s")

    def details(self, limit: int = 20) -> str:
        lines = [f"  silent gap {pair}: epoch {g.epoch} offsets {g.first}..{g.last} at t={g.t:.2f}s ({g.why})"
                 for pair, g in self.silent[:limit]]
        lines += [f"  acked missing at client {pair}: id {o.pub_id} {o.channel} epoch {o.epoch} offset {o.offset} "
                  f"acked by {o.node} at t={o.t:.2f}s" for pair, o in self.missing_clients[:limit]]
        lines += [f"  acked missing in history: id {o.pub_id} {o.channel} epoch {o.epoch} offset {o.offset} "
                  f"acked by {o.node} at t={o.t:.2f}s" for o in self.missing_history[:limit]]
        lines += [f"  stuck: {s}" for s in self.stuck[:limit]]
        lines += [f"  presence: {s}" for s in self.presence[:limit]]
        lines += [f"  subscribe error x{n}: {e}" for e, n in sorted(self.subscribe_errors.items())[:limit]]
        kinds: dict[str, int] = {}
        for _, f in self.flagged:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        if kinds:
            lines.append("  flags: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
        return "\n".join(lines)


class FaultRig:
    """Two nodes, SDK subscribers on both, API publishers to both, and the final accounting."""

    def __init__(self, redis: RedisServer, mongo: SecantusServer, start_node: Callable[..., SquallProcess],  # noqa: PLR0913
                 *, channels: int = 4, clients: int = 8, roamers: int = 8, rate: float = 40.0, seed: str = "") -> None:
        self.redis = redis
        self.mongo = mongo
        self.start_node = start_node
        self.config = rig_config(redis, mongo)
        self.channels = [f"faults:ch{i}" for i in range(channels)]
        self.n_clients = clients + roamers
        self.n_steady = clients
        self.random = random.Random(seed)
        self.rate = rate
        self.nodes: list[SquallProcess] = []
        self.clients: list[Client] = []
        self.recorders: list[OffsetRecorder] = []
        self.outcomes: list[Outcome] = []
        self._t0 = time.monotonic()
        self._next_id = 0
        self.fault_window = (0.0, 0.0)  # when the fault started and when the process was back

    def clock(self) -> float:
        return time.monotonic() - self._t0

    # -------------------------------------------------------------- set-up
    async def start(self) -> None:
        self.nodes = [self.start_node(self.config), self.start_node(self.config)]
        for i in range(self.n_clients):
            node = self.nodes[i % 2]
            name = f"{'c' if i < self.n_steady else 'r'}{i}@{'AB'[i % 2]}"
            client = Client(node.ws_url, timeout=5.0, min_reconnect_delay=0.2, max_reconnect_delay=2.0)
            for ch in self.channels:
                rec = OffsetRecorder(name, "AB"[i % 2], ch, self.clock)
                client.new_subscription(ch, events=rec, recoverable=True,
                                        min_resubscribe_delay=0.2, max_resubscribe_delay=2.0)
                self.recorders.append(rec)
            await client.connect()
            for sub in client.subscriptions().values():
                await sub.subscribe()
            self.clients.append(client)
        deadline = time.monotonic() + 20
        while not all(analyse(r.events).subscribed for r in self.recorders):
            if time.monotonic() > deadline:
                waiting = [f"{r.client} {r.channel}: {r.events[-3:]} errors {r.errors[-3:]}" for r in self.recorders
                           if not analyse(r.events).subscribed]
                raise AssertionError(f"{len(waiting)} subscriptions not subscribed in 20 s:\n" + "\n".join(waiting[:10]))
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for client in self.clients:
            try:
                await asyncio.wait_for(client.disconnect(), 3)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - teardown goes on
                pass
        await asyncio.sleep(0.2)  # let the SDK's closing tasks finish before the loop goes

    def node_api(self, i: int) -> AsyncClient:
        # no connection cap: an open-loop publisher may have hundreds of requests waiting on a stalled store
        session = ClientSession(connector=TCPConnector(limit=0))
        return AsyncClient(self.nodes[i].url + "/api", API_KEY, timeout=8.0, session=session)

    # -------------------------------------------------------------- traffic
    async def traffic(self, seconds: float, fault: Callable[[], Any] | None = None, fault_at: float = 0.0,
                      max_in_flight: int = 600) -> None:
        """Publish at ``rate``/s for ``seconds`` through both nodes' APIs, running ``fault`` at ``fault_at``.

        Open loop, as independent backends publish: a publication starts on schedule
        however long earlier ones wait for their acknowledgement (bounded in flight)."""
        start = self.clock()
        end = start + seconds
        budget = int(self.rate * seconds)  # bounded in count as well as time
        apis = [self.node_api(0), self.node_api(1)]
        in_flight = asyncio.Semaphore(max_in_flight)

        async def one(pub_id: int) -> None:
            async with in_flight:
                node = pub_id % 2
                ch = self.channels[(pub_id // 2) % len(self.channels)]
                self.outcomes.append(await publish_one(apis[node], "AB"[node], ch, pub_id, self.clock))

        async def publisher() -> None:
            tasks = []
            for n in range(budget):
                await asyncio.sleep(max(0.0, start + n / self.rate - self.clock()))
                if self.clock() >= end:
                    break
                pub_id, self._next_id = self._next_id, self._next_id + 1
                tasks.append(asyncio.ensure_future(one(pub_id)))
            await asyncio.gather(*tasks)

        async def roam(client: Client) -> None:
            # a client on a bad network: online a moment, away a moment, back with recovery
            rnd = random.Random(self.random.random())
            while self.clock() < end - 1.0:
                await asyncio.sleep(rnd.uniform(0.3, 1.5))
                await client.disconnect()
                await asyncio.sleep(rnd.uniform(0.2, 3.0))
                await client.connect()

        async def run_fault() -> None:
            if fault is not None:
                await asyncio.sleep(max(0.0, start + fault_at - self.clock()))
                began = self.clock()
                res = fault()
                if asyncio.iscoroutine(res):
                    await res
                self.fault_window = (began, self.clock())

        try:
            await asyncio.gather(run_fault(), publisher(),
                                 *(roam(c) for c in self.clients[self.n_steady:]))
        finally:
            for api in apis:
                await api.close()

    # -------------------------------------------------------------- faults
    async def sigkill_redis(self, down: float) -> None:
        self.redis.stop()  # SIGKILL, no persistence: every stream is lost
        await asyncio.sleep(down)
        await asyncio.to_thread(self.redis.start)

    async def sigkill_mongo(self, down: float) -> None:
        await asyncio.to_thread(self.mongo.stop, signal.SIGKILL)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.mongo.start)

    async def stop_node(self, i: int, sig: int, down: float) -> None:
        node = self.nodes[i]
        await asyncio.to_thread(node.stop, sig, 15.0)
        await asyncio.sleep(down)
        self.nodes[i] = await asyncio.to_thread(self.start_node, self.config, port=node.port)

    # -------------------------------------------------------------- accounting
    async def final_positions(self) -> dict[str, tuple[str, int]]:
        api = self.node_api(1)
        try:
            out = {}
            for ch in self.channels:
                res = await api.history(HistoryRequest(channel=ch, limit=0))
                out[ch] = (res.epoch, res.offset)
            return out
        finally:
            await api.close()

    async def converge(self, timeout: float = 30.0) -> dict[str, tuple[str, int]]:
        """Wait until every pair is subscribed at its channel's final position (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                final = await self.final_positions()
            except (CentError, OSError, asyncio.TimeoutError):
                final = {}
            if final and all(self._caught_up(r, final[r.channel]) for r in self.recorders):
                return final
            if time.monotonic() > deadline:
                return final
            await asyncio.sleep(0.25)

    @staticmethod
    def _caught_up(rec: OffsetRecorder, final: tuple[str, int]) -> bool:
        a = analyse(rec.events)
        seg = a.current
        return a.subscribed and seg is not None and seg.epoch == final[0] and seg.last >= final[1]

    async def presence_mismatches(self, timeout: float = 3 * PRESENCE_TTL + 5) -> list[str]:
        """Channels whose presence (read through node B's API) is not exactly the connected clients,
        after waiting long enough for a dead connection's entry to expire (bounded)."""
        expected = {c.client_id for c in self.clients}
        api = self.node_api(1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                wrong = []
                for ch in self.channels:
                    try:
                        got = set((await api.presence(PresenceRequest(channel=ch))).presence)
                    except (CentError, OSError, asyncio.TimeoutError) as e:
                        wrong.append(f"{ch}: {type(e).__name__}")
                        continue
                    if got != expected:
                        wrong.append(f"{ch}: {len(got - expected)} extra, {len(expected - got)} missing "
                                     f"of {len(expected)}")
                if not wrong or time.monotonic() > deadline:
                    return wrong
                await asyncio.sleep(0.5)
        finally:
            await api.close()

    async def stored_ids(self) -> dict[str, set[Any]]:
        """Publication ids per channel in MongoDB itself (the durable history)."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo.url, serverSelectionTimeoutMS=10000)
        try:
            out: dict[str, set[Any]] = {}
            for ch in self.channels:
                docs = await client[MONGO_DB]["publications"].find({"channel": ch}, {"data": 1}).to_list()
                out[ch] = {json.loads(d["data"]).get("id") for d in docs if isinstance(d.get("data"), str)}
            return out
        finally:
            await client.close()

    async def report(self, scenario: str, traffic_s: float) -> Report:
        final = await self.converge()
        stored = await self.stored_ids()
        rep = Report(scenario, traffic_s=traffic_s, fault_window=self.fault_window)
        rep.attempted = len(self.outcomes)
        acked = [o for o in self.outcomes if o.acked]
        rep.acked = len(acked)
        rep.refused = rep.attempted - rep.acked
        for o in self.outcomes:
            if not o.acked:
                rep.errors[o.error] = rep.errors.get(o.error, 0) + 1
                rep.refused_stored += o.pub_id in stored[o.channel]
        rep.missing_history = [o for o in acked if o.pub_id not in stored[o.channel]]
        rep.pairs = len(self.recorders)
        for rec in self.recorders:
            pair = f"{rec.client} {rec.channel}"
            a = analyse(rec.events)
            rep.silent += [(pair, g) for g in a.silent]
            rep.flagged += [(pair, f) for f in a.flagged]
            rep.duplicates += a.duplicates
            rep.recoveries += a.recoveries
            for err in rec.errors:
                text = err.split(" ", 1)[1]  # without the time
                rep.subscribe_errors[text] = rep.subscribe_errors.get(text, 0) + 1
            if not self._caught_up(rec, final.get(rec.channel, ("?", 0))):
                seg = a.current
                rep.stuck.append(f"{pair}: subscribed={a.subscribed} at {seg.epoch if seg else '-'}:"
                                 f"{seg.last if seg else '-'}, channel at {final.get(rec.channel)}")
            for o in acked:
                if o.channel != rec.channel:
                    continue
                for seg in a.segments:
                    if seg.covers(o.epoch, o.offset) and seg.received.get(o.offset) != o.pub_id:
                        rep.missing_clients.append((pair, o))
        rep.presence = await self.presence_mismatches()
        rep.total_s = self.clock()
        return rep
