"""Two nodes opening a new channel's stream record at once agree on one epoch, and neither fails."""

from __future__ import annotations

import asyncio

import pytest

from channels.types import StreamOptions
from tests.channels.test_history_mongo import opened
from tests.helpers.mongo_server import MongoTarget, mongo_db, secantus  # noqa: F401

pytestmark = pytest.mark.mongo

OPTS = StreamOptions(history_size=100)


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_creation_of_a_stream_record(mongo_db: MongoTarget) -> None:  # noqa: F811
    """150 new channels, each opened by two stores at the same moment: every position read succeeds with one shared epoch."""
    async with opened(mongo_db) as a, opened(mongo_db) as b:
        channels = [f"race{i}" for i in range(150)]
        results = await asyncio.gather(
            *(s.position(ch) for ch in channels for s in (a, b)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"{len(failures)} of {len(results)} failed: {failures[:3]!r}"
        for i in range(0, len(results), 2):
            pa, pb = results[i], results[i + 1]
            assert not isinstance(pa, BaseException) and not isinstance(pb, BaseException)
            assert pa.epoch and pa.epoch == pb.epoch and pa.offset == pb.offset == 0
