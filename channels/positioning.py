"""What a subscribe reply says about the stream: its position, and, when the
client comes back asking to recover, the publications it missed.

Reads through the broker only; the hub decides what to do with the outcome
(the channel's cursor, the live flow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from channels import errors, recovery
from channels.broker import Broker
from channels.namespaces import NamespaceOptions
from channels.types import HistoryQuery, HistoryResult, Publication, StreamOptions, StreamPosition

log = logging.getLogger("squall.hub")

NO_POSITION = StreamPosition()


@dataclass(slots=True)
class SubscribeOutcome:
    position: StreamPosition = NO_POSITION  # immutable: one shared instance
    recoverable: bool = False
    recovered: bool = False
    was_recovering: bool = False
    publications: list[Publication] = field(default_factory=list)
    # publications that arrived during the subscribe and follow the reply
    pending: list[Publication] = field(default_factory=list)
    # why recovery was refused ("" when it was not asked for, or succeeded)
    refused: str = ""


async def head(broker: Broker, channel: str, stream: StreamOptions, latest: bool) -> HistoryResult:
    """The stream's position and, for a latest-value channel, its newest
    publication: one history read."""
    query = HistoryQuery(limit=1, reverse=True) if latest else HistoryQuery(limit=0)
    return await broker.history(channel, query, stream)


async def read(
    broker: Broker,
    channel: str,
    opts: NamespaceOptions,
    *,
    since: StreamPosition | None,
    recoverable: bool,
    limit: int,
) -> SubscribeOutcome:
    """The position (and recovered publications, when ``since`` is given and
    the namespace allows recovery) for a subscribe to ``channel``."""
    out = SubscribeOutcome()
    stream = opts.stream
    if not stream.enabled:
        return out
    out.recoverable = recoverable or opts.force_recovery
    if opts.force_recovery_mode == "cache" and opts.allow_recovery and (since is not None or opts.auto_cache_recover):
        return await _cache(broker, channel, stream, since or StreamPosition(), out)
    if since is None or not opts.allow_recovery:
        res = await head(broker, channel, stream, opts.latest_value)
        out.position = res.position
        if opts.latest_value:
            out.publications = res.publications
        return out
    out.was_recovering = True
    latest: list[Publication] | None = None
    try:
        res = await broker.history(channel, HistoryQuery(limit=limit + 1, since=since), stream)
        pubs = res.publications
        why = recovery.unrecoverable(since, res.position, pubs, limit)
    except errors.UnrecoverablePosition:
        res = await head(broker, channel, stream, opts.latest_value)
        pubs, why, latest = [], recovery.EPOCH, res.publications
    out.position = res.position
    out.recovered = not why
    out.refused = why
    if not why:
        out.publications = pubs
        return out
    log.info("recovery of %s from %d/%s refused: %s", channel, since.offset, since.epoch, why)
    if opts.latest_value:
        out.publications = latest if latest is not None else (await head(broker, channel, stream, True)).publications
    return out


async def _cache(broker: Broker, channel: str, stream: StreamOptions, since: StreamPosition, out: SubscribeOutcome) -> SubscribeOutcome:
    """Centrifugo's cache recovery mode: only the newest publication matters.
    Recovered when it is still the stream's top; sent unless the client already
    holds exactly that position (Centrifugo's isCacheRecovered)."""
    out.was_recovering = True
    res = await head(broker, channel, stream, True)
    out.position = top = res.position
    same = since.offset > 0 and since.offset == top.offset and since.epoch == top.epoch
    latest = res.publications[0] if res.publications else None
    if latest is None:
        out.recovered = same
    else:
        out.recovered = latest.offset == top.offset
        if out.recovered and not same:
            out.publications = [latest]
    if not out.recovered:
        out.refused = recovery.SHORT
    return out
