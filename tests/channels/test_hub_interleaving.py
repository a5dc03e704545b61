"""Every subscriber sees a gap-free stream or a flag, under any interleaving of
subscribe, publish, pub/sub arrival, loss, reconnect and recovery."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels import errors
from channels.broker import BrokerEventHandler
from channels.history import select
from channels.hub import Hub
from channels.namespaces import build_namespaces
from channels.presence_memory import MemoryPresenceManager
from channels.types import ClientInfo, HistoryQuery, HistoryResult, Publication, StreamOptions, StreamPosition

CHANNEL = "h:room"
OPEN = {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}
RECOVERY_LIMIT = 4


class GatedBroker:
    """A broker with one channel whose every await is held until the test
    releases it, and whose pub/sub pipe to this node is a queue the test
    drains (or loses) one publication at a time."""

    def __init__(self) -> None:
        self.handler: BrokerEventHandler | None = None
        self.stream: list[Publication] = []
        self.epoch = "e1"
        self.hidden: set[int] = set()  # offsets a history read does not return (a lagging durable store)
        self.listening = False
        self.inflight: deque[Publication] = deque()
        self.blocked: list[tuple[asyncio.Future[Any], Any]] = []

    async def _gate(self, then: Any) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.blocked.append((fut, then))
        return await fut

    def release(self, i: int) -> None:
        fut, then = self.blocked.pop(i)
        try:
            fut.set_result(then())  # what the backend sees is read at release time
        except errors.SquallError as e:
            fut.set_exception(e)

    # -- Broker protocol
    async def start(self, handler: BrokerEventHandler) -> None:
        self.handler = handler

    async def close(self) -> None:
        return None

    def healthy(self) -> bool:
        return True

    async def subscribe(self, channel: str) -> None:
        def on() -> None:
            self.listening = True

        await self._gate(on)

    async def unsubscribe(self, channel: str) -> None:
        self.listening = False
        self.inflight.clear()

    async def publish(self, channel: str, pub: Publication, opts: StreamOptions) -> StreamPosition:
        raise AssertionError("the model publishes directly")

    def external_publish(self) -> None:
        top = self.stream[-1].offset if self.stream else 0
        pub = Publication(data=top + 1, offset=top + 1, epoch=self.epoch)
        self.stream.append(pub)
        if self.listening:
            self.inflight.append(pub)

    def reset(self) -> None:
        """Redis lost its data: a new epoch starting again at 1."""
        self.stream, self.epoch, self.hidden = [], self.epoch + "'", set()

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._gate(lambda: None)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        return None

    async def publish_control(self, data: bytes) -> None:
        return None

    async def history(self, channel: str, query: HistoryQuery, opts: StreamOptions) -> HistoryResult:
        def read() -> HistoryResult:
            top = StreamPosition(self.stream[-1].offset if self.stream else 0, self.epoch)
            return select([p for p in self.stream if p.offset not in self.hidden], top, query)

        res: HistoryResult = await self._gate(read)
        return res

    async def remove_history(self, channel: str) -> None:
        return None

    async def new_epoch(self, channel: str) -> None:
        return None


@dataclass(eq=False)
class Client:
    """One subscription's view: what it was told and what it received."""

    id: str
    base: int = -1  # offset the stream continues from for this client (-1: not subscribed yet)
    seen: list[int] = field(default_factory=list)
    live: list[int] = field(default_factory=list)
    flagged: bool = False
    subscribed: bool = False
    epoch: str = ""

    # -- Subscriber protocol
    client_id: str = ""
    user: str = ""

    @property
    def wire_key(self) -> str:
        return "json"

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return str(body.get("offset", 0)).encode() if kind == "pub" else b""

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        if not self.flagged:  # a disconnected session writes nothing more
            self.live.append(int(data))

    def disconnect(self, code: errors.DisconnectCode, reason: str | None = None) -> None:
        assert code.code == errors.INSUFFICIENT_STATE.code
        self.flagged = True

    def last(self) -> int:
        """The last offset this client holds without a hole."""
        return self.base + len(self.seen + self.live)


class Model:
    def __init__(self) -> None:
        ns = build_namespaces({}, [{"name": "h", "history_size": 1000, "join_leave": True, **OPEN}])
        self.opts = ns.lookup(CHANNEL)
        self.broker = GatedBroker()
        self.hub = Hub(self.broker, MemoryPresenceManager(), ns, recovery_max_publication_limit=RECOVERY_LIMIT)  # type: ignore[arg-type]
        self.clients: list[Client] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def _subscribe(self, c: Client, since: StreamPosition | None) -> None:
        info = ClientInfo(client=c.id, user="")
        try:
            out = await self.hub.subscribe(c, CHANNEL, self.opts, info, recover=since is not None, since=since)
        except errors.SquallError:
            return
        assert not c.live, "a live publication reached the subscriber before its reply"
        c.subscribed = True
        c.epoch = out.position.epoch
        if out.recovered:
            assert since is not None
            c.base = since.offset
            c.seen = [p.offset for p in out.publications] + [p.offset for p in out.pending]
        else:
            c.base = out.position.offset
            c.seen = [p.offset for p in out.pending]

    def join(self) -> None:
        c = Client(id=f"c{len(self.clients)}", client_id=f"c{len(self.clients)}")
        self.clients.append(c)
        self.tasks.append(asyncio.ensure_future(self._subscribe(c, None)))

    async def reconnect(self, i: int) -> None:
        """The client leaves (or was told to) and comes back asking to recover."""
        old = self.clients[i]
        if not old.subscribed:
            return
        self._check(old)
        await self.hub.unsubscribe(old, CHANNEL)
        old.subscribed = False
        since = StreamPosition(old.last(), old.epoch)
        c = Client(id=old.id + "'", client_id=old.id + "'")
        self.clients[i] = c
        self.tasks.append(asyncio.ensure_future(self._subscribe(c, since)))

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    @staticmethod
    def _check(c: Client) -> None:
        got = c.seen + c.live
        want = list(range(c.base + 1, c.base + 1 + len(got)))
        assert got == want, f"{c.id}: silent gap or duplicate after {c.base}: {got}"

    async def finish(self) -> None:
        """Release everything, deliver everything, then check every client."""
        for _ in range(400):
            if self.broker.blocked:
                self.broker.release(0)
            elif self.broker.inflight:
                assert self.broker.handler is not None
                self.broker.handler.on_publication(CHANNEL, self.broker.inflight.popleft())
            elif not all(t.done() for t in self.tasks) or self.hub._background:
                pass
            else:
                break
            await self.settle()
        await asyncio.gather(*self.tasks)
        top = self.broker.stream[-1].offset if self.broker.stream else 0
        for c in self.clients:
            if not c.subscribed:
                continue
            self._check(c)
            if not c.flagged and c.epoch == self.broker.epoch:
                assert c.last() == top, f"{c.id} stopped at {c.last()} of {top} with no flag"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish")),
        st.tuples(st.just("deliver")),
        st.tuples(st.just("join")),
        st.tuples(st.just("release"), st.integers(0, 7)),
        st.tuples(st.just("reconnect"), st.integers(0, 7)),
        st.tuples(st.just("lose")),
        st.tuples(st.just("hide"), st.integers(1, 30)),
        st.tuples(st.just("reset")),
    ),
    max_size=60,
)


async def run_model(ops: list[tuple[Any, ...]]) -> None:
    m = Model()
    await m.hub.start()
    try:
        for op in ops:
            kind = op[0]
            if kind == "publish":
                m.broker.external_publish()
            elif kind == "deliver" and m.broker.inflight:
                assert m.broker.handler is not None
                m.broker.handler.on_publication(CHANNEL, m.broker.inflight.popleft())
            elif kind == "join" and len(m.clients) < 8:
                m.join()
            elif kind == "release" and m.broker.blocked:
                m.broker.release(op[1] % len(m.broker.blocked))
            elif kind == "reconnect" and m.clients:
                await m.reconnect(op[1] % len(m.clients))
            elif kind == "lose":
                # the pub/sub connection broke: what was on its way is lost,
                # and the broker tells the hub once it is back
                m.broker.inflight.clear()
                assert m.broker.handler is not None
                m.broker.handler.on_broker_resync()
            elif kind == "hide":
                m.broker.hidden.add(op[1])
            elif kind == "reset":
                m.broker.reset()
            await m.settle()
        await m.finish()
    finally:
        await m.hub.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_every_subscriber_sees_a_gap_free_stream_or_a_flag(ops: list[tuple[Any, ...]]) -> None:
    """Property: no interleaving gives a subscriber a silent gap, a duplicate, or a short stream."""
    asyncio.run(run_model(ops))


@pytest.mark.parametrize(
    "ops",
    [
        # A live; 1 published and in flight; B reads top=1; then 1 arrives: A must get it.
        [("join",), ("release", 0), ("release", 0), ("release", 0), ("publish",), ("join",), ("release", 0), ("release", 0), ("deliver",)],
        # The same with B recovering from 0 while 1 and 2 are in flight.
        [("join",), ("release", 0), ("release", 0), ("release", 0), ("publish",), ("publish",), ("reconnect", 0), ("release", 0), ("deliver",), ("release", 0), ("deliver",)],
        # Recovery over a hole in history must not claim recovered.
        [("join",), ("release", 0), ("release", 0), ("release", 0), ("publish",), ("deliver",), ("reconnect", 0), ("publish",), ("publish",), ("publish",), ("hide", 3), ("release", 0), ("release", 0)],
        # The first subscriber read an empty stream (top 0); 1 is lost on a
        # reconnect whose resync is still reading; 2 arrives: a gap from 0.
        [("join",), ("release", 0), ("release", 0), ("publish",), ("lose",), ("release", 0), ("publish",), ("deliver",)],
    ],
    ids=["joiner-while-in-flight", "recovery-while-in-flight", "recovery-over-hole", "gap-after-empty-stream"],
)
def test_known_interleavings(ops: list[tuple[Any, ...]]) -> None:
    """The interleavings that broke the promise before (joiner, recovering joiner, history hole, gap from 0)."""
    asyncio.run(run_model(ops))
