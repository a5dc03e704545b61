"""Whether a recovery may say ``recovered: true``.

Pure. A subscriber that comes back at ``since`` may be told it recovered only
when the publications handed to it are exactly the consecutive offsets from
``since + 1`` up to the stream's top. Anything else (too many, a hole, a
missing tail, another epoch) is a ``recovered: false`` with a reason, which
the hub counts and logs.
"""

from __future__ import annotations

from channels.types import Publication, StreamPosition

# metric labels and log words
TOO_MANY = "too_many"  # more missed than recovery_max_publication_limit
HOLE = "hole"  # an offset inside the range is missing
SHORT = "short"  # the range ends below the stream top (or the client is ahead of it)
EPOCH = "epoch"  # the stream was reset since the client's position
REASONS = (TOO_MANY, HOLE, SHORT, EPOCH)


def unrecoverable(since: StreamPosition, top: StreamPosition, pubs: list[Publication], limit: int) -> str:
    """The reason ``pubs`` cannot recover a subscriber at ``since``; "" when they can."""
    if since.epoch and top.epoch and since.epoch != top.epoch:
        return EPOCH
    if len(pubs) > limit:
        return TOO_MANY
    expected = since.offset + 1
    for p in pubs:
        if p.offset != expected:
            return HOLE
        expected += 1
    if expected - 1 != top.offset:
        return SHORT
    return ""
