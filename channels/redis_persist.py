"""The persist log: publications on their way to the durable history store.

The publish script XADDs every history publication to its bucket's stream and
hands it to the publishing node in the consumer group (so it is *pending*
under that node's name). The publisher writes it to the durable store and
then acknowledges it here (XACK + XDEL). Entries whose owner died, or whose
durable write failed, stay pending; every node runs :meth:`PersistLog.run`,
which XAUTOCLAIMs entries idle longer than ``min_idle`` and persists them.
``HistoryStore.write`` is idempotent, so an entry persisted twice (claimed
while its owner was slow) is harmless.

A slow store must not be fed its own backlog again. A write that times out
for its caller (the publish is refused: not durable yet) is not cancelled:
its entries are queued in the store and still land. So this node remembers
the entries it is writing, and the claimer skips those (they stay pending,
nothing is acknowledged before it is stored); entries it stored after the
caller gave up are acknowledged without a second write. Each entry is then
in at most one write per node at a time, and the claimer's writes of one
round go to the store together (one group-committed batch, whose duplicate
check is one index query per channel). Before, every claim round while
MongoDB was slow queued another copy of each timed-out entry behind the
backlog, and the copies timed out in turn (issue 20).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict, defaultdict
from typing import Any

import msgpack
from redis.exceptions import RedisError, ResponseError

from channels import redis_envelope
from channels.history import HistoryStore
from channels.redis_envelope import BadEnvelope
from channels.redis_scripts import ACK
from channels.redis_shards import RedisShards
from channels.types import Publication, StreamOptions

log = logging.getLogger("squall.redis.persist")

GROUP = "squall-persist"
STORED_MEMORY = 10_000  # entries stored after their caller gave up, kept for the claimer to ack

Key = tuple[str, str, int]  # channel, epoch, offset: one persist log entry


@functools.cache  # StreamOptions are few, frozen and shared
def pack_options(opts: StreamOptions) -> bytes:
    out: bytes = msgpack.packb([opts.history_size, opts.history_ttl, opts.meta_ttl])
    return out


def unpack_options(raw: bytes) -> StreamOptions:
    size, ttl, meta_ttl = msgpack.unpackb(raw)
    return StreamOptions(history_size=int(size), history_ttl=float(ttl), meta_ttl=float(meta_ttl))


class PersistLog:
    """Acknowledges persisted entries and rescues entries of dead owners."""

    def __init__(
        self,
        shards: RedisShards,
        history: HistoryStore,
        *,
        node_id: str,
        min_idle: float = 5.0,
        interval: float = 2.0,
        batch: int = 100,
        write_timeout: float = 5.0,
    ) -> None:
        self._shards = shards
        self._history = history
        self._node_id = node_id
        self._min_idle_ms = int(min_idle * 1000)
        self._interval = interval
        self._batch = batch
        self._write_timeout = write_timeout
        self._ack_script = shards.commands(0).script(ACK)
        self._writing: dict[Key, asyncio.Future[None]] = {}  # entries in a write of this node
        self._stored: OrderedDict[Key, None] = OrderedDict()  # stored after the caller timed out

    async def write(self, channel: str, pubs: list[Publication], opts: StreamOptions) -> None:
        """The durable write, bounded in time for the caller (raises on failure or timeout).

        The timeout does not cancel the write (the store has queued it): it
        goes on, and the claimer knows about it.
        """
        keys = [(channel, p.epoch, p.offset) for p in pubs]
        task = asyncio.ensure_future(self._history.write(channel, pubs, opts))
        for key in keys:
            self._writing[key] = task
        task.add_done_callback(functools.partial(self._written, keys))
        try:
            await asyncio.wait_for(asyncio.shield(task), self._write_timeout)
        except (TimeoutError, asyncio.CancelledError):
            task.add_done_callback(functools.partial(self._stored_late, keys))
            raise

    def _written(self, keys: list[Key], task: asyncio.Future[None]) -> None:
        for key in keys:
            if self._writing.get(key) is task:
                del self._writing[key]
        if not task.cancelled():
            task.exception()  # retrieved: a caller that timed out no longer awaits it

    def _stored_late(self, keys: list[Key], task: asyncio.Future[None]) -> None:
        """Stored after the caller gave up: the claimer acknowledges these without a write."""
        if task.cancelled() or task.exception() is not None:
            return  # not stored: still pending, the claimer writes them again
        for key in keys:
            self._stored[key] = None
        while len(self._stored) > STORED_MEMORY:
            self._stored.popitem(last=False)

    async def ack(self, bucket: int, entry_ids: list[bytes]) -> None:
        await self._shards.commands(bucket).run_script(self._ack_script, [self._shards.persist_key(bucket)], [GROUP, *entry_ids])

    async def run(self) -> None:
        """Forever: claim and persist abandoned entries of every bucket."""
        while True:
            await asyncio.sleep(self._interval)
            for bucket in range(self._shards.n_buckets):
                try:
                    await self.claim_once(bucket)
                except (RedisError, OSError, asyncio.TimeoutError) as e:
                    log.debug("persist claim on bucket %d skipped: %s", bucket, e)
                except Exception:
                    log.exception("persist claim on bucket %d failed", bucket)

    async def claim_once(self, bucket: int) -> int:
        """Persist up to one batch of abandoned entries; returns how many."""
        key = self._shards.persist_key(bucket)
        client = self._shards.client(bucket)
        try:
            res: Any = await client.xautoclaim(
                key, GROUP, self._node_id, self._min_idle_ms, start_id="0-0", count=self._batch
            )
        except ResponseError as e:
            if "NOGROUP" in str(e):
                return 0  # nothing was ever published with history here
            raise
        entries = res[1]
        by_channel: dict[tuple[str, bytes], list[Publication]] = defaultdict(list)
        ids: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
        broken: list[bytes] = []
        stored: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted meanwhile (acknowledged by its owner)
            try:
                channel = fields[b"c"].decode()
                pub = redis_envelope.publication(redis_envelope.unpack(fields[b"m"]))
                group = (channel, fields[b"o"])
            except (KeyError, UnicodeDecodeError, BadEnvelope) as e:
                log.error("dropping unreadable persist entry %r: %s", entry_id, e)
                broken.append(entry_id)
                continue
            entry = (channel, pub.epoch, pub.offset)
            if entry in self._writing:
                continue  # this node's write of it goes on; a copy would only queue behind it
            if entry in self._stored:
                del self._stored[entry]
                stored.append(entry_id)
                continue
            by_channel[group].append(pub)
            ids[group].append(entry_id)
        if broken or stored:
            await self.ack(bucket, broken + stored)
        # All groups at once: the store commits them in one batch.
        written = await asyncio.gather(
            *(self._persist_group(bucket, group, pubs, ids[group]) for group, pubs in by_channel.items())
        )
        return len(stored) + sum(written)

    async def _persist_group(
        self, bucket: int, group: tuple[str, bytes], pubs: list[Publication], entry_ids: list[bytes]
    ) -> int:
        channel, raw_opts = group
        pubs.sort(key=lambda p: p.offset)
        try:
            await self.write(channel, pubs, unpack_options(raw_opts))
        except Exception as e:  # the store's own error types are unknown here
            log.warning("persisting %d claimed entries of %s failed: %s", len(pubs), channel, e)
            return 0
        await self.ack(bucket, entry_ids)
        return len(pubs)
