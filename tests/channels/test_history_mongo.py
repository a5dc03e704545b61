"""MongoHistoryStore against a real MongoDB-wire server (SecantusDB, or MONGO_URL too)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
from pymongo import MongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent, CommandSucceededEvent, CommandFailedEvent

from channels.errors import BackendUnavailable, UnrecoverablePosition
from channels.history_mongo import MongoHistoryStore, parse_write_concern, trim_step
from channels.types import ClientInfo, HistoryQuery, Publication, StreamOptions, StreamPosition
from tests.helpers.mongo_server import (  # noqa: F401  (fixtures)
    MongoTarget,
    SecantusFactory,
    free_port,
    mongo_db,
    secantus,
    secantus_factory,
)
from tests.helpers.waiting import until

pytestmark = pytest.mark.mongo

OPTS = StreamOptions(history_size=1000)


@asynccontextmanager
async def opened(target: MongoTarget | str, database: str = "", **kw: Any) -> AsyncIterator[MongoHistoryStore]:
    url = target if isinstance(target, str) else target.url
    db = database or (target.database if isinstance(target, MongoTarget) else "squall")
    store = MongoHistoryStore(
        url,
        database=db,
        write_concern=kw.pop("write_concern", ""),
        batch_window_ms=kw.pop("batch_window_ms", 2.0),
        batch_size=kw.pop("batch_size", 500),
        timeout_ms=kw.pop("timeout_ms", 1000),
        **kw,
    )
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def raw(target: MongoTarget) -> Any:
    """A plain synchronous client on the test's database, for inspection."""
    return MongoClient(target.url, serverSelectionTimeoutMS=5000, tz_aware=True)[target.database]


class InsertCounter(CommandListener):
    """Counts insert commands on the publications collection (command monitoring)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.command.get("insert") == "publications":
            self.sizes.append(len(event.command.get("documents", [])))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        return None

    def failed(self, event: CommandFailedEvent) -> None:
        return None


async def publish_all(store: MongoHistoryStore, channel: str, n: int, opts: StreamOptions = OPTS) -> list[Publication]:
    return list(await asyncio.gather(*(store.append(channel, Publication(data={"i": i}), opts) for i in range(n))))


def test_parse_write_concern() -> None:
    """'' is the driver default, digits are a node count, other text a mode."""
    assert parse_write_concern("") is None
    wc = parse_write_concern("2")
    assert wc is not None and wc.document == {"w": 2}
    wc = parse_write_concern("majority")
    assert wc is not None and wc.document == {"w": "majority"}


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_appends_contiguous_and_in_order(mongo_db: MongoTarget) -> None:
    """500 concurrent appends over 3 channels: offsets 1..n, callers resume in offset order."""
    channels = ["a", "b", "c"]
    resumed: dict[str, list[int]] = {c: [] for c in channels}
    sent: dict[str, list[int]] = {c: [] for c in channels}

    async def one(store: MongoHistoryStore, i: int) -> None:
        ch = channels[i % 3]
        sent[ch].append(i)
        pub = await store.append(ch, Publication(data={"i": i}, info=ClientInfo("c1", "u1")), OPTS)
        resumed[ch].append(pub.offset)

    async with opened(mongo_db) as store:
        await asyncio.gather(*(one(store, i) for i in range(500)))
        for ch in channels:
            n = len(sent[ch])
            assert resumed[ch] == list(range(1, n + 1))
            res = await store.read(ch, HistoryQuery(limit=-1), OPTS)
            assert [p.offset for p in res.publications] == list(range(1, n + 1))
            assert [p.data["i"] for p in res.publications] == sent[ch]
            assert res.position.offset == n and res.position.epoch
            assert res.publications[0].info == ClientInfo("c1", "u1")
        assert store.healthy()


@pytest.mark.gen_test(timeout=60)
async def test_group_commit_batches_inserts(mongo_db: MongoTarget) -> None:
    """300 concurrent appends share a few insert_many calls, none above batch_size."""
    counter = InsertCounter()
    async with opened(mongo_db, batch_size=50, batch_window_ms=5.0, event_listeners=[counter]) as store:
        pubs = await publish_all(store, "g", 300)
        assert sorted(p.offset for p in pubs) == list(range(1, 301))
        assert sum(counter.sizes) == 300
        assert max(counter.sizes) <= 50
        assert len(counter.sizes) <= 300 // 10
        assert store.batches == len(counter.sizes)


@pytest.mark.gen_test(timeout=60)
async def test_data_round_trips_any_json(mongo_db: MongoTarget) -> None:
    """Keys with $ and dots, big integers, nested lists and tags come back unchanged."""
    data = {"$set": {"a.b": [1, 2.5, None, True]}, "big": 2**80, "": "empty key", "s": "x\x00y"}
    info = ClientInfo("cid", "alice", conn_info={"$x": 1}, chan_info=[1, "two"])
    async with opened(mongo_db) as store:
        pub = await store.append("j", Publication(data=data, info=info, tags={"k": "v"}, time=123), OPTS)
        await store.append("j", Publication(data="plain"), OPTS)
        res = await store.read("j", HistoryQuery(limit=-1), OPTS)
    got = res.publications[0]
    assert (got.data, got.info, got.tags, got.time, got.offset, got.epoch) == (data, info, {"k": "v"}, 123, 1, pub.epoch)
    assert res.publications[1].data == "plain"


@pytest.mark.gen_test(timeout=60)
async def test_trim_to_history_size(mongo_db: MongoTarget) -> None:
    """Only the last history_size publications are read; older ones get deleted."""
    opts = StreamOptions(history_size=20)
    async with opened(mongo_db) as store:
        for _ in range(4):
            await publish_all(store, "t", 50, opts)
        res = await store.read("t", HistoryQuery(limit=-1), opts)
        assert [p.offset for p in res.publications] == list(range(181, 201))
        small = await store.read("t", HistoryQuery(limit=-1), StreamOptions(history_size=5))
        assert [p.offset for p in small.publications] == list(range(196, 201))
        deadline = time.monotonic() + 10
        db = raw(mongo_db)
        while time.monotonic() < deadline:
            count = db.publications.count_documents({"channel": "t"})
            if count <= 20 + trim_step(20):
                break
            await asyncio.sleep(0.05)
        assert db.publications.count_documents({"channel": "t"}) <= 20 + trim_step(20)
        assert db.publications.count_documents({"channel": "t", "offset": {"$gt": 180}}) == 20


@pytest.mark.gen_test(timeout=60)
async def test_ttl_sets_expire_at_and_reads_skip_expired(mongo_db: MongoTarget) -> None:
    """expire_at = now + history_ttl (absent without a ttl); expired entries are never read."""
    ttl_opts = StreamOptions(history_size=100, history_ttl=60)
    db = raw(mongo_db)
    async with opened(mongo_db) as store:
        before = dt.datetime.now(dt.timezone.utc)
        await publish_all(store, "ttl", 10, ttl_opts)
        after = dt.datetime.now(dt.timezone.utc)
        await store.append("forever", Publication(data=1), OPTS)
        indexes = db.publications.index_information()
        assert any(ix.get("expireAfterSeconds") == 0 and ix["key"] == [("expire_at", 1)] for ix in indexes.values())
        for doc in db.publications.find({"channel": "ttl"}):
            assert before + dt.timedelta(seconds=59) <= doc["expire_at"] <= after + dt.timedelta(seconds=61)
        assert "expire_at" not in db.publications.find_one({"channel": "forever"})
        # What the TTL monitor (about once a minute) has not deleted yet is already gone for readers.
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        db.publications.update_many({"channel": "ttl", "offset": {"$lte": 4}}, {"$set": {"expire_at": past}})
        res = await store.read("ttl", HistoryQuery(limit=-1), ttl_opts)
        assert [p.offset for p in res.publications] == list(range(5, 11))
        first = await store.read("ttl", HistoryQuery(limit=3, since=StreamPosition(0, res.position.epoch)), ttl_opts)
        assert [p.offset for p in first.publications] == [5, 6, 7]
        newest = await store.read("ttl", HistoryQuery(limit=8, reverse=True), ttl_opts)
        assert [p.offset for p in newest.publications] == list(range(10, 4, -1))


@pytest.mark.gen_test(timeout=60)
async def test_read_semantics_and_pagination(mongo_db: MongoTarget) -> None:
    """limit/since/reverse as channels.history_memory.select; pages cover the history once."""
    async with opened(mongo_db) as store:
        await publish_all(store, "p", 45)
        pos = await store.position("p")
        assert pos.offset == 45
        only = await store.read("p", HistoryQuery(limit=0), OPTS)
        assert only.publications == [] and only.position == pos
        with pytest.raises(UnrecoverablePosition):
            await store.read("p", HistoryQuery(limit=5, since=StreamPosition(3, "other")), OPTS)
        rev = await store.read("p", HistoryQuery(limit=3, since=StreamPosition(40, pos.epoch), reverse=True), OPTS)
        assert [p.offset for p in rev.publications] == [39, 38, 37]
        # forward pages: since = last offset of the previous page
        seen: list[int] = []
        since = StreamPosition(0, pos.epoch)
        for _ in range(10):
            page = await store.read("p", HistoryQuery(limit=10, since=since), OPTS)
            if not page.publications:
                break
            seen += [p.offset for p in page.publications]
            since = StreamPosition(page.publications[-1].offset, page.position.epoch)
        assert seen == list(range(1, 46))
        # backward pages (Centrifugo's iteration): reverse, since = oldest of the previous page
        back: list[int] = []
        rsince: StreamPosition | None = None
        for _ in range(10):
            page = await store.read("p", HistoryQuery(limit=10, since=rsince, reverse=True), OPTS)
            if not page.publications:
                break
            back += [p.offset for p in page.publications]
            rsince = StreamPosition(page.publications[-1].offset, page.position.epoch)
        assert back == list(range(45, 0, -1))


@pytest.mark.gen_test(timeout=60)
async def test_new_store_continues_offsets_and_epoch(mongo_db: MongoTarget) -> None:
    """After a restart (new store instance) offsets continue in the same epoch."""
    async with opened(mongo_db) as store:
        first = await publish_all(store, "r", 5)
        epoch = first[0].epoch
    async with opened(mongo_db) as store:
        assert await store.position("r") == StreamPosition(5, epoch)
        pub = await store.append("r", Publication(data="after"), OPTS)
        assert (pub.offset, pub.epoch) == (6, epoch)
        res = await store.read("r", HistoryQuery(limit=-1), OPTS)
        assert [p.offset for p in res.publications] == [1, 2, 3, 4, 5, 6]


@pytest.mark.gen_test(timeout=60)
async def test_reload_counts_publications_above_meta_top(mongo_db: MongoTarget) -> None:
    """A batch stored without its meta update is counted: its offsets are never reused."""
    async with opened(mongo_db) as store:
        pubs = await publish_all(store, "m", 3)
    db = raw(mongo_db)
    db.publications.insert_one({"channel": "m", "offset": 4, "epoch": pubs[0].epoch, "data": '"landed"'})
    async with opened(mongo_db) as store:
        pub = await store.append("m", Publication(data="next"), OPTS)
        assert pub.offset == 5
        res = await store.read("m", HistoryQuery(limit=-1), OPTS)
        assert [p.data for p in res.publications] == [{"i": 0}, {"i": 1}, {"i": 2}, "landed", "next"]


@pytest.mark.gen_test(timeout=60)
async def test_offset_conflict_raises_instead_of_dropping(mongo_db: MongoTarget) -> None:
    """A foreign document at our next offset fails the append; the next one moves past it."""
    async with opened(mongo_db) as store:
        first = await store.append("x", Publication(data=1), OPTS)
        raw(mongo_db).publications.insert_one({"channel": "x", "offset": 2, "epoch": first.epoch, "data": '"foreign"'})
        with pytest.raises(BackendUnavailable):
            await store.append("x", Publication(data=2), OPTS)
        third = await store.append("x", Publication(data=3), OPTS)
        assert third.offset == 3
        res = await store.read("x", HistoryQuery(limit=-1), OPTS)
        assert [p.data for p in res.publications] == [1, "foreign", 3]


@pytest.mark.gen_test(timeout=60)
async def test_write_is_idempotent_and_follows_epoch(mongo_db: MongoTarget) -> None:
    """write() stores given offsets once; a continuing epoch keeps history, a restarting one replaces it."""
    def pubs(lo: int, hi: int, epoch: str) -> list[Publication]:
        return [Publication(data={"o": o}, offset=o, epoch=epoch) for o in range(lo, hi + 1)]

    db = raw(mongo_db)
    async with opened(mongo_db) as store:
        await store.write("w", pubs(1, 5, "e1"), OPTS)
        await store.write("w", pubs(1, 5, "e1"), OPTS)
        await store.write("w", pubs(4, 8, "e1"), OPTS)
        assert db.publications.count_documents({"channel": "w"}) == 8
        res = await store.read("w", HistoryQuery(limit=-1), OPTS)
        assert [p.offset for p in res.publications] == list(range(1, 9))
        assert res.position == StreamPosition(8, "e1")
        # upstream lost its state but continued from our position: nothing is dropped
        await store.write("w", pubs(9, 10, "e2"), OPTS)
        res = await store.read("w", HistoryQuery(limit=-1), OPTS)
        assert res.position == StreamPosition(10, "e2")
        assert [(p.offset, p.epoch) for p in res.publications][-3:] == [(8, "e1"), (9, "e2"), (10, "e2")]
        # offsets restarted: the old stream cannot stay beside the new one
        await store.write("w", pubs(1, 2, "e3"), OPTS)
        res = await store.read("w", HistoryQuery(limit=-1), OPTS)
        assert res.position == StreamPosition(2, "e3")
        assert [(p.offset, p.epoch) for p in res.publications] == [(1, "e3"), (2, "e3")]
        # a late write of a retired epoch is skipped, not mixed in
        await store.write("w", pubs(3, 3, "e1"), OPTS)
        assert db.publications.count_documents({"channel": "w"}) == 2
        assert await store.position("w") == StreamPosition(2, "e3")


@pytest.mark.gen_test(timeout=60)
async def test_write_concern_majority_and_remove(mongo_db: MongoTarget) -> None:
    """w=majority writes are acknowledged; remove() drops publications but keeps the position."""
    async with opened(mongo_db, write_concern="majority") as store:
        await publish_all(store, "wc", 3)
        pos = await store.position("wc")
        await store.remove("wc")
        res = await store.read("wc", HistoryQuery(limit=-1), OPTS)
        assert res.publications == [] and res.position == pos
        pub = await store.append("wc", Publication(data="again"), OPTS)
        assert (pub.offset, pub.epoch) == (4, pos.epoch)


@pytest.mark.gen_test(timeout=30)
async def test_unreachable_server_fails_fast(caplog: pytest.LogCaptureFixture) -> None:
    """With nothing listening, start() survives, healthy() is False, calls raise BackendUnavailable that says
    only "history store unavailable" to clients; the failed step stays in the log."""
    async with opened(f"mongodb://127.0.0.1:{free_port()}", timeout_ms=300) as store:
        assert not store.healthy()
        with pytest.raises(BackendUnavailable) as e:
            await store.append("down", Publication(data=1), OPTS)
        assert e.value.message == "history store unavailable"
        assert "create indexes failed" in caplog.text
        with pytest.raises(BackendUnavailable):
            await store.read("down", HistoryQuery(limit=10), OPTS)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_outage_during_steady_appends(secantus_factory: SecantusFactory) -> None:
    """Stop MongoDB mid-stream and start it again: each append raised or is stored; no hole."""
    server = secantus_factory()
    target = MongoTarget(server.url, "squall_outage", "secantus")
    channels = ["o1", "o2", "o3"]
    acked: dict[str, dict[int, int]] = {c: {} for c in channels}  # offset -> message id
    failed: list[int] = []
    attempts = 0
    phase = {"after_restart": 0}
    stop = asyncio.Event()

    async def publisher(store: MongoHistoryStore, k: int) -> None:
        nonlocal attempts
        for n in range(100_000):
            if stop.is_set():
                return
            msg_id = k * 1_000_000 + n
            ch = channels[k % 3]
            attempts += 1
            try:
                pub = await store.append(ch, Publication(data={"id": msg_id}), OPTS)
            except BackendUnavailable:
                failed.append(msg_id)
                await asyncio.sleep(0.05)
                continue
            acked[ch][pub.offset] = msg_id
            if restarted.is_set():
                phase["after_restart"] += 1

    restarted = asyncio.Event()
    async with opened(target, timeout_ms=500) as store:
        tasks = [asyncio.ensure_future(publisher(store, k)) for k in range(9)]
        try:
            await until(lambda: sum(len(a) for a in acked.values()) >= 300, 20)
            await asyncio.to_thread(server.stop)
            await until(lambda: len(failed) >= 9 and not store.healthy(), 20)
            await asyncio.to_thread(server.start)
            restarted.set()
            await until(lambda: phase["after_restart"] >= 300, 30)
            assert store.healthy()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert sum(len(a) for a in acked.values()) + len(failed) == attempts
        for ch in channels:
            res = await store.read(ch, HistoryQuery(limit=-1), OPTS)
            stored = {p.offset: p.data["id"] for p in res.publications}
            assert sorted(stored) == list(range(1, res.position.offset + 1)), "offsets have a hole"
            for offset, msg_id in acked[ch].items():
                assert stored.get(offset) == msg_id, "an acknowledged publication was lost"
            extra = set(stored.values()) - set(acked[ch].values())
            assert extra <= set(failed), "history holds something never published"
