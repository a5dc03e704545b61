"""How a session's bytes reach its client: the two small interfaces a transport plugs in.

* :class:`Wire` is the transport's socket side: the codec it speaks, a key
  saying which connections may share encoded bytes, how one message is
  framed, a bounded write and the close. Every transport gives one.
* :class:`Output` is how replies and pushes become messages on that wire.
  :data:`WIRE_OUTPUT` (replies as the codec encodes them, one message each)
  serves the bidirectional transports; a transport whose client cannot read
  replies (the unidirectional ones, :mod:`handlers.uni_output`) gives its
  session its own Output instead of overriding session methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Protocol

from channels.errors import SquallError
from handlers.protocol import Codec

if TYPE_CHECKING:
    from handlers.session import ClientSession


class Wire(Protocol):
    """What a transport gives its session."""

    codec: Codec

    @property
    def key(self) -> Hashable: ...

    def frame(self, payload: bytes) -> bytes:
        """Wrap an encoded reply/push for this transport (WS frame, SSE event)."""
        ...

    def write(self, data: bytes, conflate: str | None = None) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class Output(Protocol):
    """How a session's command results and pushes are written."""

    @property
    def expects_pongs(self) -> bool:
        """False when the client never answers pings (a dead peer shows as a write error)."""
        ...

    def reply(self, s: ClientSession, cid: int, method: str, result: dict[str, Any]) -> None: ...

    def error(self, s: ClientSession, cid: int, err: SquallError) -> None: ...

    def push(self, s: ClientSession, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        """The ready-to-write bytes of a push (the hub's ``encode_push``)."""
        ...


class WireOutput:
    """Replies and pushes as the wire's codec encodes them; holds no state."""

    __slots__ = ()

    expects_pongs = True

    def reply(self, s: ClientSession, cid: int, method: str, result: dict[str, Any]) -> None:
        w = s.wire
        s.write_wire(w.frame(w.codec.reply(cid, method, result)))

    def error(self, s: ClientSession, cid: int, err: SquallError) -> None:
        if cid:
            w = s.wire
            s.write_wire(w.frame(w.codec.error(cid, err)))

    def push(self, s: ClientSession, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        w = s.wire
        return w.frame(w.codec.push(channel, kind, body))


WIRE_OUTPUT = WireOutput()  # stateless: shared by every bidirectional session
