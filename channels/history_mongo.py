"""Durable channel history in MongoDB (PyMongo's async API; Motor is deprecated).

Collections (see docs/HISTORY.md)::

    publications  {channel, offset, epoch, data, info, tags, time, expire_at}
                  unique (channel, offset); TTL on expire_at (absent when
                  history_ttl is 0)
    streams       {_id: channel, epoch, top, expire_at}; TTL on expire_at
                  (set from meta_ttl)

The promise: :meth:`append` and :meth:`write` return only once MongoDB
acknowledged the publications, every call either returns or raises
:class:`BackendUnavailable`, and a channel's offsets never get a hole.

Every query on a hot path is backed by an index: ``_id`` for stream meta,
and an equality on ``channel`` with a range or ``$in`` on ``offset`` for
publications. This module holds the store and its offset counters; the
connection and indexes are in :mod:`channels.history_mongo_conn`, reads in
:mod:`channels.history_mongo_read`, the write path's duplicate checks, meta
updates and trims in :mod:`channels.history_mongo_write`, write mode's epoch
switches in :mod:`channels.history_mongo_epochs`, group commit in
:mod:`channels.history_mongo_batch`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections import deque
from typing import Any, Sequence

from pymongo import DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.operations import DeleteMany

from channels import history_mongo_codec as codec
from channels import history_mongo_read
from channels.errors import BackendUnavailable
from channels.history import new_epoch
from channels.history_mongo_batch import Entry, GroupCommitter, Stream
from channels.history_mongo_conn import MongoConnection, parse_write_concern
from channels.history_mongo_epochs import RETIRED_EPOCHS, EpochFollower
from channels.history_mongo_write import check_duplicates, meta_updates, trim_cuts, trim_step
from channels.types import (
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)

__all__ = ["META_FLUSH_SECONDS", "MongoHistoryStore", "parse_write_concern", "trim_step"]

log = logging.getLogger(__name__)

_MAX_LOADS = 3  # stream (re)loads one append tries before giving up
META_FLUSH_SECONDS = 1.0  # how long an append-mode stream top may lag in MongoDB


def _index_key(e: Entry) -> tuple[str, int]:
    return e.channel, e.offset


class MongoHistoryStore:
    """History kept in MongoDB; offsets assigned here or persisted from elsewhere.

    Use one mode per channel: :meth:`append` (memory broker: this process
    owns the channel's offsets) or :meth:`write` (Redis broker: offsets come
    from Redis).
    """

    def __init__(
        self,
        url: str,
        *,
        database: str,
        write_concern: str,
        batch_window_ms: float,
        batch_size: int,
        timeout_ms: int = 3000,
        event_listeners: Sequence[Any] = (),
    ) -> None:
        self._conn = MongoConnection(
            url, database=database, write_concern=write_concern, timeout_ms=timeout_ms,
            event_listeners=event_listeners,
        )
        self._streams: dict[str, Stream] = {}
        self._loading: dict[str, asyncio.Task[Stream]] = {}
        self._epochs = EpochFollower(self._conn)
        self._trim_due: dict[str, int] = {}  # channel -> delete offsets <= this
        # append mode: channel -> entry with the highest offset acknowledged
        # but not yet in the channel's meta (written every META_FLUSH_SECONDS)
        self._meta_due: dict[str, Entry] = {}
        self._meta_task: asyncio.Task[None] | None = None
        self._trim_task: asyncio.Task[None] | None = None
        self._committer = GroupCommitter(
            self._write_batch,
            self._on_batch_failure,
            window=batch_window_ms / 1000.0,
            max_size=batch_size,
        )

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._conn.open()
        self._committer.start()
        try:
            await self._conn.ensure_indexes()
        except BackendUnavailable:
            # The server stays up; indexes are created before the first write.
            log.warning("MongoDB at %s unreachable at start; will retry", self._conn.url)

    async def close(self) -> None:
        await self._committer.close(timeout=max(1.0, 2 * self._conn.timeout_ms / 1000))
        # Both may hold tops taken for a meta write; cancelled, they put them back.
        for task in (self._meta_task, self._trim_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._meta_task = self._trim_task = None
        try:
            # Every acknowledged top is now in the meta: mark it exact.
            await self._flush_meta(exact=list(self._streams))
        except BackendUnavailable:
            log.warning("history stream tops not saved at close; the next start re-derives them")
        await self._conn.close()

    def healthy(self) -> bool:
        return self._conn.healthy()

    @property
    def batches(self) -> int:
        """Batches written so far (each is one insert_many)."""
        return self._committer.batches

    @property
    def batch_items(self) -> int:
        return self._committer.batch_items

    @property
    def write_seconds(self) -> float:
        return self._committer.write_seconds

    # --- stream meta -------------------------------------------------------

    async def _open_meta(self, channel: str) -> dict[str, Any]:
        """The channel's meta; created (epoch, top) from its publications if missing."""
        await self._conn.ensure_indexes()
        pubs, meta = self._conn.collections()
        with self._conn.backend("read stream"):
            doc = await meta.find_one({"_id": channel})
            if doc is not None:
                return doc
            latest = await pubs.find_one(
                {"channel": channel}, sort=[("offset", DESCENDING)], projection={"offset": 1, "epoch": 1}
            )
            epoch = str(latest["epoch"]) if latest else new_epoch()
            try:
                created = await meta.find_one_and_update(
                    {"_id": channel},
                    {"$setOnInsert": {"epoch": epoch}, "$max": {"top": int(latest["offset"]) if latest else 0}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                created = None  # another node created it first (mongod reports the race so)
            if created is None:
                # another node won the race to create it (SecantusDB then returns
                # nothing): the record is there now, take the winner's epoch
                created = await meta.find_one({"_id": channel})
        if created is None:
            raise BackendUnavailable(f"stream record of {channel} neither created nor found")
        return created

    async def _load(self, channel: str) -> Stream:
        """Where this process continues the channel (append mode).

        The meta's ``top`` may lag what was stored: a batch whose meta update
        failed, or (``lazy``) a process that stopped before its last tops were
        written. The newest stored publication tells the true top, unless it
        is gone (TTL): then acknowledged offsets above the meta's top may have
        been lost with it and reusing them under the same epoch could hide a
        gap, so the stream gets a new epoch (clients are told
        ``recovered: false``) and offsets continue above the meta's top.
        The meta is marked ``lazy`` before any append is acknowledged.
        """
        doc = await self._open_meta(channel)
        epoch, top = str(doc["epoch"]), int(doc.get("top", 0))
        pubs, meta = self._conn.collections()
        with self._conn.backend("load stream"):
            stored = await history_mongo_read.newest_offset(pubs, channel, epoch, doc.get("retired", []))
            update: dict[str, Any] = {"$set": {"lazy": True}}
            if doc.get("lazy") and stored < top:
                old, epoch = epoch, new_epoch()
                log.warning("history of %s: newest publications expired after an unclean stop; epoch %s -> %s",
                            channel, old, epoch)
                update["$set"]["epoch"] = epoch
                update["$push"] = {"retired": {"$each": [old], "$slice": -RETIRED_EPOCHS}}
            elif stored > top:
                top = stored
                update["$max"] = {"top": top}
            await meta.update_one({"_id": channel}, update)
        return Stream(epoch=epoch, assigned=top, committed=top)

    async def _stream(self, channel: str) -> Stream:
        """The channel's live offset counter, loaded once and shared by all callers."""
        for _ in range(_MAX_LOADS):
            s = self._streams.get(channel)
            if s is not None:
                return s
            task = self._loading.get(channel)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(channel))
                self._loading[channel] = task
                task.add_done_callback(functools.partial(self._loaded, channel))
            s = await asyncio.shield(task)
            # A batch failure may have dropped it again between load and here.
            if self._streams.get(channel) is s:
                return s
        log.warning("history stream of %s reset while loading", channel)
        raise BackendUnavailable("history store unavailable")

    def _loaded(self, channel: str, task: asyncio.Task[Stream]) -> None:
        if self._loading.get(channel) is task:
            del self._loading[channel]
        if task.cancelled():
            return
        if task.exception() is None:
            self._streams[channel] = task.result()

    # --- writes ------------------------------------------------------------

    async def append(self, channel: str, pub: Publication, opts: StreamOptions) -> Publication:
        body = codec.body(pub)  # fails this call alone, before an offset exists
        s = await self._stream(channel)
        s.assigned += 1
        pub.offset, pub.epoch = s.assigned, s.epoch
        entry = Entry(
            channel=channel,
            doc=codec.document(channel, pub, body, opts.history_ttl),
            offset=pub.offset,
            epoch=pub.epoch,
            history_size=opts.history_size,
            meta_ttl=opts.meta_ttl,
            stream=s,
            future=asyncio.get_running_loop().create_future(),
        )
        try:
            fut = self._committer.submit(entry)
        except BackendUnavailable:
            s.assigned -= 1  # nothing was queued after it: no hole
            raise
        await fut
        return pub

    async def write(self, channel: str, pubs: list[Publication], opts: StreamOptions) -> None:
        if not pubs:
            return
        bodies = [codec.body(p) for p in pubs]
        if not await self._epochs.follow(channel, pubs[-1].epoch, min(p.offset for p in pubs)):
            return
        now = dt.datetime.now(dt.timezone.utc)
        loop = asyncio.get_running_loop()
        futs = []
        for p, body in zip(pubs, bodies):
            entry = Entry(
                channel=channel,
                doc=codec.document(channel, p, body, opts.history_ttl, now),
                offset=p.offset,
                epoch=p.epoch,
                history_size=opts.history_size,
                meta_ttl=opts.meta_ttl,
                stream=None,
                future=loop.create_future(),
            )
            futs.append(self._committer.submit(entry))
        await asyncio.gather(*futs)

    async def _write_batch(self, batch: list[Entry]) -> None:
        """One insert_many for the batch, then one meta update per channel."""
        pubs, meta = self._conn.collections()
        # Key order makes the unique index's inserts local (much faster on
        # some servers); offsets stay ascending within each channel.
        ordered = sorted(batch, key=_index_key)
        with self._conn.backend("write"):
            try:
                await pubs.insert_many([e.doc for e in ordered], ordered=False)
            except BulkWriteError as err:
                await check_duplicates(pubs, ordered, err)
            written = [e for e in batch if e.stream is None]
            if written:  # write mode: other nodes read this meta, keep it exact
                await meta.bulk_write(meta_updates(written), ordered=False)
        due = self._meta_due
        for e in batch:
            if e.stream is not None:
                if e.offset > e.stream.committed:
                    e.stream.committed = e.offset
                prev = due.get(e.channel)
                if prev is None or e.offset > prev.offset:
                    due[e.channel] = e
        if due and (self._meta_task is None or self._meta_task.done()):
            self._meta_task = asyncio.get_running_loop().create_task(self._meta_flusher())
        self._schedule_trims(batch)

    def _on_batch_failure(self, batch: list[Entry], queue: deque[Entry]) -> list[Entry]:
        """Fail the queued appends above the failed ones and forget their counters.

        The next append reloads the channel from MongoDB, which counts what
        of the failed batch did land, so no offset is reused or skipped.
        """
        channels = {e.channel for e in batch if e.stream is not None}
        if not channels:
            return []
        for ch in channels:
            self._streams.pop(ch, None)
        failed = [e for e in queue if e.stream is not None and e.channel in channels]
        if failed:
            kept = [e for e in queue if not (e.stream is not None and e.channel in channels)]
            queue.clear()
            queue.extend(kept)
        return failed

    # --- lazy stream meta (append mode) --------------------------------------

    async def _meta_flusher(self) -> None:
        """Write append-mode tops off the acknowledgement path, coalesced."""
        while self._meta_due:
            await asyncio.sleep(META_FLUSH_SECONDS)
            try:
                await self._flush_meta()
            except BackendUnavailable as e:
                log.debug("stream meta update failed (retried): %s", e)

    async def _flush_meta(self, exact: Sequence[str] = ()) -> None:
        """One bulk ``$max: {top}`` for the channels due; ``exact`` channels are
        also marked no longer lazy (only at close, when nothing is in flight)."""
        due, self._meta_due = self._meta_due, {}
        ops = meta_updates(list(due.values()))
        ops += [UpdateOne({"_id": ch}, {"$set": {"lazy": False}}) for ch in exact]
        if not ops:
            return
        _, meta = self._conn.collections()
        written = False
        try:
            with self._conn.backend("stream meta"):
                await meta.bulk_write(ops, ordered=False)
            written = True
        finally:
            if not written:  # failed or cancelled: put back what a newer entry did not replace
                for ch, e in due.items():
                    cur = self._meta_due.get(ch)
                    if cur is None or cur.offset < e.offset:
                        self._meta_due[ch] = e

    # --- trimming ----------------------------------------------------------

    def _schedule_trims(self, batch: list[Entry]) -> None:
        for channel, cut in trim_cuts(batch).items():
            self._trim_due[channel] = max(self._trim_due.get(channel, 0), cut)
        if self._trim_due and (self._trim_task is None or self._trim_task.done()):
            self._trim_task = asyncio.get_running_loop().create_task(self._trim())

    async def _trim(self) -> None:
        """Delete what fell out of history_size; reads never depend on it."""
        pubs, _ = self._conn.collections()
        while self._trim_due:
            try:
                await self._flush_meta()  # the meta's top first: trimming never takes the only record of it
            except BackendUnavailable:
                return
            due, self._trim_due = self._trim_due, {}
            ops = [DeleteMany({"channel": ch, "offset": {"$lte": cut}}) for ch, cut in due.items()]
            try:
                await pubs.bulk_write(ops, ordered=False)
            except PyMongoError as e:
                log.debug("history trim failed (retried at the next step): %s", e)
                return

    # --- reads -------------------------------------------------------------

    async def position(self, channel: str) -> StreamPosition:
        s = self._streams.get(channel)
        if s is not None:
            return StreamPosition(s.committed, s.epoch)
        doc = await self._open_meta(channel)
        if doc.get("lazy"):  # an append-mode stream: its true top needs a load
            s = await self._stream(channel)
            return StreamPosition(s.committed, s.epoch)
        return StreamPosition(int(doc.get("top", 0)), str(doc["epoch"]))

    async def read(self, channel: str, query: HistoryQuery, opts: StreamOptions) -> HistoryResult:
        """Centrifugo's semantics on (channel, offset) index ranges (channels.history_mongo_read)."""
        top = await self.position(channel)
        return await history_mongo_read.read(self._conn, channel, top, query, opts)

    async def remove(self, channel: str) -> None:
        """Drop the channel's publications; its position and epoch stay."""
        await self._conn.ensure_indexes()
        pubs, _ = self._conn.collections()
        with self._conn.backend("remove"):
            await pubs.delete_many({"channel": channel})
