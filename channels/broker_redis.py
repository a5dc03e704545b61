"""Redis broker: many Squall nodes behave as one.

Only talks to Redis; the fan-out to connections stays in the hub. The moving
parts live in their own modules: :mod:`channels.redis_shards` (buckets, keys,
pooled command clients), :mod:`channels.redis_pubsub` (one pub/sub
connection per server, liveness ping, reconnects), :mod:`channels.redis_scripts`
(the atomic steps) and :mod:`channels.redis_persist` (the road to the durable
history store). See docs/REDIS.md for the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from typing import Any, Awaitable, Sequence

from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError

from channels import redis_envelope as envelope
from channels import tracing
from channels.broker import BrokerEventHandler
from channels.errors import BackendUnavailable
from channels.history import HistoryStore
from channels.history import new_epoch
from channels.redis_envelope import BadEnvelope
from channels.redis_errors import redis_call
from channels.redis_persist import GROUP, PersistLog, pack_options
from channels.redis_pubsub import PubSubLink
from channels.redis_history import StreamReader, seconds, text
from channels.redis_batch import CommandPipeline, Commands
from channels.redis_scripts import PUBLISH
from channels.resp_template import OPEN, CommandTemplate
from channels.redis_shards import ChannelKeys, Endpoint, RedisShards
from channels.types import (
    ClientInfo,
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)

log = logging.getLogger("squall.redis.broker")

OPTS_CACHE = 256  # distinct stream options whose script arguments are kept (namespaces have one each)
TEMPLATES_CACHE = 10_000  # channels whose packed publish command is kept (as RedisShards keeps key names)


class RedisBroker:
    """Broker over one or more Redis servers (or one Redis Cluster)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix: str,
        node_id: str,
        history: HistoryStore | None,
        hot_window: int,
        cluster: bool,
        socket_timeout: float = 1.0,
        ping_interval: float = 3.0,
        ping_timeout: float = 5.0,
        reconnect_cap: float = 2.0,
        claim_interval: float = 2.0,
        claim_min_idle: float = 5.0,
        write_timeout: float = 5.0,
        tracer: tracing.Tracer | None = None,
    ) -> None:
        self.node_id = node_id
        self._tracer = tracer  # None: tracing off
        self._node = node_id.encode()
        self._history = history
        self._hot_window = max(1, hot_window)
        self._cluster = cluster
        self._shards = RedisShards(
            urls, prefix=prefix, cluster=cluster, socket_timeout=socket_timeout, connect_timeout=socket_timeout
        )
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._reconnect_cap = reconnect_cap
        self._connect_wait = socket_timeout * 3
        self._publish_script = self._shards.commands(0).script(PUBLISH)
        self._reader = StreamReader(self._shards, history, self._initial_top)
        self._persist = (
            PersistLog(
                self._shards,
                history,
                node_id=node_id,
                min_idle=claim_min_idle,
                interval=claim_interval,
                write_timeout=write_timeout,
            )
            if history is not None
            else None
        )
        self._handler: BrokerEventHandler | None = None
        self._links: list[PubSubLink] = []
        self._link_of_bucket: dict[int, PubSubLink] = {}
        self._layout_check: asyncio.Task[None] | None = None
        self._layout_again = False  # trouble reported while a check ran
        self.relinks = 0  # cluster layout changes followed
        self._topics: dict[bytes, str] = {}  # subscribed topic -> channel
        self._top_reads: dict[str, asyncio.Future[int]] = {}  # channel -> the durable store's top, being read
        self._tasks: list[asyncio.Task[None]] = []
        # cumulative stats read by the metrics sampler (count + sum = mean)
        self.publish_count = 0
        self.publish_seconds = 0.0
        self._opts_args: dict[StreamOptions, tuple[int, int, int, bytes]] = {}  # _stream_args
        self._templates: dict[str, tuple[StreamOptions, CommandTemplate]] = {}  # _publish_call
        self.lag_count = 0
        self.lag_seconds = 0.0  # publication time -> arrival here, for stamped publications

    # ------------------------------------------------------------ lifecycle
    async def start(self, handler: BrokerEventHandler) -> None:
        """Connect; when Redis is down the links keep retrying in the background."""
        self._handler = handler
        # The durable store is started and closed by the server's assembly.
        with redis_call("cluster discovery"):
            await self._shards.start()
        self._install_links(self._shards.endpoints())
        await asyncio.gather(*(link.start(self._connect_wait) for link in self._links))
        if self._persist is not None:
            self._tasks.append(asyncio.ensure_future(self._persist.run()))

    def _install_links(self, endpoints: list[Endpoint]) -> list[PubSubLink]:
        """One link per endpoint (not started), each bucket routed to its
        endpoint's link; returns the links replaced."""
        old = self._links
        self._links, self._link_of_bucket = [], {}
        control = self._shards.control_topic
        for ep in endpoints:
            first = ep.buckets[0]
            link = PubSubLink(
                ep.name,
                ep.factory,
                ping_topic=self._shards.node_topic(first, self.node_id),
                pinned=[control] if 0 in ep.buckets else [],
                on_message=self._on_message,
                on_resync=self._on_resync,
                publish_ping=functools.partial(self._shards.publish, first),
                backoff=EqualJitterBackoff(cap=self._reconnect_cap, base=0.05),
                sharded=self._cluster,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                confirm_timeout=self._connect_wait,
                on_trouble=self._on_link_trouble if self._cluster else None,
            )
            self._links.append(link)
            for b in ep.buckets:
                self._link_of_bucket[b] = link
        return old

    # ------------------------------------------------------------ cluster layout
    def _on_link_trouble(self) -> None:
        """A link failed to connect, lost its session or had a topic dropped:
        maybe a failover or a slot migration moved its buckets."""
        if self._layout_check is not None and not self._layout_check.done():
            self._layout_again = True
            return
        self._layout_check = asyncio.ensure_future(self._check_layout())

    async def _check_layout(self) -> None:
        while True:
            self._layout_again = False
            try:
                await self._follow_layout()
            except (RedisError, OSError, asyncio.TimeoutError, BackendUnavailable) as e:
                log.warning("cluster layout check failed: %s", e)  # the next trouble retries
            if not self._layout_again:
                return
            await asyncio.sleep(min(1.0, self._reconnect_cap))

    async def _follow_layout(self) -> None:
        """Re-read the slot map; if a bucket's primary changed, move every
        topic to links for the new layout and resync (messages may have been
        lost in between, so subscribers recover)."""
        with redis_call("cluster layout"):
            await self._shards.refresh_layout()
        endpoints = self._shards.endpoints()
        current = {b: link.name for b, link in self._link_of_bucket.items()}
        if {b: ep.name for ep in endpoints for b in ep.buckets} == current:
            return
        old = self._install_links(endpoints)
        self.relinks += 1
        log.warning("redis cluster layout changed: pub/sub moves to %s", ", ".join(ep.name for ep in endpoints))
        by_link: dict[PubSubLink, list[bytes]] = {}
        for topic, channel in self._topics.items():
            by_link.setdefault(self._link_of_bucket[self._shards.keys(channel).bucket], []).append(topic)
        for link, topics in by_link.items():
            link.want(topics)
        for link in old:
            await link.close()
        await asyncio.gather(*(link.start(self._connect_wait) for link in self._links))
        self._on_resync()

    async def close(self) -> None:
        if self._layout_check is not None:
            self._layout_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._layout_check
            self._layout_check = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        for link in self._links:
            await link.close()
        self._links.clear()
        await self._shards.close()

    def healthy(self) -> bool:
        return bool(self._links) and all(link.connected for link in self._links)

    @property
    def persist_fills(self) -> int:
        """Offsets history reads took from the persist log (metrics)."""
        return self._reader.persist_fills

    @property
    def reconnects(self) -> int:
        return sum(link.reconnects for link in self._links)

    # ------------------------------------------------------------ interest
    async def subscribe(self, channel: str) -> None:
        keys = self._shards.keys(channel)
        self._topics[keys.topic] = channel
        try:
            await self._link_of_bucket[keys.bucket].subscribe(keys.topic)
        except BaseException:
            self._topics.pop(keys.topic, None)
            raise

    async def unsubscribe(self, channel: str) -> None:
        keys = self._shards.keys(channel)
        self._topics.pop(keys.topic, None)
        self._link_of_bucket[keys.bucket].unsubscribe(keys.topic)

    # ------------------------------------------------------------ incoming
    def _on_message(self, topic: bytes, data: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            env = envelope.unpack(data)
            if topic == self._shards.control_topic:
                if env.node != self._node:  # our own was delivered directly
                    handler.on_control(env.payload)
                return
            channel = self._topics.get(topic)
            if channel is None:
                return  # unsubscribed meanwhile
            if env.kind == envelope.PUBLICATION:
                p, tp = envelope.traced_publication(env)
                if p.time:
                    self.lag_count += 1
                    self.lag_seconds += max(0.0, time.time() - p.time / 1000.0)
                tracer = self._tracer
                if tp is None or tracer is None:
                    handler.on_publication(channel, p)
                else:  # the hub's fan-out span becomes a child of the publisher's
                    with tracer.remote_parent(tp):
                        handler.on_publication(channel, p)
            elif env.kind == envelope.JOIN:
                handler.on_join(channel, envelope.client_info(env))
            elif env.kind == envelope.LEAVE:
                handler.on_leave(channel, envelope.client_info(env))
        except BadEnvelope as e:
            log.warning("dropping unreadable message on %r: %s", topic, e)

    def _on_resync(self) -> None:
        if self._handler is not None:
            self._handler.on_broker_resync()

    # ------------------------------------------------------------ publish
    def _window_size(self, opts: StreamOptions) -> int:
        if self._history is None:
            return opts.history_size  # Redis is the only history
        return min(self._hot_window, opts.history_size)

    async def _initial_top(self, channel: str) -> int:
        """Where a stream without an epoch in Redis starts counting.

        Concurrent callers for one channel share one read and resume in the
        order they asked, so publishes sent again after ``{-1}`` reach Redis
        in the order they were first queued.
        """
        if self._history is None:
            return 0
        read = self._top_reads.get(channel)
        if read is None:
            read = self._top_reads[channel] = asyncio.ensure_future(self._read_initial_top(channel))
            read.add_done_callback(lambda _: self._top_reads.pop(channel, None))
        return await asyncio.shield(read)

    async def _read_initial_top(self, channel: str) -> int:
        assert self._history is not None
        try:
            return (await self._history.position(channel)).offset
        except BackendUnavailable:
            raise
        except Exception as e:
            raise BackendUnavailable(f"history store position failed: {e}") from e

    def _stream_args(self, opts: StreamOptions) -> tuple[int, int, int, bytes]:
        """The script's per-namespace arguments, worked out once per options
        (a namespace has one; the publish path asks per publication)."""
        found = self._opts_args.get(opts)
        if found is None:
            if len(self._opts_args) >= OPTS_CACHE:
                self._opts_args.clear()
            found = (self._window_size(opts), seconds(opts.history_ttl), seconds(opts.meta_ttl), pack_options(opts))
            self._opts_args[opts] = found
        return found

    async def publish(self, channel: str, pub: Publication, opts: StreamOptions) -> StreamPosition:
        # One coroutine, timing included: each frame more on this path is one
        # more to resume per publication.
        started = time.perf_counter()
        keys = self._shards.keys(channel)
        record = envelope.record_payload(pub, None if self._tracer is None else self._tracer.traceparent())
        if not opts.enabled:
            data = envelope.pack(self.node_id, envelope.PUBLICATION, record)
            with redis_call("publish"):
                await self._shards.publish(keys.bucket, keys.topic, data)
            pos = StreamPosition()
        else:
            persist = self._persist is not None
            commands = self._shards.commands(keys.bucket)
            fresh = new_epoch()
            with redis_call("publish"):
                res = await self._publish_call(commands, channel, keys, opts, record, fresh, -1 if persist else 0)
            if res[0] == -1:
                top = await self._initial_top(channel)
                with redis_call("publish"):
                    res = await self._publish_call(commands, channel, keys, opts, record, fresh, top)
            offset, epoch = int(res[0]), text(res[1])
            if persist:
                stored = dataclasses.replace(pub, offset=offset, epoch=epoch)
                await self._persist_one(channel, keys, stored, opts, res[2])
            pos = StreamPosition(offset, epoch)
        self.publish_count += 1
        self.publish_seconds += time.perf_counter() - started
        return pos

    def _publish_args(
        self, channel: str, keys: ChannelKeys, opts: StreamOptions, record: object, epoch: object, top: object
    ) -> tuple[list[Any], list[Any]]:
        """The PUBLISH script's keys and arguments (redis_scripts.PUBLISH reads them in this order)."""
        persist = self._persist is not None
        window, ttl, meta_ttl, packed = self._stream_args(opts)
        args: list[Any] = [
            keys.topic, self.node_id, record, window, ttl, meta_ttl, epoch,
            top, "1" if persist else "0", GROUP, packed, channel, "1" if self._cluster else "0",
        ]
        return [keys.meta, keys.window, keys.persist], args

    def _publish_call(
        self, commands: Commands, channel: str, keys: ChannelKeys, opts: StreamOptions, record: bytes, epoch: str, top: int
    ) -> Awaitable[Any]:
        """The PUBLISH script's call, queued; what it returns is awaited for the reply.

        On a pipeline the command is packed from the channel's template (only
        the record, the epoch and the top change between its publications);
        a cluster's direct calls take the arguments."""
        if isinstance(commands, CommandPipeline):
            found = self._templates.get(channel)
            if found is not None and (found[0] is opts or found[0] == opts):
                template = found[1]
            else:
                if len(self._templates) >= TEMPLATES_CACHE:
                    self._templates.clear()
                script_keys, args = self._publish_args(channel, keys, opts, OPEN, OPEN, OPEN)
                template = CommandTemplate(("EVALSHA", self._publish_script.sha, len(script_keys), *script_keys, *args))
                self._templates[channel] = (opts, template)
            return commands.run_packed(self._publish_script, template.fill(record, epoch.encode(), b"%d" % top))
        script_keys, args = self._publish_args(channel, keys, opts, record, epoch, top)
        return commands.run_script(self._publish_script, script_keys, args)

    async def _persist_one(
        self, channel: str, keys: ChannelKeys, pub: Publication, opts: StreamOptions, entry_id: bytes
    ) -> None:
        assert self._persist is not None
        try:
            with tracing.span(self._tracer, "squall.history.write", channel=channel, offset=pub.offset, node=self.node_id):
                await self._persist.write(channel, [pub], opts)
        except Exception as e:  # the store's own error types are unknown here
            # Delivered live already; the entry stays pending and a claimer
            # retries it, but this caller must hear that it is not durable yet.
            log.warning("durable write of %s@%d failed: %s", channel, pub.offset, e)
            raise BackendUnavailable("history store write failed") from e
        try:
            await self._persist.ack(keys.bucket, [entry_id])
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            # Stored; a claimer will persist it again (idempotent) and ack it.
            log.info("persist ack of %s@%d failed: %s", channel, pub.offset, e)

    async def _publish_info(self, channel: str, kind: bytes, info: ClientInfo) -> None:
        keys = self._shards.keys(channel)
        data = envelope.pack(self.node_id, kind, envelope.pack_payload(info.to_dict()))
        with redis_call("publish"):
            await self._shards.publish(keys.bucket, keys.topic, data)

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._publish_info(channel, envelope.JOIN, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._publish_info(channel, envelope.LEAVE, info)

    async def publish_control(self, data: bytes) -> None:
        """Other nodes hear it through Redis; this node directly (its echo is dropped)."""
        with redis_call("publish"):
            await self._shards.publish(0, self._shards.control_topic, envelope.pack(self.node_id, envelope.CONTROL, data))
        assert self._handler is not None, "broker not started"
        self._handler.on_control(data)

    # ------------------------------------------------------------ history
    async def history(self, channel: str, query: HistoryQuery, opts: StreamOptions) -> HistoryResult:
        return await self._reader.history(channel, query, opts)

    async def new_epoch(self, channel: str) -> None:
        """Drop the epoch: the next publish or position read creates a fresh one (and drops the window)."""
        keys = self._shards.keys(channel)
        with redis_call("new epoch"):
            await self._shards.client(keys.bucket).hdel(keys.meta, "e")

    async def remove_history(self, channel: str) -> None:
        """Drop the publications; the stream position and epoch stay."""
        keys = self._shards.keys(channel)
        with redis_call("history remove"):
            await self._shards.client(keys.bucket).delete(keys.window)
        if self._history is not None:
            await self._history.remove(channel)

