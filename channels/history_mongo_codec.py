"""Publication <-> MongoDB document, for channels/history_mongo.py.

``data`` (and the free-form ``conn_info``/``chan_info``) are stored as their
JSON text rather than as nested BSON: any JSON value then round-trips exactly
(integers beyond 64 bits, keys with ``$``, ``.`` or NUL), and a value BSON
cannot hold can never fail a whole group-committed batch. ``bytes`` data is
stored as BSON binary and comes back as ``bytes``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson

from channels.errors import BadRequest
from channels.types import ClientInfo, Publication


def dumps(value: Any) -> str:
    """JSON text of ``value``; orjson first, the stdlib for what it refuses (big ints)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise BadRequest(f"publication is not JSON-compatible: {e}") from None


def loads(text: Any) -> Any:
    if isinstance(text, bytes):
        return text
    return orjson.loads(text) if text is not None else None


def body(pub: Publication) -> dict[str, Any]:
    """The part of a document that does not depend on the offset.

    Built in the publisher's call, before an offset is assigned, so a value
    that cannot be stored fails only that call and never leaves a hole.
    """
    doc: dict[str, Any] = {"data": pub.data if isinstance(pub.data, bytes) else dumps(pub.data)}
    if pub.info is not None:
        info: dict[str, Any] = {"user": pub.info.user, "client": pub.info.client}
        if pub.info.conn_info is not None:
            info["conn_info"] = dumps(pub.info.conn_info)
        if pub.info.chan_info is not None:
            info["chan_info"] = dumps(pub.info.chan_info)
        doc["info"] = info
    if pub.tags:
        if any("\x00" in k for k in pub.tags):
            raise BadRequest("tag names must not contain NUL")
        doc["tags"] = dict(pub.tags)
    if pub.time:
        doc["time"] = pub.time
    return doc


def document(
    channel: str, pub: Publication, body_doc: dict[str, Any], ttl: float, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The stored document: ``body_doc`` plus position and expiry."""
    doc = {"channel": channel, "offset": pub.offset, "epoch": pub.epoch, **body_doc}
    if ttl > 0:
        now = now or dt.datetime.now(dt.timezone.utc)
        doc["expire_at"] = now + dt.timedelta(seconds=ttl)
    return doc


def publication(doc: dict[str, Any]) -> Publication:
    info_doc = doc.get("info")
    info = None
    if isinstance(info_doc, dict):
        info = ClientInfo(
            client=str(info_doc.get("client", "")),
            user=str(info_doc.get("user", "")),
            conn_info=loads(info_doc.get("conn_info")),
            chan_info=loads(info_doc.get("chan_info")),
        )
    return Publication(
        data=loads(doc.get("data")),
        offset=int(doc["offset"]),
        epoch=str(doc.get("epoch", "")),
        info=info,
        tags=doc.get("tags") or None,
        time=int(doc.get("time", 0)),
    )
