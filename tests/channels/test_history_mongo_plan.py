"""The MongoDB history store's queries are index-backed (explain), on SecantusDB or MONGO_URL.

Every query the store sends is captured with pymongo command monitoring and
explained on the same server: a ``COLLSCAN`` anywhere in the winning plan, or
more documents examined than the query's own range can hold, fails the test.
A scan costs time proportional to the whole collection, so each test seeds
other channels with many more documents than the queries may touch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from channels.types import HistoryQuery, Publication, StreamOptions, StreamPosition
from tests.channels.test_history_mongo import opened, raw
from tests.helpers.mongo_server import MongoTarget, mongo_db, secantus  # noqa: F401  (fixtures)

pytestmark = pytest.mark.mongo

OTHER_DOCS = 3000  # documents in channels the queries must not touch
TTL = StreamOptions(history_size=1000, history_ttl=600)


@dataclass(frozen=True)
class Query:
    """One filter the store sent, as a find with the same sort and limit."""

    command: str
    collection: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None
    limit: int


class QueryRecorder(CommandListener):
    """Records the filter of every find/update/delete/findAndModify the store sends."""

    def __init__(self) -> None:
        self.queries: list[Query] = []

    def started(self, event: CommandStartedEvent) -> None:
        cmd, name = event.command, event.command_name
        if name == "find":
            self.queries.append(Query(name, cmd["find"], dict(cmd.get("filter", {})), cmd.get("sort"),
                                      abs(int(cmd.get("limit", 0)))))
        elif name == "findAndModify":
            self.queries.append(Query(name, cmd["findAndModify"], dict(cmd.get("query", {})), cmd.get("sort"), 1))
        elif name in ("update", "delete"):
            for op in cmd.get(name + "s", []):
                self.queries.append(Query(name, cmd[name], dict(op.get("q", {})), None, 0))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        return None

    def failed(self, event: CommandFailedEvent) -> None:
        return None

    def clear(self) -> None:
        self.queries.clear()


def stages(plan: dict[str, Any]) -> list[str]:
    """Every stage name in a winning plan tree."""
    out = [str(plan.get("stage", ""))]
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            out += stages(plan[key])
    for child in plan.get("inputStages", []) or []:
        out += stages(child)
    return out


def explain(db: Any, q: Query) -> dict[str, Any]:
    """explain (executionStats) of the query as a find: SecantusDB plans an
    update's or delete's filter as it plans the same find (its explain of a
    write command reports no filter at all), and so does mongod."""
    cmd: dict[str, Any] = {"find": q.collection, "filter": q.filter}
    if q.sort:
        cmd["sort"] = q.sort
    if q.limit:
        cmd["limit"] = q.limit
    out: dict[str, Any] = db.command({"explain": cmd, "verbosity": "executionStats"})
    return out


def assert_index_backed(db: Any, queries: list[Query], max_examined: int) -> list[dict[str, Any]]:
    """No collection scan, and no query examines more than ``max_examined`` documents."""
    assert queries, "the store sent no query"
    plans, bad = [], []
    for q in queries:
        if q.filter.keys() == {"_id"}:  # a primary-key lookup (stream meta)
            continue
        res = explain(db, q)
        names = stages(res["queryPlanner"]["winningPlan"])
        examined = res["executionStats"]["totalDocsExamined"]
        if "COLLSCAN" in names or "IXSCAN" not in names or examined > max_examined:
            bad.append(f"{q.command} {q.collection} {q.filter} sort={q.sort}: {names}, {examined} examined")
        plans.append(res)
    assert not bad, "queries not served by an index range:\n" + "\n".join(bad)
    return plans


def seed_other_channels(target: MongoTarget) -> None:
    """Many documents in channels the tests never read, so a scan examines them."""
    db = raw(target)
    now = dt.datetime.now(dt.timezone.utc)
    db.publications.insert_many(
        [{"channel": f"other{i % 50}", "offset": i // 50 + 1, "epoch": "o", "data": "1",
          "expire_at": now + dt.timedelta(hours=1)} for i in range(OTHER_DOCS)],
        ordered=False,
    )


def pubs(lo: int, hi: int, epoch: str = "e1") -> list[Publication]:
    return [Publication(data={"o": o}, offset=o, epoch=epoch) for o in range(lo, hi + 1)]


@pytest.mark.gen_test(timeout=120)
async def test_hot_path_queries_are_index_backed(mongo_db: MongoTarget) -> None:
    """Appends, stream loads, writes, reads with a TTL and trims send only index-backed queries."""
    rec = QueryRecorder()
    db = raw(mongo_db)
    async with opened(mongo_db, event_listeners=[rec]) as store:
        await store.write("w", pubs(1, 40), TTL)  # creates the indexes first
        seed_other_channels(mongo_db)
        for i in range(30):
            await store.append("a", Publication(data=i), TTL)
    async with opened(mongo_db, event_listeners=[rec]) as store:
        await store.append("a", Publication(data="after restart"), TTL)  # loads the stream
        await store.write("w", pubs(41, 50), TTL)
        for ch in ("a", "w"):
            top = await store.position(ch)
            for q in (
                HistoryQuery(limit=-1),
                HistoryQuery(limit=5),
                HistoryQuery(limit=5, since=StreamPosition(10, top.epoch)),
                HistoryQuery(limit=5, reverse=True),
                HistoryQuery(limit=5, since=StreamPosition(20, top.epoch), reverse=True),
            ):
                res = await store.read(ch, q, TTL)
                assert res.publications, (ch, q)
        # trimming: a small history_size moves the floor
        small = StreamOptions(history_size=10, history_ttl=600)
        await store.write("w", pubs(51, 80), small)
        await asyncio.sleep(0.2)
        res = await store.read("w", HistoryQuery(limit=-1), small)
        assert [p.offset for p in res.publications] == list(range(71, 81))
    assert_index_backed(db, rec.queries, max_examined=100)


@pytest.mark.gen_test(timeout=120)
async def test_reads_skip_expired_with_index_ranges(mongo_db: MongoTarget) -> None:
    """Expired but not yet deleted publications are skipped, and the read stays an index range."""
    rec = QueryRecorder()
    db = raw(mongo_db)
    async with opened(mongo_db, event_listeners=[rec]) as store:
        await store.write("x", pubs(1, 30), TTL)
        seed_other_channels(mongo_db)
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        db.publications.update_many({"channel": "x", "offset": {"$lte": 12}}, {"$set": {"expire_at": past}})
        rec.clear()
        res = await store.read("x", HistoryQuery(limit=5), TTL)
        assert [p.offset for p in res.publications] == [13, 14, 15, 16, 17]
        res = await store.read("x", HistoryQuery(limit=-1), TTL)
        assert [p.offset for p in res.publications] == list(range(13, 31))
        res = await store.read("x", HistoryQuery(limit=5, since=StreamPosition(15, "e1"), reverse=True), TTL)
        assert [p.offset for p in res.publications] == [14, 13]
    assert_index_backed(db, rec.queries, max_examined=30)


@pytest.mark.gen_test(timeout=120)
async def test_duplicates_rewritten_after_timeout_cost_the_batch(mongo_db: MongoTarget) -> None:
    """A claimer's rewrite of stored publications: one index-backed query per channel, examining only the batch."""
    rec = QueryRecorder()
    db = raw(mongo_db)
    batch = 10
    async with opened(mongo_db, event_listeners=[rec], batch_window_ms=50.0) as store:
        await store.write("d1", pubs(1, 200), TTL)
        await store.write("d2", pubs(1, 200), TTL)
        seed_other_channels(mongo_db)
        rec.clear()
        # Both channels' duplicates (and one new publication) land in one group-committed batch.
        await asyncio.gather(
            store.write("d1", pubs(191, 200), TTL),
            store.write("d2", pubs(192, 201), TTL),
        )
        assert store.batches >= 1
        assert (await store.position("d2")).offset == 201
    checks = [q for q in rec.queries if q.command == "find" and q.collection == "publications"]
    assert len(checks) <= 2, f"{len(checks)} duplicate queries for a batch of two channels: {checks}"
    assert not any("$or" in q.filter for q in checks), checks
    plans = assert_index_backed(db, checks, max_examined=batch)
    total = sum(p["executionStats"]["totalDocsExamined"] for p in plans)
    assert total <= 2 * batch, f"duplicate checks examined {total} documents for {2 * batch} duplicates"
    assert db.publications.count_documents({"channel": {"$in": ["d1", "d2"]}}) == 401
