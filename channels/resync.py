"""After the broker reconnected: did this node miss anything on a channel?

Pub/sub loses what is published while a connection is down, and a failover to
an asynchronous replica can lose publications this node already delivered
(their offsets are then reused for other publications). Each check reads the
stream through the broker and says why the channel's local subscribers must
recover, or "" when they need not.
"""

from __future__ import annotations

import logging

from channels import errors
from channels.broker import Broker
from channels.stream_state import ChannelState
from channels.types import HistoryQuery, StreamPosition

log = logging.getLogger("squall.hub")


async def check(broker: Broker, channel: str, ch: ChannelState) -> str:
    """Why ``channel``'s local subscribers must recover; "" when they need not.

    A stream that no longer holds what was delivered here starts a new epoch
    first, so no client can recover across the rewrite."""
    try:
        res = await broker.history(channel, HistoryQuery(limit=0), ch.opts.stream)
    except errors.SquallError:
        return "broker reconnected, position unknown"
    pos = res.position
    if pos.epoch != ch.epoch:
        return "broker reconnected to a new epoch"
    if pos.offset < ch.last_offset or not await _last_still_stored(broker, channel, ch):
        # no position in this epoch can be trusted: the stream starts a new one
        try:
            await broker.new_epoch(channel)
        except errors.SquallError:
            log.warning("could not start a new epoch for %s", channel)
        return "broker reconnected to a stream that lost publications"
    if pos.offset > ch.last_offset:
        return "broker reconnected with missed publications"
    return ""


async def _last_still_stored(broker: Broker, channel: str, ch: ChannelState) -> bool:
    """Whether the stream still holds the last publication delivered here (True when it cannot tell)."""
    last = ch.last_pub
    if last is None or not last.offset or last.offset != ch.last_offset:
        return True  # nothing delivered since the cursor was read from the stream itself
    try:
        res = await broker.history(
            channel, HistoryQuery(limit=1, since=StreamPosition(last.offset - 1, ch.epoch)), ch.opts.stream
        )
    except errors.SquallError:
        return True  # a failed read is no proof of lost writes; the top check still applies
    got = res.publications[0] if res.publications else None
    return got is None or (got.offset, got.data, got.time) == (last.offset, last.data, last.time)
