"""The outbound queue both WebSocket wires share: coalescing, conflation, the byte bound."""

from __future__ import annotations

from typing import Any

import pytest

from channels import errors
from handlers.flusher import Flusher
from handlers.out_queue import OutQueue


class Sink(OutQueue):
    """A queue whose 'transport' records writes and can pretend to be backed up."""

    __slots__ = ("sent", "backlog")

    def __init__(self, limit: int) -> None:
        super().__init__(Flusher(), limit)
        self.sent: list[bytes] = []
        self.backlog = 0

    def _send(self, frames: list[bytes]) -> None:
        self.sent.append(b"".join(frames))

    def _buffered(self) -> int:
        return self.backlog if self._draining else 0


class Session:
    def __init__(self) -> None:
        self.codes: list[int] = []

    def disconnect(self, code: Any, reason: str | None = None) -> None:
        self.codes.append(code.code)


def sink(limit: int = 1000) -> tuple[Sink, Session]:
    q = Sink(limit)
    s = Session()
    q.session = s  # type: ignore[assignment]
    return q, s


@pytest.mark.gen_test
async def test_frames_of_one_turn_go_out_in_one_write_in_order() -> None:
    """Everything written before the flusher runs leaves in one write, in order."""
    q, _ = sink()
    for i in range(5):
        q.write(b"%d;" % i)
    assert q.sent == []
    q.flush()
    assert q.sent == [b"0;1;2;3;4;"] and q.queued_bytes() == 0


@pytest.mark.gen_test
async def test_conflation_keeps_only_the_newest_and_never_reorders() -> None:
    """A latest-value frame replaces its older queued one and goes after what was queued in between."""
    q, s = sink()
    q._draining = True  # the socket is backed up: frames wait in the queue
    q.write(b"cpu=1;", "metrics:cpu")
    q.write(b"reply;")
    q.write(b"cpu=22;", "metrics:cpu")
    q.write(b"mem=5;", "metrics:mem")
    assert q.queued_bytes() == len(b"reply;cpu=22;mem=5;")
    q._draining = False
    q.flush()
    assert q.sent == [b"reply;cpu=22;mem=5;"] and s.codes == []


@pytest.mark.gen_test
async def test_long_backed_up_feed_stays_compact() -> None:
    """Thousands of superseded values do not grow the queue's list."""
    q, _ = sink(limit=10_000)
    q._draining = True
    for i in range(5000):
        q.write(b"v%d;" % i, "metrics:cpu")
        q.write(b"w%d;" % i, "metrics:mem")
    assert q._out is not None and len(q._out) < 100
    q._draining = False
    q.flush()
    assert q.sent == [b"v4999;w4999;"]


@pytest.mark.gen_test
async def test_bound_counts_the_transport_backlog_and_disconnects_3008() -> None:
    """Queue plus transport backlog past the limit: queue dropped, 3008, held bytes back to zero queued."""
    q, s = sink(limit=1000)
    q._draining = True
    q.backlog = 700
    q.write(b"x" * 300)
    assert s.codes == [] and q.held_bytes() == 1000
    q.write(b"y")
    assert s.codes == [errors.SLOW.code]
    assert q.queued_bytes() == 0


@pytest.mark.gen_test
async def test_queue_alone_past_the_limit_disconnects() -> None:
    """Without a backlog the queue alone is bounded too."""
    q, s = sink(limit=10)
    q.write(b"12345")
    q.write(b"678901")
    assert s.codes == [errors.SLOW.code]
