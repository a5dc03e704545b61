"""history_meta_ttl: a namespace option that makes idle stream meta expire, in Redis and MongoDB."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from channels import history_mongo
from channels.namespaces import build_namespaces
from channels.types import Publication, StreamOptions
from tests.channels.test_broker_redis import nodes, pub
from tests.channels.test_history_mongo import opened, raw
from tests.helpers.mongo_server import MongoTarget, mongo_db, secantus  # noqa: F401  (fixtures)

META = StreamOptions(history_size=10, history_ttl=300, meta_ttl=600)


def test_namespace_option_reaches_the_stream() -> None:
    """history_meta_ttl is parsed as a duration and carried in the stream options; negative is refused."""
    ns = build_namespaces({}, [{"name": "feed", "history_size": 10, "history_meta_ttl": "2h"}])
    assert ns.lookup("feed:x").stream.meta_ttl == 7200
    assert ns.lookup("feed:x").stream is ns.lookup("feed:y").stream  # one shared instance
    assert build_namespaces({}, []).default.stream.meta_ttl == 0
    with pytest.raises(ValueError, match="history_meta_ttl"):
        build_namespaces({}, [{"name": "feed", "history_meta_ttl": -1}])


@pytest.mark.redis
@pytest.mark.gen_test(timeout=30)
async def test_redis_meta_expires_after_meta_ttl(redis_url: str) -> None:
    """A publish sets the TTL of the channel's meta hash; without the option it has none."""
    async with nodes([redis_url], n=1) as [(a, _)]:
        await a.publish("m:ttl", pub(1), META)
        await a.publish("m:forever", pub(1), StreamOptions(history_size=10))
        c = aioredis.Redis.from_url(redis_url)
        try:
            assert 0 < await c.ttl(a._shards.keys("m:ttl").meta) <= 600
            assert await c.ttl(a._shards.keys("m:forever").meta) == -1
        finally:
            await c.aclose()


@pytest.mark.mongo
@pytest.mark.gen_test(timeout=60)
async def test_mongo_stream_meta_gets_expire_at(mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream meta document of a namespace with history_meta_ttl carries expire_at; others do not."""
    monkeypatch.setattr(history_mongo, "META_FLUSH_SECONDS", 3600.0)
    async with opened(mongo_db) as store:
        await store.append("ttl", Publication(data=1), META)
        await store.append("forever", Publication(data=1), StreamOptions(history_size=10))
    streams = raw(mongo_db).streams
    assert streams.find_one({"_id": "ttl"}).get("expire_at") is not None
    assert "expire_at" not in streams.find_one({"_id": "forever"})
