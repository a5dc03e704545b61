"""Lifecycle events, at least once: what they are, the outbox interface, the emitter.

Sources call :class:`EventLog` synchronously (the hub: channel occupied and
vacated, join, leave, publication; the connection lifecycle in handlers/:
connect, disconnect); it keeps their order in a small local queue that one
task pumps into the durable :class:`Outbox`. :mod:`channels.events_delivery`
reads the outbox and hands batches to the sinks registered at start-up (the
webhook, :mod:`channels.events_webhook`, and the in-process hook); an event
leaves the outbox only once every sink took it. Backends:
:mod:`channels.events_memory` (one node, lost on restart) and
:mod:`channels.events_redis` (a Redis Stream with a consumer group; channel
occupancy counted cluster-wide in Redis, so occupied/vacated come once per
cluster per transition).

Each event carries an ``id`` (unique per event, kept across retries): a
receiver drops the duplicates that at-least-once delivery may bring.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from channels.types import ClientInfo, Publication, StreamPosition

log = logging.getLogger("squall.events")

EVENT_TYPES = ("channel_occupied", "channel_vacated", "join", "leave", "connect", "disconnect", "publication")
LOCAL_QUEUE_MAX = 100_000  # events waiting for the outbox on this node (the outbox down): oldest dropped past it


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    time_ms: int
    node: str
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time_ms": self.time_ms, "node": self.node, **self.body}

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> Event:
        d = orjson.loads(raw)
        return cls(d.pop("id"), d.pop("type"), d.pop("time_ms"), d.pop("node"), d)


@dataclass(slots=True)
class EventStats:
    """Counters the metrics collector mirrors."""

    queued: int = 0  # accepted by the outbox
    sent: int = 0  # delivered to every sink
    retried: int = 0  # events in a batch that had to be tried again
    failed: int = 0  # given up (events_max_attempts) or dropped before reaching the outbox


class Outbox(Protocol):
    """Where events wait until delivered; ``receipt`` names one read event."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, events: list[Event]) -> None: ...

    async def transition(self, channel: str, occupied: bool, event: Event) -> tuple[bool, bool]:
        """This node's channel went occupied (or vacated); queue ``event`` only
        when the whole cluster did. Returns (queued, known): known is False
        when this node had no live entry (new, or swept as dead while alive)."""
        ...

    async def heartbeat(self, ttl: float) -> bool:
        """This node lives ``ttl`` seconds more; False when it had no live entry."""
        ...

    async def sweep(self, id_base: str) -> int:
        """Report vacated the channels that only expired nodes held (once per
        cluster); event ids start with ``id_base``. The number reported."""
        ...

    async def read(self, count: int, block: float) -> list[tuple[str, Event]]:
        """Up to ``count`` undelivered events (waiting up to ``block`` seconds)."""
        ...

    async def touch(self, receipts: list[str]) -> None:
        """Still delivering these (so no other node takes them over)."""
        ...

    async def ack(self, receipts: list[str]) -> None: ...


class HubEvents(Protocol):
    """What the hub reports (set as ``hub.events`` at start-up; :class:`EventLog` is one)."""

    def occupied(self, channel: str) -> None: ...

    def vacated(self, channel: str) -> None: ...

    def join(self, channel: str, info: ClientInfo) -> None: ...

    def leave(self, channel: str, info: ClientInfo) -> None: ...

    def publication(self, channel: str, pub: Publication, pos: StreamPosition) -> None: ...

    def heartbeat(self, ttl: float) -> None:
        """The hub's heartbeat: this node is alive for ``ttl`` seconds more."""
        ...


@dataclass(slots=True)
class _Transition:
    channel: str
    occupied: bool
    event: Event


class EventLog:
    """The emitter: sync calls from the sources, one pump task to the outbox."""

    def __init__(self, outbox: Outbox, node_id: str, types: tuple[str, ...], stats: EventStats | None = None) -> None:
        self.outbox = outbox
        self.node_id = node_id
        self.types = frozenset(types)
        self.stats = stats or EventStats()
        self._queue: deque[Event | _Transition] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._occupied: set[str] = set()  # this node's occupied channels, as of the queue's end
        self._beat: asyncio.Task[None] | None = None
        self._registered = False  # the outbox has had a live entry for this node (so it can lose it)

    def wants(self, kind: str) -> bool:
        return kind in self.types

    # ------------------------------------------------------------ sources
    def emit(self, kind: str, **body: Any) -> None:
        if kind in self.types:
            self._push(self._event(kind, body))

    def _tracks_occupancy(self) -> bool:
        return "channel_occupied" in self.types or "channel_vacated" in self.types

    def occupied(self, channel: str) -> None:
        if self._tracks_occupancy():
            self._occupied.add(channel)
            self._push(_Transition(channel, True, self._event("channel_occupied", {"channel": channel})))

    def vacated(self, channel: str) -> None:
        if self._tracks_occupancy():
            self._occupied.discard(channel)
            self._push(_Transition(channel, False, self._event("channel_vacated", {"channel": channel})))

    def _entry(self, known: bool) -> None:
        """After an outbox call that refreshed this node's entry: when it had
        expired (the node may have been swept as dead), claim its channels
        again; a channel it still holds is no event. A new node has none to lose."""
        lost, self._registered = self._registered and not known, True
        if not lost:
            return
        log.warning("events: this node's occupancy entry had expired: reporting its %d channels again", len(self._occupied))
        for channel in sorted(self._occupied):
            self._push(_Transition(channel, True, self._event("channel_occupied", {"channel": channel})))

    def heartbeat(self, ttl: float) -> None:
        """Refresh this node's occupancy entry and sweep dead nodes' (in the
        background, one at a time, so a slow outbox never delays the hub)."""
        if self._tracks_occupancy() and not self._closing and (self._beat is None or self._beat.done()):
            self._beat = asyncio.ensure_future(self._heartbeat(ttl))

    async def _heartbeat(self, ttl: float) -> None:
        try:
            self._entry(await self.outbox.heartbeat(ttl))
            swept = await self.outbox.sweep(uuid.uuid4().hex)
            self.stats.queued += swept
            if swept:
                log.info("events: %d channels of expired nodes reported vacated", swept)
        except Exception as e:  # the outbox is unreachable: the next heartbeat tries again
            log.warning("events: occupancy heartbeat failed: %s", e)

    def join(self, channel: str, info: ClientInfo) -> None:
        if "join" in self.types:
            self._push(self._event("join", {"channel": channel, "info": info.to_dict()}))

    def leave(self, channel: str, info: ClientInfo) -> None:
        if "leave" in self.types:
            self._push(self._event("leave", {"channel": channel, "info": info.to_dict()}))

    def publication(self, channel: str, pub: Publication, pos: StreamPosition) -> None:
        if "publication" in self.types:
            body: dict[str, Any] = {"channel": channel, "data": pub.data if not isinstance(pub.data, bytes) else None}
            if pos.offset:
                body["offset"], body["epoch"] = pos.offset, pos.epoch
            if pub.info is not None:
                body["info"] = pub.info.to_dict()
            self._push(self._event("publication", body))

    def _event(self, kind: str, body: dict[str, Any]) -> Event:
        return Event(uuid.uuid4().hex, kind, int(time.time() * 1000), self.node_id, body)

    def _push(self, item: Event | _Transition) -> None:
        if len(self._queue) >= LOCAL_QUEUE_MAX:
            self._queue.popleft()
            self.stats.failed += 1
        self._queue.append(item)
        self._wake.set()

    # ------------------------------------------------------------ pump
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._pump())

    async def close(self, timeout: float = 3.0) -> None:
        """Flush what is queued (bounded by ``timeout``), then stop."""
        self._closing = True
        self._wake.set()
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            self._task = None

    async def _pump(self) -> None:
        delay = 0.05
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._flush_some()
                delay = 0.05
            except Exception as e:  # the outbox is unreachable: keep the queue, retry
                if self._closing:
                    log.warning("events: %d not queued at shutdown: %s", len(self._queue), e)
                    return
                log.warning("events: outbox unavailable (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _flush_some(self) -> None:
        """The queue's head, in order: a run of plain events in one put, or one transition."""
        head = self._queue[0]
        if isinstance(head, _Transition):
            queued, known = await self.outbox.transition(head.channel, head.occupied, head.event)
            self._queue.popleft()
            if queued:
                self.stats.queued += 1
            self._entry(known)
            return
        run: list[Event] = []
        for item in self._queue:
            if isinstance(item, _Transition) or len(run) >= 500:
                break
            run.append(item)
        await self.outbox.put(run)
        for _ in run:
            self._queue.popleft()
        self.stats.queued += len(run)


@dataclass(slots=True)
class NoEvents:
    """What sources call when no event is recorded (events_types empty)."""

    types: frozenset[str] = field(default_factory=frozenset)

    def wants(self, kind: str) -> bool:
        return False

    def emit(self, kind: str, **body: Any) -> None:
        pass
