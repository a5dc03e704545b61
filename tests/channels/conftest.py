"""Fixtures for the channel-layer tests: real Redis servers."""

from tests.helpers.redis_server import redis_cluster, redis_cluster3, redis_cluster_replicated, redis_factory, redis_server, redis_url  # noqa: F401
