"""The only way deliveries go back up to a socket.

A connection (WebSocket, SSE, HTTP stream) implements :class:`Subscriber`.
The hub encodes a push once per distinct ``wire_key`` (format and framing) and
hands the same bytes to every subscriber sharing that key.
"""

from __future__ import annotations

from typing import Any, Hashable, Protocol

from channels.errors import DisconnectCode


class Subscriber(Protocol):
    client_id: str
    user: str

    @property
    def wire_key(self) -> Hashable:
        """Subscribers with equal keys can be sent the very same bytes."""
        ...

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        """Encode a push (``kind`` is pub, join, leave, ...) ready to write."""
        ...

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        """Queue encoded bytes. With ``conflate`` (a channel), a newer frame
        replaces a still-queued older one of the same channel."""
        ...

    def disconnect(self, code: DisconnectCode, reason: str | None = None) -> None:
        """Close the connection with a code; never raises."""
        ...
