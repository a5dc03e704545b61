"""The outbound queue every transport's wire shares (WebSocket, SSE, HTTP stream): coalescing, conflation, the byte bound.

Frames for one connection wait here until the :class:`~handlers.flusher.Flusher`
runs (one write per connection per loop turn). While the socket is backed up
(``_draining``) they keep waiting; a frame of a latest-value channel replaces
the older one of the same channel (conflation). When the bytes held for the
connection (this queue plus what the transport still buffers) pass
``client_queue_max_size`` the queue is dropped and the client is disconnected
with 3008, so a stalled reader never grows the server's memory past the bound
plus one frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels import errors
from handlers.flusher import Flusher

if TYPE_CHECKING:
    from handlers.session import ClientSession


class OutQueue:
    """Queue half of a wire; subclasses say how bytes reach the socket."""

    __slots__ = (
        "session", "_flusher", "_limit", "_out", "_out_bytes", "_conflate", "_dead", "_marked", "_draining", "_closing",
    )

    def __init__(self, flusher: Flusher, limit: int) -> None:
        self.session: ClientSession | None = None
        self._flusher = flusher
        self._limit = limit
        self._out: list[bytes] | None = None  # made on demand: most sockets sit idle
        self._out_bytes = 0
        self._conflate: dict[str, int] | None = None  # channel -> index in _out; rare, made on demand
        self._dead = 0  # superseded (emptied) entries in _out
        self._marked = False
        self._draining = False
        self._closing = False

    def write(self, data: bytes, conflate: str | None = None) -> None:
        if self._closing:
            return
        out = self._out
        if out is None:
            out = self._out = []
        if conflate is not None:
            where = self._conflate
            if where is None:
                where = self._conflate = {}
            i = where.get(conflate)
            if i is not None:
                # The newer value goes to the end, so it never overtakes what
                # was queued after the older one (e.g. a resubscribe reply);
                # the older one is emptied in place (b"" writes nothing).
                self._out_bytes -= len(out[i])
                out[i] = b""
                del where[conflate]
                self._dead += 1
                if self._dead > 16 and 2 * self._dead > len(out):
                    out = self._compact(out, where)
            where[conflate] = len(out)
        out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > self._limit or (self._draining and self.held_bytes() > self._limit):
            self._slow()
            return
        if not self._marked and not self._draining:
            self._marked = True
            self._flusher.mark(self)

    def flush(self) -> None:
        self._marked = False
        if self._draining or not self._out or self._closing:
            return
        self._send(self._take())

    def _compact(self, out: list[bytes], where: dict[str, int]) -> list[bytes]:
        """Drop emptied entries so a long backed-up latest-value feed stays small."""
        new_index: dict[int, int] = {}
        kept: list[bytes] = []
        for i, frame in enumerate(out):
            if frame:
                new_index[i] = len(kept)
                kept.append(frame)
        for channel, i in list(where.items()):
            where[channel] = new_index[i]
        self._out = kept
        self._dead = 0
        return kept

    def _take(self) -> list[bytes]:
        out = self._out
        self._out = None
        self._out_bytes = 0
        self._conflate = None
        self._dead = 0
        return out if out is not None else []

    def queued_bytes(self) -> int:
        """Bytes waiting in this queue (not yet handed to the transport)."""
        return self._out_bytes

    def held_bytes(self) -> int:
        """Every outbound byte the server holds for this connection."""
        return self._out_bytes + self._buffered()

    def _slow(self) -> None:
        self._take()
        if self.session is not None:
            self.session.disconnect(errors.SLOW)

    # ------------------------------------------------------------ transport side
    def _send(self, frames: list[bytes]) -> None:
        """Hand these frames to the socket; set ``_draining`` if it backs up."""
        raise NotImplementedError

    def _buffered(self) -> int:
        """Bytes the transport accepted but the kernel has not taken yet."""
        raise NotImplementedError
