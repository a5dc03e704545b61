"""The msgpack envelope every Redis message between nodes travels in.

One shape for all kinds, so the Lua publish script can build it with
``cmsgpack`` and Python can build it with ``msgpack``::

    [origin node id, kind, offset, epoch, payload]

``kind`` is ``p`` (publication; payload is ``Publication.to_record()`` without
offset and epoch, which the script fills in), ``j``/``l`` (join/leave; payload
is a ClientInfo dict) or ``c`` (control; payload is the raw bytes).

With tracing on, a publication's record carries the publisher's W3C
``traceparent`` under the key ``tp`` (:data:`TRACEPARENT`): inside the payload
map, so older nodes, whose ``Publication.from_record`` ignores unknown keys,
read the envelope as before; absent, it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from channels.types import ClientInfo, Publication

PUBLICATION = b"p"
JOIN = b"j"
LEAVE = b"l"
CONTROL = b"c"
TRACEPARENT = "tp"  # optional key of a publication record (tracing on)


class BadEnvelope(ValueError):
    """A message on one of our topics that we cannot read."""


@dataclass(frozen=True, slots=True)
class Envelope:
    node: bytes
    kind: bytes
    offset: int
    epoch: str
    payload: bytes


def pack(node_id: str, kind: bytes, payload: bytes) -> bytes:
    """An envelope built in Python (everything except script publications)."""
    out: bytes = msgpack.packb([node_id, kind, 0, "", payload], use_bin_type=True)
    return out


def pack_payload(obj: Any) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def record_payload(pub: Publication, traceparent: str | None = None) -> bytes:
    """The publication's record without offset/epoch (the script adds them),
    plus the publisher's trace context when there is one."""
    rec = pub.to_record()
    rec.pop("offset", None)
    rec.pop("epoch", None)
    if traceparent is not None:
        rec[TRACEPARENT] = traceparent
    return pack_payload(rec)


def unpack(raw: bytes) -> Envelope:
    # raw=True: cmsgpack writes every Lua string as msgpack str, binary or not.
    try:
        node, kind, offset, epoch, payload = msgpack.unpackb(raw, raw=True)
        return Envelope(bytes(node), bytes(kind), int(offset), bytes(epoch).decode(), bytes(payload))
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as e:
        raise BadEnvelope(str(e)) from e


def publication(env: Envelope) -> Publication:
    return traced_publication(env)[0]


def traced_publication(env: Envelope) -> tuple[Publication, str | None]:
    """The publication and the publisher's ``traceparent`` (None when absent)."""
    try:
        rec = msgpack.unpackb(env.payload, raw=False)
        pub = Publication.from_record(rec)
        tp = rec.get(TRACEPARENT)
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as e:
        raise BadEnvelope(str(e)) from e
    pub.offset = env.offset
    pub.epoch = env.epoch
    return pub, tp if isinstance(tp, str) else None


def client_info(env: Envelope) -> ClientInfo:
    try:
        d = msgpack.unpackb(env.payload, raw=False)
        if not isinstance(d, dict):
            raise TypeError("client info is not a map")
        return ClientInfo.from_dict(d)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise BadEnvelope(str(e)) from e
