"""The read path of the MongoDB history store: index ranges only.

Offsets are contiguous below the top, so the wanted window is an offset
range, and every query is ``{channel: c, offset: {$gt: a, $lte: b}}`` on the
unique (channel, offset) index: it examines the range, never the collection.

Expiry is checked here rather than in the filter. The TTL monitor deletes an
expired publication within about a minute, but until then it must not be
read; the filter used to say so with ``$or: [{expire_at: null}, {expire_at:
{$gt: now}}]`` (``expire_at`` is absent when publications are kept forever),
and SecantusDB runs any ``$or`` as a full collection scan. Dropping the few
expired documents of a range after fetching them costs nothing like that.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from pymongo import ASCENDING, DESCENDING

from channels import history_mongo_codec as codec
from channels.errors import UnrecoverablePosition
from channels.history_mongo_conn import Collection, MongoConnection
from channels.types import HistoryQuery, HistoryResult, StreamOptions, StreamPosition

_PROJECTION = {"_id": 0, "channel": 0}  # expire_at is kept: the expiry check needs it


async def read(
    conn: MongoConnection, channel: str, top: StreamPosition, query: HistoryQuery, opts: StreamOptions
) -> HistoryResult:
    """Centrifugo's semantics (as channels.history.select), on index ranges.

    No query reads more than ``limit`` documents unless expired or trimmed
    entries left a gap at the bottom. Publications of an earlier epoch whose
    offsets the new one continued stay readable.
    """
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
        docs = await find_live(conn, channel, first, upto, DESCENDING, limit)
        if limit > 0 and len(docs) < limit and first > lo:
            docs = await find_live(conn, channel, lo, upto, DESCENDING, limit)
        return HistoryResult(publications=[codec.publication(d) for d in docs], position=top)
    after = since.offset if since is not None else 0
    lo = max(after, floor, 0)
    if lo >= top.offset:
        return HistoryResult(publications=[], position=top)
    last = top.offset if limit < 0 else min(top.offset, lo + limit)
    docs = await find_live(conn, channel, lo, last, ASCENDING, limit)
    if limit > 0 and len(docs) < limit and last < top.offset:
        docs = await find_live(conn, channel, lo, top.offset, ASCENDING, limit)
    return HistoryResult(publications=[codec.publication(d) for d in docs], position=top)


def expired(doc: dict[str, Any], now: dt.datetime) -> bool:
    at = doc.get("expire_at")
    return at is not None and at <= now


async def find_live(
    conn: MongoConnection, channel: str, after: int, upto: int, direction: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` (all if <= 0) unexpired publications with after < offset <= upto.

    When expired documents took part of a page, the next page continues past
    the last offset seen, twice as large: every query stays one index range,
    and the documents examined never exceed the range.
    """
    pubs, _ = conn.collections()
    now = dt.datetime.now(dt.timezone.utc)
    out: list[dict[str, Any]] = []
    size = limit
    while after < upto:
        with conn.backend("read"):
            cursor = pubs.find(
                {"channel": channel, "offset": {"$gt": after, "$lte": upto}}, projection=_PROJECTION
            ).sort("offset", direction)
            if limit > 0:
                cursor = cursor.limit(size)
            docs = await cursor.to_list()
        out += [d for d in docs if not expired(d, now)]
        if limit <= 0 or len(docs) < size or len(out) >= limit:
            break  # the whole range was read, or enough of it
        size *= 2
        edge = int(docs[-1]["offset"])
        if direction == ASCENDING:
            after = edge
        else:
            upto = edge - 1
    return out[:limit] if limit > 0 else out


async def newest_offset(pubs: Collection, channel: str, epoch: str, retired: Sequence[str]) -> int:
    """The channel's highest stored offset in ``epoch`` (0: none).

    Walks the channel's documents newest first on the (channel, offset)
    index: a (channel, epoch) filter is no index prefix, and SecantusDB
    answers it with a collection scan. The newest documents are the current
    epoch's; a retired epoch's document means there are none below it.
    """
    cursor = pubs.find({"channel": channel}, projection={"offset": 1, "epoch": 1}, batch_size=16)
    async for d in cursor.sort("offset", DESCENDING):
        if d.get("epoch") == epoch:
            return int(d["offset"])
        if d.get("epoch") in retired:
            break
    return 0
