"""bench/redis_publish's client side lands every client publish in Redis, as its offset check assumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from bench import redis_publish
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401

pytestmark = pytest.mark.redis


def test_client_side_publications_are_the_offsets_in_redis(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    """400 client publishes over 10 closed loops to 5 channels: each channel's meta key in Redis holds offset 80."""
    rate, cpu_us = asyncio.run(redis_publish.client_publishes(redis_server.url, tmp_path, 400, 10, 5))
    assert rate > 0 and cpu_us > 0
    r = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() for k in r.scan_iter(match="squall:*:meta:*", count=1000))
        assert sorted(k.rsplit(":meta:", 1)[1] for k in keys) == [f"stream:c{i}" for i in range(5)]
        assert [int(r.hget(k, "s") or 0) for k in keys] == [80] * 5
    finally:
        r.close()
    asyncio.run(redis_publish.check_offsets(redis_server.url, "squall:*:meta:*", 400))  # the bench's own check agrees
