"""The fan-out for channels where some subscriber asked for something special:
fossil deltas (``delta: "fossil"``) or a tags filter (``tf``).

:func:`channels.fanout.publication` calls :func:`publication` only when the
channel has such a subscriber (``ChannelState.special`` non-empty), so the
ordinary path is untouched. Work stays per channel, not per subscriber:

* each distinct filter is evaluated once per publication;
* the delta against the previous publication is computed once per
  publication (``ChannelState.delta_prev`` holds the previous data's JSON),
  and each distinct (wire, full/delta) form is encoded once.

As Centrifugo's JSON protocol, a delta subscriber gets ``data`` as a JSON
string: the publication's JSON (``delta`` absent, a full value) or the fossil
delta from the previous one (``delta: true``). Its first publication after
subscribing (recovered ones included) is full; so is any whose delta would not
be smaller or not text. Delta subscribers are never conflated (latest-value
channels): a dropped delta would break the chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable

import orjson

from channels.delta_fossil import create as fossil_delta
from channels.filters import Filter
from channels.types import Publication

if TYPE_CHECKING:
    from channels.stream_state import ChannelState

log = logging.getLogger("squall.hub")

DELTA_TYPES = ("fossil",)


@dataclass(slots=True)
class Delivery:
    """How one subscriber wants a channel's publications when not as everyone."""

    delta: bool = False
    tags_filter: Filter | None = None
    # a binary wire format (protobuf): delta payloads as raw bytes, not JSON text
    binary: bool = False
    # delta: the subscriber holds the channel's previous publication
    ready: bool = False


def full_body(body: dict[str, Any], binary: bool = False) -> dict[str, Any]:
    """A publication for a delta subscriber, not a delta: data as its JSON text
    (JSON protocol) or its JSON bytes (protobuf)."""
    raw = orjson.dumps(body.get("data"))
    return {**body, "data": raw if binary else raw.decode()}


def _delta_bytes(prev: bytes, cur: bytes) -> bytes | None:
    delta = fossil_delta(prev, cur)
    return delta if len(delta) < len(cur) else None


def _delta_body(body: dict[str, Any], delta: bytes, binary: bool) -> dict[str, Any] | None:
    if binary:
        return {**body, "data": delta, "delta": True}
    try:
        text = delta.decode("utf-8")  # a literal may split a UTF-8 sequence: then send it full
    except UnicodeDecodeError:
        return None
    return {**body, "data": text, "delta": True}


def publication(ch: ChannelState, channel: str, pub: Publication, encode: Any) -> int:
    """Deliver ``pub`` when some subscriber of ``ch`` has a Delivery; how many got it."""
    special = ch.special
    body = pub.to_dict()
    conflate = channel if ch.opts.latest_value else None
    has_delta = any(d.delta for d in special.values())
    cur = orjson.dumps(pub.data) if has_delta else b""
    prev, ch.delta_prev = ch.delta_prev, (cur if has_delta else None)
    full: dict[bool, dict[str, Any]] = {}  # binary -> the full form
    delta: bytes | None | bool = False  # False: not computed yet
    delta_forms: dict[bool, dict[str, Any] | None] = {}
    cache: dict[Hashable, bytes] = {}
    matched: dict[Filter, bool] = {}
    delivered = 0
    ahead = ch.ahead
    for sub in ch.subs:
        if ahead and sub in ahead and ch.skip(sub, pub.offset):
            continue
        d = special.get(sub)
        if d is None:
            key: Hashable = sub.wire_key
            out, conf = body, conflate
        else:
            f = d.tags_filter
            if f is not None:
                ok = matched.get(f)
                if ok is None:
                    ok = matched[f] = f.match(pub.tags)
                if not ok:
                    continue
            if not d.delta:
                key, out, conf = sub.wire_key, body, conflate
            else:
                conf = None
                form = None
                if d.ready and prev is not None:
                    if delta is False:
                        delta = _delta_bytes(prev, cur)
                    if isinstance(delta, bytes):
                        if d.binary not in delta_forms:
                            delta_forms[d.binary] = _delta_body(body, delta, d.binary)
                        form = delta_forms[d.binary]
                if form is not None:
                    key, out = (sub.wire_key, "delta"), form
                else:
                    if d.binary not in full:
                        full[d.binary] = full_body(body, d.binary)
                    key, out = (sub.wire_key, "full"), full[d.binary]
        data = cache.get(key)
        if data is None:
            data = cache[key] = encode(sub, channel, "pub", out)
        if data:
            sub.write_wire(data, conf)
            delivered += 1
            if d is not None:
                d.ready = True  # it now holds this publication: the next may be a delta
        elif d is not None:
            d.ready = False  # it missed this one: the next must be full
    return delivered
