"""The fan-out, written once: one publication (or join/leave) to every local
subscriber of a channel, encoded once per ``wire_key``.

No Future or Task per delivery: each subscriber's ``write_wire`` only queues
bytes that every subscriber of the same format shares.
"""

from __future__ import annotations

import logging
from typing import Any, Hashable

from channels import delta_fanout
from channels.stream_state import ChannelState
from channels.transport import Subscriber
from channels.types import ClientInfo, Publication

log = logging.getLogger("squall.hub")


def encode(sub: Subscriber, channel: str, kind: str, body: dict[str, Any]) -> bytes:
    """Encode for one wire format; a failure skips that format, not the others."""
    try:
        return sub.encode_push(channel, kind, body)
    except Exception:
        log.exception("cannot encode a %s push of %s for %r; skipping that format", kind, channel, sub.wire_key)
        return b""


def publication(ch: ChannelState, channel: str, pub: Publication) -> int:
    """Deliver ``pub`` (already accepted by the channel's cursor); returns how many got it."""
    if ch.special:  # some subscriber wants deltas or filters: the other path
        return delta_fanout.publication(ch, channel, pub, encode)
    body = pub.to_dict()
    conflate = channel if ch.opts.latest_value else None
    cache: dict[Hashable, bytes] = {}
    delivered = 0
    ahead = ch.ahead
    for sub in ch.subs:
        if ahead and sub in ahead and ch.skip(sub, pub.offset):
            continue  # it read this one with its position
        key = sub.wire_key
        data = cache.get(key)
        if data is None:
            data = cache[key] = encode(sub, channel, "pub", body)
        if data:
            sub.write_wire(data, conflate)
            delivered += 1
    return delivered


def join_leave(ch: ChannelState, channel: str, kind: str, info: ClientInfo) -> None:
    """A join or leave push to the subscribers that asked for them (not to its subject)."""
    body = {"info": info.to_dict()}
    cache: dict[Hashable, bytes] = {}
    for sub, wants in ch.subs.items():
        if not wants or sub.client_id == info.client:
            continue
        key = sub.wire_key
        data = cache.get(key)
        if data is None:
            data = cache[key] = encode(sub, channel, kind, body)
        if data:
            sub.write_wire(data)
