"""RedisShards' key names: the same as computed afresh, and a bounded cache of them."""

from __future__ import annotations

import pytest

from channels import redis_shards
from channels.redis_shards import RedisShards


def test_remembered_keys_equal_fresh_ones() -> None:
    """A second lookup answers the same names the first computed, for each channel."""
    shards = RedisShards(["redis://127.0.0.1:1"], prefix="t", cluster=False)
    for channel in ("a", "chat:room", "ns:x#1"):
        first = shards.keys(channel)
        assert shards.keys(channel) is first
        assert first == shards._make_keys(channel)
        assert first.topic == f"{shards.tag(first.bucket)}:ch:{channel}".encode()


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past KEYS_CACHE channels the cache starts over rather than growing."""
    monkeypatch.setattr(redis_shards, "KEYS_CACHE", 3)
    shards = RedisShards(["redis://127.0.0.1:1"], prefix="t", cluster=False)
    for i in range(10):
        shards.keys(f"c{i}")
        assert len(shards._keys) <= 3
    assert shards.keys("c9") == shards._make_keys("c9")
