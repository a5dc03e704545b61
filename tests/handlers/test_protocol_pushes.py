"""Pushes about the connection itself, bytes out: no channel, and the unidirectional form has no wrapper."""

from __future__ import annotations

import msgpack

from handlers.protocol import JSON, MSGPACK
from handlers.uni import UNI_JSON


def test_json_connection_pushes() -> None:
    """refresh and disconnect pushes name no channel (Centrifugo leaves an empty one out)."""
    assert JSON.connection_push("refresh", {"expires": True, "ttl": 60}) == b'{"push":{"refresh":{"expires":true,"ttl":60}}}'
    assert JSON.disconnect_push(4001, "bye") == b'{"push":{"disconnect":{"code":4001,"reason":"bye"}}}'


def test_msgpack_connection_push() -> None:
    """The msgpack form carries the same map."""
    assert msgpack.unpackb(MSGPACK.connection_push("refresh", {})) == {"push": {"refresh": {}}}


def test_unidirectional_pushes_are_bare() -> None:
    """SSE and HTTP-stream messages carry the push itself, as Centrifugo's uni transports do."""
    assert UNI_JSON.connection_push("refresh", {"expires": True, "ttl": 5}) == b'{"refresh":{"expires":true,"ttl":5}}'
    assert UNI_JSON.disconnect_push(3005, "expired") == b'{"disconnect":{"code":3005,"reason":"expired"}}'
