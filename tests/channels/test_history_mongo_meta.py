"""Append-mode stream meta written off the acknowledgement path, and what a restart makes of it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from channels import history_mongo
from channels.errors import UnrecoverablePosition
from channels.history_mongo import MongoHistoryStore
from channels.types import HistoryQuery, Publication, StreamOptions, StreamPosition
from tests.channels.test_history_mongo import OPTS, opened, publish_all, raw
from tests.helpers.mongo_server import (  # noqa: F401  (fixtures)
    MongoTarget,
    mongo_db,
    secantus,
)

pytestmark = pytest.mark.mongo


async def abandon(store: MongoHistoryStore) -> None:
    """What a SIGKILL leaves behind: tops not yet in the meta stay unwritten."""
    if store._meta_task is not None:
        store._meta_task.cancel()
    store._meta_due.clear()
    store._streams.clear()
    await store.close()


async def started(target: MongoTarget) -> MongoHistoryStore:
    """A store the test stops itself (cleanly or not)."""
    store = MongoHistoryStore(target.url, database=target.database, write_concern="", batch_window_ms=2.0,
                              batch_size=500, timeout_ms=1000)
    await store.start()
    return store


async def continues_at(store: MongoHistoryStore, channel: str, pos: StreamPosition) -> None:
    """The stream stands at ``pos``, and its next append takes the next offset in the same epoch."""
    assert await store.position(channel) == pos
    nxt = await store.append(channel, Publication(data="next"), OPTS)
    assert (nxt.offset, nxt.epoch) == (pos.offset + 1, pos.epoch)


def meta(target: MongoTarget, channel: str) -> dict[str, Any]:
    doc: dict[str, Any] = raw(target).streams.find_one({"_id": channel})
    return doc


@pytest.mark.gen_test(timeout=60)
async def test_append_is_acknowledged_before_its_meta_is_written(
    mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The meta lags acknowledged appends; a restart after an unclean stop still continues after them."""
    monkeypatch.setattr(history_mongo, "META_FLUSH_SECONDS", 3600.0)
    store = await started(mongo_db)
    pubs = await publish_all(store, "lag", 5)
    m = meta(mongo_db, "lag")
    assert m["lazy"] is True and m["top"] == 0
    assert await store.position("lag") == StreamPosition(5, pubs[0].epoch)
    await abandon(store)
    async with opened(mongo_db) as store:
        await continues_at(store, "lag", StreamPosition(5, pubs[0].epoch))


@pytest.mark.gen_test(timeout=60)
async def test_meta_catches_up_within_the_flush_interval(mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tops reach the meta shortly after the appends, one bulk write for many channels."""
    monkeypatch.setattr(history_mongo, "META_FLUSH_SECONDS", 0.05)
    async with opened(mongo_db) as store:
        await asyncio.gather(*(publish_all(store, f"c{i}", 7) for i in range(3)))
        for _ in range(100):
            if all((meta(mongo_db, f"c{i}") or {}).get("top") == 7 for i in range(3)):
                break
            await asyncio.sleep(0.05)
        assert [meta(mongo_db, f"c{i}")["top"] for i in range(3)] == [7, 7, 7]


@pytest.mark.gen_test(timeout=60)
async def test_unclean_stop_then_expired_history_changes_the_epoch(
    mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offsets acknowledged above the meta's top and then expired are never reused under the old epoch."""
    monkeypatch.setattr(history_mongo, "META_FLUSH_SECONDS", 3600.0)
    store = await started(mongo_db)
    pubs = await publish_all(store, "gone", 3)
    await store._flush_meta()  # meta top 3
    pubs += await publish_all(store, "gone", 2)  # 4 and 5 acknowledged, meta still says 3
    await abandon(store)
    raw(mongo_db).publications.delete_many({"channel": "gone"})  # what TTL does to an idle stream
    old = pubs[0].epoch
    async with opened(mongo_db) as store:
        pos = await store.position("gone")
        assert pos.epoch != old and pos.offset == 3
        await continues_at(store, "gone", pos)
        with pytest.raises(UnrecoverablePosition):  # a client that saw 5 is told it cannot recover
            await store.read("gone", HistoryQuery(since=StreamPosition(5, old), limit=-1), OPTS)
    assert old in meta(mongo_db, "gone")["retired"]


@pytest.mark.gen_test(timeout=60)
async def test_clean_close_keeps_the_epoch_of_an_expired_stream(mongo_db: MongoTarget) -> None:
    """After a clean stop the meta is exact: a stream whose history expired keeps epoch and offsets."""
    async with opened(mongo_db) as store:
        pubs = await publish_all(store, "clean", 5)
    assert meta(mongo_db, "clean")["lazy"] is False and meta(mongo_db, "clean")["top"] == 5
    raw(mongo_db).publications.delete_many({"channel": "clean"})
    async with opened(mongo_db) as store:
        await continues_at(store, "clean", StreamPosition(5, pubs[0].epoch))


@pytest.mark.gen_test(timeout=60)
async def test_trim_writes_the_meta_first(mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trimming never deletes publications whose offsets only they record."""
    monkeypatch.setattr(history_mongo, "META_FLUSH_SECONDS", 3600.0)
    opts = StreamOptions(history_size=16)
    async with opened(mongo_db) as store:
        for _ in range(5):
            await publish_all(store, "t", 10, opts)
        for _ in range(100):
            if raw(mongo_db).publications.count_documents({"channel": "t"}) < 50:
                break
            await asyncio.sleep(0.02)
        kept = raw(mongo_db).publications.count_documents({"channel": "t"})
        assert kept < 50
        assert meta(mongo_db, "t")["top"] >= 50 - kept
