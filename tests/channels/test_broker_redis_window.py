"""RedisBroker's hot window: a history read fetches only the entries its query needs, with Centrifugo's semantics."""

from __future__ import annotations

import itertools

import pytest
import redis.asyncio as aioredis

from channels.redis_history import need_range
from channels.history import select
from channels.history_memory import MemoryHistoryStore
from channels.types import HistoryQuery, Publication, StreamOptions, StreamPosition
from tests.channels.test_broker_redis import nodes, pub

pytestmark = pytest.mark.redis


def test_need_range_matches_centrifugo_paging() -> None:
    """Forward pages start above since (or at the oldest retained), backward pages end below it."""
    q = HistoryQuery
    assert need_range(20, q(limit=-1), 8) == (13, 20)
    assert need_range(20, q(limit=3), 8) == (13, 15)
    assert need_range(20, q(limit=3, reverse=True), 8) == (18, 20)
    assert need_range(20, q(limit=-1, since=StreamPosition(15, "e")), 8) == (16, 20)
    assert need_range(20, q(limit=2, since=StreamPosition(2, "e")), 8) == (13, 14)  # since below retention
    assert need_range(20, q(limit=2, since=StreamPosition(15, "e"), reverse=True), 8) == (13, 14)
    assert need_range(20, q(limit=-1, since=StreamPosition(20, "e")), 8) == (21, 20)  # empty


@pytest.mark.gen_test(timeout=30)
async def test_a_read_fetches_only_the_entries_the_query_needs(redis_url: str) -> None:
    """Of a 50-entry window, a recovery from offset 45 reads 5 entries; the newest 3 read 3; a count-only read none."""
    opts = StreamOptions(history_size=50, history_ttl=300)
    async with nodes([redis_url], n=1) as [(a, _)]:
        for i in range(1, 51):
            await a.publish("w", pub(i), opts)
        keys = a._shards.keys("w")
        top, _ = await a._reader.read_stream("w", keys, opts, HistoryQuery(limit=0))

        async def fetched(query: HistoryQuery) -> list[int]:
            _, pubs = await a._reader.read_stream("w", keys, opts, query)
            return [p.offset for p in pubs]

        assert await fetched(HistoryQuery(limit=-1, since=StreamPosition(45, top.epoch))) == [46, 47, 48, 49, 50]
        assert await fetched(HistoryQuery(limit=3, reverse=True)) == [48, 49, 50]
        assert await fetched(HistoryQuery(limit=2)) == [1, 2]
        assert await fetched(HistoryQuery(limit=2, since=StreamPosition(10, top.epoch), reverse=True)) == [8, 9]
        assert await fetched(HistoryQuery(limit=0)) == []
        assert len(await fetched(HistoryQuery(limit=-1))) == 50


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.gen_test(timeout=60)
async def test_every_query_answers_as_the_reference_selection(redis_url: str, durable: bool) -> None:
    """Every since/limit/direction over a trimmed stream (window alone, or a 3-entry window above a durable store)
    gives what the shared reference selection gives over the retained publications."""
    opts = StreamOptions(history_size=8, history_ttl=300)
    store = MemoryHistoryStore() if durable else None
    async with nodes([redis_url], n=1, history=(lambda i: store) if durable else None, hot_window=3) as [(a, _)]:
        for i in range(1, 21):
            await a.publish(f"ref{durable}", pub(i), opts)
        top = (await a.history(f"ref{durable}", HistoryQuery(limit=0), opts)).position
        retained = [Publication(data=i, offset=i, epoch=top.epoch) for i in range(13, 21)]
        checked = 0
        for since, limit, reverse in itertools.product([None, *range(0, 23)], [-1, 0, 1, 3, 8, 20], [False, True]):
            query = HistoryQuery(limit=limit, reverse=reverse,
                                 since=StreamPosition(since, top.epoch) if since is not None else None)
            got = await a.history(f"ref{durable}", query, opts)
            want = select(retained, top, query)
            assert [(p.offset, p.data) for p in got.publications] == [(p.offset, p.data) for p in want.publications], query
            checked += 1
        assert checked == 24 * 6 * 2


@pytest.mark.gen_test(timeout=30)
async def test_a_window_from_an_earlier_epoch_is_dropped(redis_url: str) -> None:
    """When the stream's meta is gone (e.g. history_meta_ttl ran out) but its window is not,
    the new epoch starts with an empty window: the old entries never reappear under new offsets."""
    opts = StreamOptions(history_size=10, history_ttl=300)
    async with nodes([redis_url], n=1) as [(a, _)]:
        for i in range(1, 4):
            await a.publish("stale", pub(f"old{i}"), opts)
        c = aioredis.Redis.from_url(redis_url)
        try:
            await c.delete(a._shards.keys("stale").meta)
        finally:
            await c.aclose()
        pos = await a.publish("stale", pub("new1"), opts)
        res = await a.history("stale", HistoryQuery(limit=-1), opts)
        assert [(p.offset, p.data) for p in res.publications] == [(1, "new1")]
        assert res.position == pos
