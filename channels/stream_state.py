"""One channel's local state and the rules that keep its stream gap-free.

Pure: no I/O, no awaits. The hub owns one :class:`ChannelState` per channel
with local subscribers and asks it two questions:

* :meth:`ChannelState.accept`, for each publication the broker delivers: is it
  the next one, a duplicate, or does it show that this node missed something?
* :meth:`ChannelState.go_live`, when a subscriber that read the stream
  position at ``top`` joins the live flow: does what was buffered for it
  connect ``top`` to the live cursor without a hole?

The delivery cursor (``last_offset``) moves only with publications this node
actually delivered. A subscriber whose position is ahead of the cursor (it
read offsets that are still in flight over pub/sub) is kept in ``ahead`` and
skips what it already has, so existing subscribers never lose a publication
because somebody joined.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING

from channels.types import Publication

if TYPE_CHECKING:
    from channels.delta_fanout import Delivery
    from channels.namespaces import NamespaceOptions
    from channels.transport import Subscriber


class Verdict(enum.Enum):
    DELIVER = "deliver"
    DUPLICATE = "duplicate"
    GAP = "gap"
    EPOCH = "epoch changed"


class ChannelState:
    """Local state of one channel with at least one local subscriber."""

    __slots__ = (
        "subs", "recovering", "observers", "ahead", "last_offset", "epoch", "opts", "ready", "special", "delta_prev",
        "last_pub", "known",
    )

    def __init__(self, opts: NamespaceOptions) -> None:
        # subscriber -> wants join/leave pushes
        self.subs: dict[Subscriber, bool] = {}
        # subscribers mid-subscribe: every publication delivered meanwhile is buffered for them
        self.recovering: dict[Subscriber, list[Publication]] = {}
        # watch-only subscribers (admin inspector): no presence, join or leave
        self.observers: set[Subscriber] = set()
        # live subscribers positioned past the cursor -> the offset they already have
        self.ahead: dict[Subscriber, int] = {}
        self.last_offset = 0
        self.epoch = ""
        # whether ``last_offset`` is a real position (read from the stream or
        # set by a delivery): 0 of an empty stream is one, and a publication
        # 2 arriving after it shows that 1 was missed
        self.known = False
        self.opts = opts
        # set once the broker subscription is in place
        self.ready: asyncio.Future[None] | None = None
        # subscribers wanting deltas or a tags filter (channels.delta_fanout); usually empty
        self.special: dict[Subscriber, Delivery] = {}
        # the JSON of the previous publication's data while a delta subscriber is here
        self.delta_prev: bytes | None = None
        # the last publication delivered here: a resync checks the stream still holds it
        self.last_pub: Publication | None = None

    def accept(self, pub: Publication) -> Verdict:
        """Advance the cursor over ``pub``, or say why it cannot be delivered."""
        if not pub.offset:
            return Verdict.DELIVER  # a channel without a stream: no offsets to check
        if pub.epoch and self.epoch and pub.epoch != self.epoch:
            return Verdict.EPOCH
        if pub.offset <= self.last_offset:
            return Verdict.DUPLICATE  # e.g. redelivered after a resubscribe
        gap = self.known and pub.offset != self.last_offset + 1 and not self.opts.latest_value
        self.last_offset = pub.offset
        self.known = True
        if pub.epoch:
            self.epoch = pub.epoch
        return Verdict.GAP if gap else Verdict.DELIVER

    def adopt(self, epoch: str, offset: int) -> bool:
        """A subscriber read the stream at (``epoch``, ``offset``). Returns False
        when the stream was reset under the live subscribers (they must recover).

        The first subscriber adopts the stream. Later ones never move the
        cursor: offsets below their position may still be on their way here,
        and the subscribers already live need them.
        """
        if self.epoch == epoch:
            return True
        reset = bool(self.epoch) and bool(self.subs)
        self.epoch = epoch
        self.last_offset = offset
        self.known = True
        self.ahead.clear()
        return not reset

    def go_live(self, sub: Subscriber, epoch: str, top: int, buffered: list[Publication]) -> list[Publication] | None:
        """Move ``sub`` (which holds the stream up to ``top`` of ``epoch``) to the
        live flow. Returns the buffered publications it still needs, in order,
        or None when they would not connect ``top`` to the cursor (a hole: the
        subscriber must recover instead)."""
        if not self.opts.stream.enabled:
            return buffered
        if epoch != self.epoch:
            return None
        # what the reply (up to ``top``) does not hold; an older stream's leftovers never
        pending = [p for p in buffered if p.offset > top and p.epoch in ("", epoch)]
        if self.opts.latest_value:
            return pending
        expected = top + 1
        for p in pending:
            if p.offset != expected:
                return None
            expected += 1
        last = expected - 1
        if last < self.last_offset:
            return None  # something was delivered here that never reached the buffer
        if last > self.last_offset:
            self.ahead[sub] = last
        return pending

    def skip(self, sub: Subscriber, offset: int) -> bool:
        """For a subscriber in ``ahead``: True while ``offset`` is one it has."""
        have = self.ahead[sub]
        if offset <= have:
            return True
        del self.ahead[sub]
        return False

    def remove(self, sub: Subscriber) -> None:
        self.subs.pop(sub, None)
        self.ahead.pop(sub, None)
        self.observers.discard(sub)
        self.special.pop(sub, None)
