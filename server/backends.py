"""Builds the broker, presence manager and history store named in Settings.

Backends that need Redis or MongoDB are imported only when configured, so the
memory engine runs with neither installed or reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.broker import Broker
from channels.events import Outbox
from channels.history import HistoryStore
from channels.presence import PresenceManager
from channels.tracing import Tracer
from server.settings import Settings


@dataclass(frozen=True)
class Backends:
    broker: Broker
    presence: PresenceManager
    history: HistoryStore


def build_history(settings: Settings) -> HistoryStore:
    if settings.history == "mongo":
        from channels.history_mongo import MongoHistoryStore

        return MongoHistoryStore(
            settings.mongo_url,
            database=settings.mongo_database,
            write_concern=settings.mongo_write_concern,
            batch_window_ms=settings.mongo_batch_window_ms,
            batch_size=settings.mongo_batch_size,
            timeout_ms=settings.mongo_timeout_ms,
        )
    from channels.history_memory import MemoryHistoryStore

    return MemoryHistoryStore()


def build_backends(settings: Settings, node_id: str, tracer: Tracer | None = None) -> Backends:
    """``tracer`` (None: off) goes to the broker, which spans history writes
    and carries trace context between nodes."""
    history = build_history(settings)
    if settings.engine == "redis":
        from channels.broker_redis import RedisBroker
        from channels.presence_redis import RedisPresenceManager

        broker: Broker = RedisBroker(
            settings.redis_urls,
            prefix=settings.redis_prefix,
            node_id=node_id,
            history=history if settings.history == "mongo" else None,
            hot_window=settings.history_hot_window,
            cluster=settings.redis_cluster,
            tracer=tracer,
        )
        presence: PresenceManager = RedisPresenceManager(
            settings.redis_urls,
            prefix=settings.redis_prefix,
            ttl=settings.presence_ttl,
            cluster=settings.redis_cluster,
        )
        return Backends(broker, presence, history)
    from channels.broker_memory import MemoryBroker
    from channels.presence_memory import MemoryPresenceManager

    return Backends(MemoryBroker(history, tracer), MemoryPresenceManager(), history)


def build_outbox(settings: Settings, node_id: str) -> Outbox:
    """Where lifecycle events wait until delivered: a Redis Stream under the
    Redis engine (survives restarts), this process's memory otherwise."""
    if settings.engine == "redis":
        from channels.events_redis import RedisOutbox

        return RedisOutbox(
            settings.redis_urls[0], settings.redis_prefix, node_id,
            claim_idle=settings.events_claim_idle, max_len=settings.events_outbox_max_len,
        )
    from channels.events_memory import MemoryOutbox

    return MemoryOutbox(settings.events_outbox_max_len)
