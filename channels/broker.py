"""The Broker interface: moves publications, joins and leaves between nodes.

A broker also owns each channel's stream (offset assignment and the recent
history window) because ordering is only sound where offsets are assigned and
messages are published in one step. Durable storage beyond the window is a
:class:`channels.history.HistoryStore` that the broker is built with; the
server's assembly starts and closes that store (before and after the broker),
so brokers never call its start() or close().

Upward calls go only through the :class:`BrokerEventHandler` given to
:meth:`Broker.start`; the hub implements it.
"""

from __future__ import annotations

from typing import Protocol

from channels.types import (
    ClientInfo,
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)


class BrokerEventHandler(Protocol):
    """What a broker calls when something arrives for this node."""

    def on_publication(self, channel: str, pub: Publication) -> None: ...

    def on_join(self, channel: str, info: ClientInfo) -> None: ...

    def on_leave(self, channel: str, info: ClientInfo) -> None: ...

    def on_control(self, data: bytes) -> None: ...

    def on_broker_resync(self) -> None:
        """The broker lost messages (reconnect): streams may have gaps."""
        ...


class Broker(Protocol):
    """Pub/sub between nodes plus each channel's stream.

    Contract for :meth:`publish`: for one channel, publications are delivered
    to every node's handler in offset order, and the call returns only once the
    publication is durable in the configured history store (when the channel
    keeps history).  Errors are :class:`channels.errors.BackendUnavailable`.
    """

    async def start(self, handler: BrokerEventHandler) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s messages on this node."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(
        self, channel: str, pub: Publication, opts: StreamOptions
    ) -> StreamPosition:
        """Assign the next offset (when ``opts.enabled``), store and deliver."""
        ...

    async def publish_join(self, channel: str, info: ClientInfo) -> None: ...

    async def publish_leave(self, channel: str, info: ClientInfo) -> None: ...

    async def publish_control(self, data: bytes) -> None:
        """Broadcast a node-to-node control message (includes this node)."""
        ...

    async def history(
        self, channel: str, query: HistoryQuery, opts: StreamOptions
    ) -> HistoryResult: ...

    async def remove_history(self, channel: str) -> None: ...

    async def new_epoch(self, channel: str) -> None:
        """Start the stream over under a new epoch: it lost publications that were delivered (an
        asynchronous replica promoted), so every position in the old epoch is unrecoverable."""
        ...

    def healthy(self) -> bool:
        """Whether the broker is connected right now (for /health, /ready)."""
        ...
