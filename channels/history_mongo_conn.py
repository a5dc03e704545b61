"""The history store's MongoDB connection: client, health, and the indexes.

Every query on a hot path of :mod:`channels.history_mongo` is an equality
on ``channel`` plus a range or ``$in`` on ``offset``, or a lookup by
``_id``, so the indexes made here are what keeps each of them from
scanning the collection (docs/HISTORY.md, "Indexes and queries")::

    publications  unique (channel, offset); sparse TTL on expire_at
    streams       _id (the channel); sparse TTL on expire_at
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from pymongo.monitoring import TopologyDescriptionChangedEvent, TopologyListener
from pymongo.write_concern import WriteConcern

from channels.errors import BackendUnavailable

log = logging.getLogger("channels.history_mongo")

INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86

Collection = AsyncCollection[dict[str, Any]]


def parse_write_concern(value: str) -> WriteConcern | None:
    """'' = the driver's default; a number = that many nodes; else a mode or tag ('majority')."""
    value = value.strip()
    if not value:
        return None
    return WriteConcern(w=int(value) if value.isdigit() else value)


class _TopologyHealth(TopologyListener):
    """Tells the connection when the driver sees a writable server again, or none."""

    def __init__(self, set_healthy: Callable[[bool], None]) -> None:
        self._set_healthy = set_healthy

    def opened(self, event: Any) -> None:
        return None

    def description_changed(self, event: TopologyDescriptionChangedEvent) -> None:
        self._set_healthy(event.new_description.has_writable_server())

    def closed(self, event: Any) -> None:
        return None


class MongoConnection:
    """One driver client and the two collections; driver errors become BackendUnavailable."""

    def __init__(
        self,
        url: str,
        *,
        database: str,
        write_concern: str,
        timeout_ms: int,
        event_listeners: Sequence[Any] = (),
    ) -> None:
        self.url = url
        self._database = database
        self._write_concern = parse_write_concern(write_concern)
        self.timeout_ms = timeout_ms
        self._listeners = list(event_listeners)
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._pubs: Collection | None = None
        self._meta: Collection | None = None
        self._indexed = False
        self._healthy = False

    def open(self) -> None:
        """Create the client; it connects in the background."""
        t = self.timeout_ms
        self._client = AsyncMongoClient(
            self.url,
            serverSelectionTimeoutMS=t,
            connectTimeoutMS=t,
            socketTimeoutMS=max(2 * t, 2000),
            heartbeatFrequencyMS=1000,
            appname="squall-history",
            tz_aware=True,
            event_listeners=[_TopologyHealth(self.set_healthy), *self._listeners],
        )
        db = self._client.get_database(self._database, write_concern=self._write_concern)
        self._pubs = db.get_collection("publications")
        self._meta = db.get_collection("streams")

    async def close(self) -> None:
        client, self._client = self._client, None  # no health logs while closing
        self._healthy = False
        if client is not None:
            await client.close()

    def healthy(self) -> bool:
        return self._healthy and self._client is not None

    def set_healthy(self, ok: bool) -> None:
        if ok != self._healthy and self._client is not None:
            if ok:
                log.info("MongoDB history store reachable")
            else:
                log.warning("MongoDB history store unreachable")
        self._healthy = ok

    @contextmanager
    def backend(self, what: str) -> Iterator[None]:
        """Turn driver errors into a temporary client-facing error; which step failed and why is
        for the log, not for clients (the log's repeat filter folds an outage's lines)."""
        try:
            yield
        except PyMongoError as e:
            if isinstance(e, ConnectionFailure):
                self.set_healthy(False)
            log.warning("MongoDB %s failed: %s", what, e)
            raise BackendUnavailable("history store unavailable") from e
        self.set_healthy(True)

    def collections(self) -> tuple[Collection, Collection]:
        """(publications, streams); BackendUnavailable when not open."""
        if self._pubs is None or self._meta is None:
            raise BackendUnavailable("history store is not running")
        return self._pubs, self._meta

    async def ensure_indexes(self) -> None:
        if self._indexed:
            return
        pubs, meta = self.collections()
        with self.backend("create indexes"):
            await pubs.create_index([("channel", ASCENDING), ("offset", ASCENDING)], unique=True)
            for coll in (pubs, meta):
                await self._ttl_index(coll)
        self._indexed = True

    @staticmethod
    async def _ttl_index(coll: Collection) -> None:
        """Sparse, so publications kept forever cost no TTL index entry."""
        try:
            await coll.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0, sparse=True)
        except OperationFailure as e:
            if e.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
                raise
            log.warning("%s: keeping the existing expire_at index (%s)", coll.name, e)
