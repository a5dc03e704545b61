"""Reading a channel's stream under the Redis engine: the hot window in
Redis first, the durable store below it, and the persist log for what the
durable store does not have yet.

A publication is acknowledged once it is in the window and the persist log;
its durable write may still be pending (a MongoDB outage, a slow batch). A
read that needs offsets below the window therefore fills any hole the durable
store leaves from the persist log, so recovery can stay complete through a
durable-store outage. What neither has is left out: the hub then refuses to
say ``recovered: true`` (see :mod:`channels.recovery`).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError

from channels import redis_envelope as envelope
from channels.errors import BackendUnavailable
from channels.history import HistoryStore, new_epoch, select
from channels.redis_envelope import BadEnvelope
from channels.redis_errors import redis_call
from channels.redis_scripts import HISTORY
from channels.redis_shards import ChannelKeys, RedisShards
from channels.types import HistoryQuery, HistoryResult, Publication, StreamOptions, StreamPosition

log = logging.getLogger("squall.redis.broker")

# A persist-log scan for a hole reads at most this many entries (in pages):
# beyond it the read answers with the hole, and recovery says so.
PERSIST_SCAN_MAX = 20_000
PERSIST_SCAN_PAGE = 1_000


class StreamReader:
    def __init__(
        self, shards: RedisShards, history: HistoryStore | None, initial_top: Callable[[str], Awaitable[int]]
    ) -> None:
        self._shards = shards
        self._history = history
        self._initial_top = initial_top
        self._script = shards.commands(0).script(HISTORY)
        self.persist_fills = 0  # offsets a read took from the persist log

    async def read_stream(
        self, channel: str, keys: ChannelKeys, opts: StreamOptions, query: HistoryQuery
    ) -> tuple[StreamPosition, list[Publication]]:
        """The stream's position and the window entries ``query`` needs (one script call)."""
        commands = self._shards.commands(keys.bucket)
        args: list[Any] = [
            new_epoch(),
            -1 if self._history is not None else 0,
            seconds(opts.meta_ttl),
            query.since.offset if query.since is not None else -1,
            query.limit,
            "1" if query.reverse else "0",
            opts.history_size,
        ]
        with redis_call("history"):
            res = await commands.run_script(self._script, [keys.meta, keys.window], args)
        if res[0] == -1:
            args[1] = await self._initial_top(channel)
            with redis_call("history"):
                res = await commands.run_script(self._script, [keys.meta, keys.window], args)
        top = StreamPosition(int(res[0]), text(res[1]))
        pubs: list[Publication] = []
        for raw in res[2]:
            try:
                pubs.append(envelope.publication(envelope.unpack(raw)))
            except BadEnvelope as e:
                log.warning("skipping unreadable history entry of %s: %s", channel, e)
        return top, pubs

    async def history(self, channel: str, query: HistoryQuery, opts: StreamOptions) -> HistoryResult:
        """Centrifugo's semantics; the hot window first, the durable store below it."""
        if not opts.enabled:
            return HistoryResult()
        keys = self._shards.keys(channel)
        top, pubs = await self.read_stream(channel, keys, opts, query)
        if query.limit == 0:
            return select([], top, query)
        if query.since is not None and query.since.epoch and query.since.epoch != top.epoch:
            return select([], top, query)  # raises UnrecoverablePosition
        need_from, need_to = need_range(top.offset, query, opts.history_size)
        pubs = [p for p in pubs if need_from <= p.offset <= need_to]
        window_from = pubs[0].offset if pubs else top.offset + 1
        if self._history is not None and need_from < window_from and need_from <= need_to:
            upto = min(need_to, window_from - 1)
            want = upto - need_from + 1
            older = await self._durable(channel, need_from, upto, opts)
            if len(older) < want:
                older = await self._fill_from_persist(channel, keys, top.epoch, need_from, upto, older)
            if len(older) < want:
                # An entry moves from the persist log to the store (written, then
                # acknowledged), never out of both: one missing from the store
                # before the scan and from the log during it is in the store now.
                older = _merge(older, await self._durable(channel, need_from, upto, opts))
                if len(older) < want:
                    log.warning("history of %s lacks %d offsets in %d..%d (in neither the durable store nor the persist log)",
                                channel, want - len(older), need_from, upto)
            pubs = older + pubs
        return select(pubs, top, query)

    async def _durable(self, channel: str, lo: int, hi: int, opts: StreamOptions) -> list[Publication]:
        """Offsets ``lo..hi`` as the durable store has them (some may be missing)."""
        assert self._history is not None
        try:
            res = await self._history.read(
                channel, HistoryQuery(limit=hi - lo + 1, since=StreamPosition(lo - 1, "")), opts
            )
        except BackendUnavailable:
            raise
        except Exception as e:
            raise BackendUnavailable(f"history store read failed: {e}") from e
        return [p for p in res.publications if lo <= p.offset <= hi]

    async def _fill_from_persist(
        self, channel: str, keys: ChannelKeys, epoch: str, lo: int, hi: int, have: list[Publication]
    ) -> list[Publication]:
        """Add what the persist log holds of ``lo..hi`` for ``channel`` (entries
        still on their way to the durable store). Best effort: a Redis error
        leaves the hole, which the caller sees."""
        by_offset = {p.offset: p for p in have}
        missing = (hi - lo + 1) - len(by_offset)
        name = channel.encode()
        start, scanned = "-", 0
        client = self._shards.client(keys.bucket)
        try:
            while missing > 0 and scanned < PERSIST_SCAN_MAX:
                page = await client.xrange(keys.persist, min=start, max="+", count=PERSIST_SCAN_PAGE)
                if not page:
                    break
                for entry_id, fields in page:
                    if fields.get(b"c") != name:
                        continue
                    try:
                        pub = envelope.publication(envelope.unpack(fields[b"m"]))
                    except (KeyError, BadEnvelope):
                        continue
                    if lo <= pub.offset <= hi and pub.offset not in by_offset and pub.epoch in ("", epoch):
                        by_offset[pub.offset] = pub
                        missing -= 1
                        self.persist_fills += 1
                scanned += len(page)
                if len(page) < PERSIST_SCAN_PAGE:
                    break
                start = "(" + text(page[-1][0])
        except (RedisError, OSError) as e:
            log.info("persist log scan for %s failed: %s", channel, e)
        return [by_offset[o] for o in sorted(by_offset)]


def _merge(a: list[Publication], b: list[Publication]) -> list[Publication]:
    """Publications of both lists, one per offset, in offset order."""
    by_offset = {p.offset: p for p in b}
    by_offset.update((p.offset, p) for p in a)
    return [by_offset[o] for o in sorted(by_offset)]


def need_range(top: int, query: HistoryQuery, history_size: int) -> tuple[int, int]:
    """The offsets ``query`` answers from, given the stream's ``top``: below
    ``since`` newest first with ``reverse`` (Centrifugo's backward paging), else
    above it oldest first, within the retained ``history_size``. Empty when
    ``from > to``. The HISTORY script computes the same range."""
    lo = max(top - history_size + 1, 1)
    since = query.since
    if query.reverse:
        to = min(top, since.offset - 1) if since is not None else top
        return (max(lo, to - query.limit + 1) if query.limit > 0 else lo), to
    start = max(lo, since.offset + 1) if since is not None else lo
    return start, (min(top, start + query.limit - 1) if query.limit > 0 else top)


def seconds(ttl: float) -> int:
    """Key expiry in whole seconds, never rounding a positive ttl down to "forever"."""
    return math.ceil(ttl) if ttl > 0 else 0


def text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
