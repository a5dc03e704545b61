"""What a subscribe asks for beyond the stream: fossil deltas and a tags filter.

Centrifugo's rules: ``delta`` of a known type is used only when the channel's
namespace lists it in ``allowed_delta_types`` (the reply says ``delta: true``;
otherwise the client decodes full payloads, as it is told); a tags filter
(``tf``) needs the namespace's ``allow_tags_filter`` or the subscribe is a
bad request (3501). The fan-out itself is :mod:`channels.delta_fanout`.
"""

from __future__ import annotations

from typing import Any

from channels import errors
from channels.delta_fanout import Delivery, full_body
from channels.namespaces import NamespaceOptions
from channels.types import Publication
from handlers.requests import SubscribeRequest


def delivery_for(req: SubscribeRequest, opts: NamespaceOptions, binary: bool = False) -> Delivery | None:
    """The subscriber's Delivery, None when it is delivered as everyone."""
    if req.tags_filter is not None and not opts.allow_tags_filter:
        raise errors.Disconnect(errors.BAD_REQUEST, "tags filter not allowed")
    delta = bool(req.delta) and req.delta in opts.allowed_delta_types
    if not delta and req.tags_filter is None:
        return None
    return Delivery(delta=delta, tags_filter=req.tags_filter, binary=binary)


def server_sub_delivery(delta: str, opts: NamespaceOptions, binary: bool = False) -> Delivery | None:
    """A connect ``subs`` entry's Delivery: its ``delta`` as a subscribe's (used
    where the namespace allows it, the entry's reply then says ``delta: true``)."""
    if not delta or delta not in opts.allowed_delta_types:
        return None
    return Delivery(delta=True, binary=binary)


def publication_body(delivery: Delivery | None, pub: Publication) -> dict[str, Any]:
    """A publication outside the fan-out (recovered, buffered while subscribing)."""
    body = pub.to_dict()
    return full_body(body, delivery.binary) if delivery is not None and delivery.delta else body


def keeps(delivery: Delivery | None, pub: Publication) -> bool:
    """False for a publication the subscriber's tags filter excludes."""
    f = delivery.tags_filter if delivery is not None else None
    return f is None or f.match(pub.tags)
