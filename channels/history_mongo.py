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
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections import OrderedDict, deque
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
from pymongo.monitoring import TopologyDescriptionChangedEvent, TopologyListener
from pymongo.operations import DeleteMany
from pymongo.write_concern import WriteConcern

from channels import history_mongo_codec as codec
from channels.errors import BackendUnavailable, UnrecoverablePosition
from channels.history import new_epoch
from channels.history_mongo_batch import Entry, GroupCommitter, Stream
from channels.types import (
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
_EPOCH_CACHE = 4096  # channels whose epoch write() remembers (bounded LRU)
_RETIRED_EPOCHS = 16  # previous epochs a stream remembers, to skip their late writes
_MAX_LOADS = 3  # stream (re)loads one append tries before giving up
META_FLUSH_SECONDS = 1.0  # how long an append-mode stream top may lag in MongoDB


def parse_write_concern(value: str) -> WriteConcern | None:
    """'' = the driver's default; a number = that many nodes; else a mode or tag ('majority')."""
    value = value.strip()
    if not value:
        return None
    return WriteConcern(w=int(value) if value.isdigit() else value)


def _index_key(e: Entry) -> tuple[str, int]:
    return e.channel, e.offset


def trim_step(history_size: int) -> int:
    """How far a channel's top moves between two trims (keeps deletes rare)."""
    return max(16, history_size // 4)


class _TopologyHealth(TopologyListener):
    """Tells the store when the driver sees a writable server again, or none."""

    def __init__(self, store: "MongoHistoryStore") -> None:
        self._store = store

    def opened(self, event: Any) -> None:
        return None

    def description_changed(self, event: TopologyDescriptionChangedEvent) -> None:
        self._store._set_healthy(event.new_description.has_writable_server())

    def closed(self, event: Any) -> None:
        return None


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
        self._url = url
        self._database = database
        self._write_concern = parse_write_concern(write_concern)
        self._timeout_ms = timeout_ms
        self._listeners = list(event_listeners)
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._pubs: AsyncCollection[dict[str, Any]] | None = None
        self._meta: AsyncCollection[dict[str, Any]] | None = None
        self._indexed = False
        self._healthy = False
        self._streams: dict[str, Stream] = {}
        self._loading: dict[str, asyncio.Task[Stream]] = {}
        self._epochs: OrderedDict[str, str] = OrderedDict()
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
        t = self._timeout_ms
        self._client = AsyncMongoClient(
            self._url,
            serverSelectionTimeoutMS=t,
            connectTimeoutMS=t,
            socketTimeoutMS=max(2 * t, 2000),
            heartbeatFrequencyMS=1000,
            appname="squall-history",
            tz_aware=True,
            event_listeners=[_TopologyHealth(self), *self._listeners],
        )
        db = self._client.get_database(self._database, write_concern=self._write_concern)
        self._pubs = db.get_collection("publications")
        self._meta = db.get_collection("streams")
        self._committer.start()
        try:
            await self._ensure_indexes()
        except BackendUnavailable:
            # The server stays up; indexes are created before the first write.
            log.warning("MongoDB at %s unreachable at start; will retry", self._url)

    async def close(self) -> None:
        await self._committer.close(timeout=max(1.0, 2 * self._timeout_ms / 1000))
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
        client, self._client = self._client, None  # no health logs while closing
        self._healthy = False
        if client is not None:
            await client.close()

    def healthy(self) -> bool:
        return self._healthy and self._client is not None

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

    def _set_healthy(self, ok: bool) -> None:
        if ok != self._healthy and self._client is not None:
            if ok:
                log.info("MongoDB history store reachable")
            else:
                log.warning("MongoDB history store unreachable")
        self._healthy = ok

    @contextmanager
    def _backend(self, what: str) -> Iterator[None]:
        """Turn driver errors into a temporary client-facing error."""
        try:
            yield
        except PyMongoError as e:
            if isinstance(e, ConnectionFailure):
                self._set_healthy(False)
            log.debug("MongoDB %s failed: %s", what, e)
            raise BackendUnavailable(f"history store unavailable ({what})") from e
        self._set_healthy(True)

    def _collections(self) -> tuple[AsyncCollection[dict[str, Any]], AsyncCollection[dict[str, Any]]]:
        if self._pubs is None or self._meta is None:
            raise BackendUnavailable("history store is not running")
        return self._pubs, self._meta

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        pubs, meta = self._collections()
        with self._backend("create indexes"):
            await pubs.create_index([("channel", ASCENDING), ("offset", ASCENDING)], unique=True)
            for coll in (pubs, meta):
                await self._ttl_index(coll)
        self._indexed = True

    @staticmethod
    async def _ttl_index(coll: AsyncCollection[dict[str, Any]]) -> None:
        """Sparse, so publications kept forever cost no TTL index entry."""
        try:
            await coll.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0, sparse=True)
        except OperationFailure as e:
            if e.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
                raise
            log.warning("%s: keeping the existing expire_at index (%s)", coll.name, e)

    # --- stream meta -------------------------------------------------------

    async def _open_meta(self, channel: str) -> dict[str, Any]:
        """The channel's meta; created (epoch, top) from its publications if missing."""
        await self._ensure_indexes()
        pubs, meta = self._collections()
        with self._backend("read stream"):
            doc = await meta.find_one({"_id": channel})
            if doc is not None:
                return doc
            latest = await pubs.find_one(
                {"channel": channel}, sort=[("offset", DESCENDING)], projection={"offset": 1, "epoch": 1}
            )
            epoch = str(latest["epoch"]) if latest else new_epoch()
            created = await meta.find_one_and_update(
                {"_id": channel},
                {"$setOnInsert": {"epoch": epoch}, "$max": {"top": int(latest["offset"]) if latest else 0}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        assert created is not None
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
        pubs, meta = self._collections()
        with self._backend("load stream"):
            latest = await pubs.find_one(
                {"channel": channel, "epoch": epoch}, sort=[("offset", DESCENDING)], projection={"offset": 1}
            )
            stored = int(latest["offset"]) if latest is not None else 0
            update: dict[str, Any] = {"$set": {"lazy": True}}
            if doc.get("lazy") and stored < top:
                old, epoch = epoch, new_epoch()
                log.warning("history of %s: newest publications expired after an unclean stop; epoch %s -> %s",
                            channel, old, epoch)
                update["$set"]["epoch"] = epoch
                update["$push"] = {"retired": {"$each": [old], "$slice": -_RETIRED_EPOCHS}}
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
        raise BackendUnavailable("history store unavailable (stream reset)")

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
        if not await self._follow_epoch(channel, pubs[-1].epoch, min(p.offset for p in pubs)):
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

    async def _follow_epoch(self, channel: str, epoch: str, first: int) -> bool:
        """Track upstream's epoch; False when ``epoch`` is a retired one (skip it).

        A new epoch whose offsets continue above the stored top (the Redis
        broker continues from :meth:`position`) keeps the older publications:
        they stay readable, nothing acknowledged is lost. A new epoch whose
        offsets restart at or below the top cannot share the unique index with
        the old stream, which is then dropped. Late writes of a retired epoch
        (a claimer persisting an entry after the switch) are skipped.
        """
        if self._epochs.get(channel) == epoch:
            self._epochs.move_to_end(channel)
            return True
        await self._ensure_indexes()
        pubs, meta = self._collections()
        with self._backend("switch epoch"):
            doc = await meta.find_one({"_id": channel}, projection={"epoch": 1, "top": 1, "retired": 1})
            if doc is not None and doc.get("epoch") != epoch:
                if epoch in doc.get("retired", []):
                    log.warning("history of %s: skipping writes of retired epoch %s", channel, epoch)
                    return False
                update: dict[str, Any] = {
                    "$set": {"epoch": epoch},
                    "$push": {"retired": {"$each": [doc.get("epoch")], "$slice": -_RETIRED_EPOCHS}},
                }
                if first <= int(doc.get("top", 0)):
                    log.warning("history of %s: epoch %s restarts offsets; old stream dropped", channel, epoch)
                    await pubs.delete_many({"channel": channel, "epoch": {"$ne": epoch}})
                    update["$set"]["top"] = 0
                else:
                    log.info("history of %s: epoch %s -> %s", channel, doc.get("epoch"), epoch)
                await meta.update_one({"_id": channel, "epoch": doc.get("epoch")}, update)
        self._epochs[channel] = epoch
        if len(self._epochs) > _EPOCH_CACHE:
            self._epochs.popitem(last=False)
        return True

    async def _write_batch(self, batch: list[Entry]) -> None:
        """One insert_many for the batch, then one meta update per channel."""
        pubs, meta = self._collections()
        # Key order makes the unique index's inserts local (much faster on
        # some servers); offsets stay ascending within each channel.
        ordered = sorted(batch, key=_index_key)
        with self._backend("write"):
            try:
                await pubs.insert_many([e.doc for e in ordered], ordered=False)
            except BulkWriteError as err:
                await self._check_duplicates(ordered, err)
            written = [e for e in batch if e.stream is None]
            if written:  # write mode: other nodes read this meta, keep it exact
                await meta.bulk_write(self._meta_updates(written), ordered=False)
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

    async def _check_duplicates(self, batch: list[Entry], err: BulkWriteError) -> None:
        """Duplicates are success only when they are the same publication.

        A retried insert finds our own document (same _id); write() finds the
        same (channel, offset, epoch). Anything else is a conflict, never a
        silent drop.
        """
        details = err.details
        errors = details.get("writeErrors", [])
        if details.get("writeConcernErrors") or any(w.get("code") != DUPLICATE_KEY for w in errors):
            raise err
        dups = [batch[w["index"]] for w in errors]
        pubs, _ = self._collections()
        found = {
            (d["channel"], d["offset"]): d
            async for d in pubs.find(
                {"$or": [{"channel": e.channel, "offset": e.offset} for e in dups]},
                projection={"channel": 1, "offset": 1, "epoch": 1},
            )
        }
        for e in dups:
            d = found.get((e.channel, e.offset))
            same = d is not None and (d["_id"] == e.doc["_id"] if e.stream is not None else d.get("epoch") == e.epoch)
            if not same:
                log.error("history offset conflict in %s at %d", e.channel, e.offset)
                raise BackendUnavailable("history offset conflict")

    @staticmethod
    def _meta_updates(batch: list[Entry]) -> list[UpdateOne]:
        tops: dict[str, Entry] = {}
        written_epoch: dict[str, str] = {}
        for e in batch:
            top = tops.get(e.channel)
            if top is None or e.offset > top.offset:
                tops[e.channel] = e
            if e.stream is None:
                written_epoch[e.channel] = e.epoch
        now = dt.datetime.now(dt.timezone.utc)
        ops = []
        for channel, e in tops.items():
            update: dict[str, Any] = {"$max": {"top": e.offset}}
            sets: dict[str, Any] = {}
            if channel in written_epoch:
                sets["epoch"] = written_epoch[channel]
            else:
                update["$setOnInsert"] = {"epoch": e.epoch}
            if e.meta_ttl > 0:
                sets["expire_at"] = now + dt.timedelta(seconds=e.meta_ttl)
            if sets:
                update["$set"] = sets
            ops.append(UpdateOne({"_id": channel}, update, upsert=True))
        return ops

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
        ops = self._meta_updates(list(due.values()))
        ops += [UpdateOne({"_id": ch}, {"$set": {"lazy": False}}) for ch in exact]
        if not ops:
            return
        _, meta = self._collections()
        written = False
        try:
            with self._backend("stream meta"):
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
        span: dict[str, tuple[int, int, int]] = {}
        for e in batch:
            if e.history_size <= 0:
                continue
            lo, hi, _ = span.get(e.channel, (e.offset, e.offset, 0))
            span[e.channel] = (min(lo, e.offset), max(hi, e.offset), e.history_size)
        for channel, (lo, hi, size) in span.items():
            step = trim_step(size)
            if (lo - 1) // step != hi // step and hi > size:
                self._trim_due[channel] = max(self._trim_due.get(channel, 0), hi - size)
        if self._trim_due and (self._trim_task is None or self._trim_task.done()):
            self._trim_task = asyncio.get_running_loop().create_task(self._trim())

    async def _trim(self) -> None:
        """Delete what fell out of history_size; reads never depend on it."""
        pubs, _ = self._collections()
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
        """Centrifugo's semantics (as channels.history_memory.select), on index ranges.

        Offsets are contiguous below the top, so the wanted window is an
        offset range and no query reads more than ``limit`` documents unless
        expired or trimmed entries left a gap at the bottom. Publications of an
        earlier epoch whose offsets the new one continued stay readable.
        """
        top = await self.position(channel)
        since = query.since
        if since is not None and since.epoch and since.epoch != top.epoch:
            raise UnrecoverablePosition()
        if query.limit == 0:
            return HistoryResult(publications=[], position=top)
        floor = top.offset - opts.history_size if opts.history_size > 0 else 0
        limit = query.limit
        if query.reverse:
            # Backward iteration: the page below ``since`` (Centrifugo's semantics).
            upto = min(top.offset, since.offset - 1) if since is not None else top.offset
            lo = max(floor, 0)
            if lo >= upto:
                return HistoryResult(publications=[], position=top)
            first = lo if limit < 0 else max(lo, upto - limit)
            docs = await self._find(channel, first, upto, DESCENDING, limit)
            if limit > 0 and len(docs) < limit and first > lo:
                docs = await self._find(channel, lo, upto, DESCENDING, limit)
            return HistoryResult(publications=[codec.publication(d) for d in docs], position=top)
        after = since.offset if since is not None else 0
        lo = max(after, floor, 0)
        if lo >= top.offset:
            return HistoryResult(publications=[], position=top)
        last = top.offset if limit < 0 else min(top.offset, lo + limit)
        docs = await self._find(channel, lo, last, ASCENDING, limit)
        if limit > 0 and len(docs) < limit and last < top.offset:
            docs = await self._find(channel, lo, top.offset, ASCENDING, limit)
        return HistoryResult(publications=[codec.publication(d) for d in docs], position=top)

    async def _find(
        self, channel: str, after: int, upto: int, direction: int, limit: int
    ) -> list[dict[str, Any]]:
        pubs, _ = self._collections()
        now = dt.datetime.now(dt.timezone.utc)
        flt = {
            "channel": channel,
            "offset": {"$gt": after, "$lte": upto},
            # The TTL monitor runs about once a minute; expired is gone now.
            "$or": [{"expire_at": None}, {"expire_at": {"$gt": now}}],
        }
        with self._backend("read"):
            cursor = pubs.find(flt, projection={"_id": 0, "channel": 0, "expire_at": 0}).sort("offset", direction)
            if limit > 0:
                cursor = cursor.limit(limit)
            return await cursor.to_list()

    async def remove(self, channel: str) -> None:
        """Drop the channel's publications; its position and epoch stay."""
        await self._ensure_indexes()
        pubs, _ = self._collections()
        with self._backend("remove"):
            await pubs.delete_many({"channel": channel})
