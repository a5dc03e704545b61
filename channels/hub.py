"""The hub: this node's subscriptions and the fan-out written once.

Backends call up into the hub only through :class:`BrokerEventHandler`
methods; connections receive deliveries only through
:class:`channels.transport.Subscriber`. The hub knows nothing of sockets or
wire formats: it asks each subscriber to encode, once per ``wire_key``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


from channels import errors, fanout, positioning, recovery, resync
from channels.broker import Broker
from channels.clients import ClientRegistry
from channels.control_bus import ControlBus, ControlHandler
from channels.delta_fanout import Delivery
from channels.events import HubEvents
from channels.errors import BackendUnavailable
from channels.namespaces import NamespaceOptions, Namespaces
from channels.nodes import NodeInfo, NodeRegistry
from channels.positioning import SubscribeOutcome
from channels.presence import PresenceManager
from channels.presence_local import LocalPresence
from channels.stream_state import ChannelState, Verdict
from channels.tracing import Tracer
from channels.transport import Subscriber
from channels.types import (
    ClientInfo,
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamPosition,
)

log = logging.getLogger("squall.hub")



@dataclass(slots=True)
class HubStats:
    """Plain counters read by the metrics collector; no locking needed."""

    publications: int = 0
    deliveries: int = 0
    joins: int = 0
    leaves: int = 0
    gaps: int = 0
    recovered: int = 0
    not_recovered: int = 0
    # why recoveries fell back to ``recovered: false`` (recovery.REASONS)
    not_recovered_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(recovery.REASONS, 0))
    # subscribers that went live at a position the live flow had not reached
    ahead_joins: int = 0


class Hub(ClientRegistry):
    """Subscriptions, fan-out, presence and history for this node, on top of
    its registry of connections."""

    NODE_HEARTBEAT = 3.0
    NODE_EXPIRE = 10.0

    def __init__(
        self,
        broker: Broker,
        presence: PresenceManager,
        namespaces: Namespaces,
        *,
        node_id: str = "",
        node_name: str = "",
        presence_ttl: float = 60.0,
        recovery_max_publication_limit: int = 1000,
        tracer: Tracer | None = None,
    ) -> None:
        super().__init__()
        self.broker = broker
        self.presence_manager = presence
        self._presence = LocalPresence(presence)
        self.namespaces = namespaces
        self.node_id = node_id or uuid.uuid4().hex
        self.node_name = node_name or self.node_id[:8]
        self.presence_ttl = presence_ttl
        self.recovery_limit = recovery_max_publication_limit
        self.tracer = tracer  # None: tracing off (channels.tracing)
        self.stats = HubStats()
        self._channels: dict[str, ChannelState] = {}
        self._control = ControlBus()
        self._nodes = NodeRegistry(self.node_id, self.NODE_EXPIRE)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._closing = False
        self.inflight = 0  # client commands being processed (graceful shutdown waits)
        self.events: HubEvents | None = None  # lifecycle events (channels.events), set at start-up

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.presence_manager.start()
        await self.broker.start(self)
        self.register_control("node", self._on_node_control)
        self._tasks.append(asyncio.ensure_future(self._heartbeat_loop()))

    async def close(self) -> None:
        self._closing = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        await self.broker.close()
        await self.presence_manager.close()

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until done."""
        fut = asyncio.ensure_future(coro)
        self._background.add(fut)
        fut.add_done_callback(self._background_done)

    def _background_done(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("background task failed", exc_info=fut.exception())

    async def drain_background(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def register_control(self, op: str, handler: ControlHandler) -> None:
        """Upper layers handle node-to-node control ops (disconnect, subscribe...)."""
        self._control.register(op, handler)

    async def send_control(self, op: str, **payload: Any) -> None:
        await self.broker.publish_control(ControlBus.pack(op, payload))

    @property
    def num_channels(self) -> int:
        return len(self._channels)

    @property
    def num_subscriptions(self) -> int:
        return sum(len(c.subs) for c in self._channels.values())

    def channel_counts(self) -> dict[str, int]:
        """Channel -> local subscriber count."""
        return {name: len(c.subs) for name, c in self._channels.items()}

    # ------------------------------------------------------------ subscribe
    async def update_info(self, sub: Subscriber, channels: list[str], info: ClientInfo) -> None:
        """``sub``'s info changed (a server-side refresh): its presence entries in
        ``channels`` say so from now on (the heartbeat retries a failed add)."""
        for channel in channels:
            await self._presence.update(channel, info)

    async def subscribe(
        self,
        sub: Subscriber,
        channel: str,
        opts: NamespaceOptions,
        info: ClientInfo,
        *,
        recover: bool = False,
        since: StreamPosition | None = None,
        join_leave: bool = False,
        recoverable: bool = False,
        observe: bool = False,
        delivery: Delivery | None = None,
    ) -> SubscribeOutcome:
        """Subscribe ``sub`` and return what the subscribe reply needs.

        The subscriber is buffered while the stream position is read, so no
        publication can fall between the position and the live flow. With
        ``observe`` it only watches: no presence entry, no join or leave.
        """
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = ChannelState(opts)
        ch.recovering[sub] = []
        try:
            if ch.ready is None or not ch.ready.done():  # a done one succeeded (a failure resets it)
                await self._ensure_broker_sub(channel, ch)
            if opts.stream.enabled:
                out = await positioning.read(
                    self.broker, channel, opts, since=since if recover else None, recoverable=recoverable,
                    limit=self.recovery_limit,
                )
            else:  # no stream: nothing to read (positioning.read would say the same)
                out = SubscribeOutcome()
            if out.was_recovering:
                if out.recovered:
                    self.stats.recovered += 1
                else:
                    self.stats.not_recovered += 1
                    self.stats.not_recovered_by[out.refused] += 1
            if opts.stream.enabled and not ch.adopt(out.position.epoch, out.position.offset):
                self._stream_broken(channel, ch, "stream reset (new epoch)")
        except BaseException:
            ch.recovering.pop(sub, None)
            await self._maybe_drop_channel(channel)
            raise
        # Presence and join go out before the subscriber turns live, so the
        # caller can write its reply before any live publication.
        if opts.presence and not observe:
            await self._presence.add(channel, info)
        if opts.join_leave and not observe:
            try:
                await self.broker.publish_join(channel, info)
            except BackendUnavailable:
                log.warning("join publish failed for %s", channel)
        buffered = ch.recovering.pop(sub, [])
        top = out.position.offset
        if out.publications:
            top = max(top, out.publications[-1].offset)
        # what the reply's publications (up to ``top``) do not hold
        pending = ch.go_live(sub, out.position.epoch, top, buffered)
        ch.subs[sub] = join_leave or opts.force_push_join_leave
        if delivery is not None:  # deltas or a tags filter: channels.delta_fanout
            ch.special[sub] = delivery
        if observe:
            ch.observers.add(sub)
        elif self.events is not None:
            # occupied: the first subscriber that is not an observer (the admin UI's watch)
            if len(ch.subs) - len(ch.observers) == 1:
                self.events.occupied(channel)
            self.events.join(channel, info)
        if pending is None:
            # the live flow broke while this subscriber read its position
            self.stats.gaps += 1
            log.warning("stream of %s moved on during a subscribe: %s must recover", channel, sub.client_id)
            sub.disconnect(errors.INSUFFICIENT_STATE)
        else:
            out.pending = pending
            if sub in ch.ahead:
                self.stats.ahead_joins += 1
        return out

    async def _ensure_broker_sub(self, channel: str, ch: ChannelState) -> None:
        if ch.ready is None:
            ch.ready = asyncio.get_running_loop().create_future()
            try:
                await self.broker.subscribe(channel)
            except BaseException as e:
                fut, ch.ready = ch.ready, None
                fut.set_exception(e if isinstance(e, Exception) else BackendUnavailable())
                fut.exception()  # consumed here; waiters re-raise
                raise
            ch.ready.set_result(None)
        elif not ch.ready.done():
            await asyncio.shield(ch.ready)

    async def unsubscribe(self, sub: Subscriber, channel: str, info: ClientInfo | None = None) -> None:
        ch = self._channels.get(channel)
        if ch is None or sub not in ch.subs:
            return
        observer = sub in ch.observers
        ch.remove(sub)
        if self.events is not None and not observer:
            # reported at once, in order with this node's other transitions of the channel
            if info is not None:
                self.events.leave(channel, info)
            if len(ch.subs) == len(ch.observers):
                self.events.vacated(channel)
        opts = ch.opts
        if observer:
            await self._maybe_drop_channel(channel)
            return
        if opts.presence:
            await self._presence.remove(channel, sub.client_id)
        if opts.join_leave and info is not None and not self._closing:
            try:
                await self.broker.publish_leave(channel, info)
            except BackendUnavailable:
                log.warning("leave publish failed for %s", channel)
        await self._maybe_drop_channel(channel)

    async def _maybe_drop_channel(self, channel: str) -> None:
        ch = self._channels.get(channel)
        if ch is None or ch.subs or ch.recovering:
            return
        del self._channels[channel]
        if ch.ready is not None and ch.ready.done() and not ch.ready.exception():
            try:
                await self.broker.unsubscribe(channel)
            except BackendUnavailable:
                log.warning("broker unsubscribe failed for %s", channel)

    def is_subscribed(self, sub: Subscriber, channel: str) -> bool:
        ch = self._channels.get(channel)
        return ch is not None and sub in ch.subs

    # ------------------------------------------------------------ publish
    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        info: ClientInfo | None = None,
        tags: dict[str, str] | None = None,
        opts: NamespaceOptions | None = None,
    ) -> StreamPosition:
        """Publish through the broker; returns once stored (history channels)."""
        if opts is None:
            opts = self.namespaces.lookup(channel)
        pub = Publication(data=data, info=info, tags=tags, time=int(time.time() * 1000))
        tracer = self.tracer
        if tracer is None:
            pos = await self.broker.publish(channel, pub, opts.stream)
        else:
            with tracer.span("squall.publish", {"channel": channel, "node": self.node_id}):
                pos = await self.broker.publish(channel, pub, opts.stream)
        self.stats.publications += 1
        if self.events is not None:
            self.events.publication(channel, pub, pos)
        return pos

    async def history(self, channel: str, query: HistoryQuery, opts: NamespaceOptions | None = None) -> HistoryResult:
        if opts is None:
            opts = self.namespaces.lookup(channel)
        if not opts.stream.enabled:
            raise errors.NotAvailable()
        return await self.broker.history(channel, query, opts.stream)

    async def remove_history(self, channel: str) -> None:
        await self.broker.remove_history(channel)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return await self.presence_manager.presence(channel)

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        return await self.presence_manager.stats(channel)

    # ------------------------------------------------------------ broker events
    def on_publication(self, channel: str, pub: Publication) -> None:
        ch = self._channels.get(channel)
        if ch is None:
            return
        verdict = ch.accept(pub)
        if verdict is not Verdict.DELIVER:
            if verdict is not Verdict.DUPLICATE:
                self._stream_broken(channel, ch, verdict.value)
            return
        ch.last_pub = pub
        for buf in ch.recovering.values():
            buf.append(pub)
        if ch.subs:
            tracer = self.tracer  # the one check per publication while tracing is off
            if tracer is None:
                self.stats.deliveries += fanout.publication(ch, channel, pub)
            else:
                with tracer.span("squall.fanout", {"channel": channel, "offset": pub.offset, "node": self.node_id}) as span:
                    n = fanout.publication(ch, channel, pub)
                    span.set_attribute("deliveries", n)
                self.stats.deliveries += n

    def _stream_broken(self, channel: str, ch: ChannelState, why: str) -> None:
        """Local subscribers may have missed publications: make them recover."""
        self.stats.gaps += 1
        log.warning("stream of %s broken (%s): %d subscribers must recover", channel, why, len(ch.subs))
        for sub in list(ch.subs):
            sub.disconnect(errors.INSUFFICIENT_STATE)

    def on_join(self, channel: str, info: ClientInfo) -> None:
        self.stats.joins += 1
        ch = self._channels.get(channel)
        if ch is not None:
            fanout.join_leave(ch, channel, "join", info)

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self.stats.leaves += 1
        ch = self._channels.get(channel)
        if ch is not None:
            fanout.join_leave(ch, channel, "leave", info)

    def on_control(self, data: bytes) -> None:
        self._control.dispatch(data)

    def on_broker_resync(self) -> None:
        """The broker reconnected: check every stream for what we may have missed."""
        self.spawn(self._resync())

    async def _resync(self) -> None:
        """Subscribers of a stream that moved on (or lost what was delivered)
        must recover; the others keep their connection (channels.resync)."""
        for channel, ch in list(self._channels.items()):
            if not ch.opts.stream.enabled or self._channels.get(channel) is not ch:
                continue
            why = await resync.check(self.broker, channel, ch)
            if why:
                self._stream_broken(channel, ch, why)

    def local_presence(self) -> dict[str, dict[str, ClientInfo]]:
        """What this node must keep refreshed in the presence backend."""
        return self._presence.entries()

    # ------------------------------------------------------------ nodes
    def nodes(self) -> list[NodeInfo]:
        return self._nodes.nodes(self._self_info())

    def _self_info(self) -> NodeInfo:
        return NodeInfo(
            uid=self.node_id,
            name=self.node_name,
            num_clients=self.num_clients,
            num_users=self.num_users,
            num_subs=self.num_subscriptions,
            num_channels=self.num_channels,
            updated=time.monotonic(),
        )

    def _on_node_control(self, msg: dict[str, Any]) -> None:
        self._nodes.heard(msg)

    async def _heartbeat_loop(self) -> None:
        """Announce this node and refresh its presence entries."""
        while True:
            if self.events is not None:  # its channel occupancy too (a dead node's expires: channels.events_redis)
                self.events.heartbeat(self.presence_ttl)
            try:
                await self.send_control("node", **self._self_info().to_dict())
                await self._presence.refresh()
            except BackendUnavailable:
                log.debug("heartbeat skipped: backend unavailable")
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(min(self.NODE_HEARTBEAT, self.presence_ttl / 3))
