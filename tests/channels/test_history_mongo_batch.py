"""GroupCommitter: batches form behind the write in flight; acknowledgements follow the write."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from channels.history_mongo_batch import Entry, GroupCommitter

WINDOW = 1.0  # long against a loop turn: a batch that waited for it shows


def entry(i: int) -> Entry:
    return Entry(channel="c", doc={"n": i}, offset=i, epoch="e", history_size=0, meta_ttl=0.0, stream=None,
                 future=asyncio.get_running_loop().create_future())


@pytest.mark.gen_test(timeout=30)
async def test_closed_loop_publishers_do_not_wait_the_window_again() -> None:
    """After a write, what the acknowledged publishers submit next goes at once, not a window later; order kept."""
    loop = asyncio.get_running_loop()
    waited: list[float] = []  # per batch: how long its oldest entry was queued before the write began
    written: list[int] = []
    acked: list[int] = []

    async def write(batch: list[Entry]) -> None:
        waited.append(loop.time() - batch[0].queued_at)
        written.extend(e.offset for e in batch)
        assert not any(e.future.done() for e in batch)  # nothing acknowledged before its write returns
        await asyncio.sleep(0.01)

    def on_failure(batch: list[Entry], queue: deque[Entry]) -> list[Entry]:
        return []

    committer = GroupCommitter(write, on_failure, window=WINDOW, max_size=100)
    committer.start()
    counter = iter(range(1, 10**6))

    async def publisher() -> None:
        for _ in range(5):
            e = entry(next(counter))
            await committer.submit(e)
            acked.append(e.offset)

    try:
        await asyncio.gather(*(publisher() for _ in range(4)))
    finally:
        await committer.close(timeout=5)
    assert committer.batches == 5 and committer.batch_items == 20
    assert waited[0] >= WINDOW * 0.9  # an idle committer gathers for the window
    assert all(w < WINDOW / 2 for w in waited[1:]), waited
    assert written == sorted(written) and sorted(acked) == written
