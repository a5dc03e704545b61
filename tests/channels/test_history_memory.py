"""The memory history store: offsets, trimming, TTL and query semantics."""

import asyncio

import pytest

from channels import errors
from channels.history_memory import MemoryHistoryStore
from channels.types import HistoryQuery, Publication, StreamOptions, StreamPosition

OPTS = StreamOptions(history_size=3, history_ttl=0)


@pytest.mark.gen_test
async def test_offsets_increase_and_window_is_trimmed() -> None:
    """Offsets count up; only the last history_size publications are kept."""
    st = MemoryHistoryStore()
    for i in range(5):
        p = await st.append("c", Publication(data=i), OPTS)
        assert p.offset == i + 1
    res = await st.read("c", HistoryQuery(limit=-1), OPTS)
    assert [p.data for p in res.publications] == [2, 3, 4]
    assert res.position.offset == 5


@pytest.mark.gen_test
async def test_limit_since_reverse() -> None:
    """limit 0 gives only the position; since and reverse follow Centrifugo."""
    st = MemoryHistoryStore()
    opts = StreamOptions(history_size=10)
    for i in range(5):
        await st.append("c", Publication(data=i), opts)
    pos = await st.position("c")
    assert (await st.read("c", HistoryQuery(limit=0), opts)).publications == []
    res = await st.read("c", HistoryQuery(limit=2, since=StreamPosition(2, pos.epoch)), opts)
    assert [p.offset for p in res.publications] == [3, 4]
    res = await st.read("c", HistoryQuery(limit=2, reverse=True), opts)
    assert [p.offset for p in res.publications] == [5, 4]
    with pytest.raises(errors.UnrecoverablePosition):
        await st.read("c", HistoryQuery(limit=1, since=StreamPosition(1, "bad")), opts)


@pytest.mark.gen_test
async def test_ttl_expires_entries() -> None:
    """Entries older than history_ttl are not returned."""
    st = MemoryHistoryStore()
    opts = StreamOptions(history_size=10, history_ttl=0.05)
    await st.append("c", Publication(data=1), opts)
    await asyncio.sleep(0.1)
    res = await st.read("c", HistoryQuery(limit=-1), opts)
    assert res.publications == [] and res.position.offset == 1


@pytest.mark.gen_test
async def test_write_is_idempotent() -> None:
    """write() of already stored offsets stores nothing twice."""
    st = MemoryHistoryStore()
    pubs = [Publication(data=i, offset=i + 1, epoch="e") for i in range(3)]
    await st.write("c", pubs, OPTS)
    await st.write("c", pubs, OPTS)
    res = await st.read("c", HistoryQuery(limit=-1), OPTS)
    assert [p.offset for p in res.publications] == [1, 2, 3]
    assert res.position == StreamPosition(3, "e")


@pytest.mark.gen_test
async def test_backward_iteration_pages_through_everything() -> None:
    """reverse + since pages backwards: each page holds the offsets below since."""
    st = MemoryHistoryStore()
    opts = StreamOptions(history_size=100)
    for i in range(25):
        await st.append("c", Publication(data=i), opts)
    back: list[int] = []
    since = None
    for _ in range(10):
        page = await st.read("c", HistoryQuery(limit=10, since=since, reverse=True), opts)
        if not page.publications:
            break
        back += [p.offset for p in page.publications]
        since = StreamPosition(page.publications[-1].offset, page.position.epoch)
    assert back == list(range(25, 0, -1))
