"""Single-node broker: delivers to this process's hub synchronously."""

from __future__ import annotations

from channels import tracing
from channels.broker import BrokerEventHandler
from channels.history import HistoryStore
from channels.types import (
    ClientInfo,
    HistoryQuery,
    HistoryResult,
    Publication,
    StreamOptions,
    StreamPosition,
)


class MemoryBroker:
    """Offsets come from the history store; delivery is a direct call.

    Ordering: ``HistoryStore.append`` completes in offset order per channel,
    and delivery happens right after it without another await, so subscribers
    see offsets in order.
    """

    def __init__(self, history: HistoryStore, tracer: tracing.Tracer | None = None) -> None:
        self._history = history
        self._tracer = tracer  # None: tracing off
        self._handler: BrokerEventHandler | None = None

    async def start(self, handler: BrokerEventHandler) -> None:
        # The history store's lifecycle belongs to the server's assembly.
        self._handler = handler

    async def close(self) -> None:
        return None

    def healthy(self) -> bool:
        return True  # in-process; the history store reports its own health

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def publish(
        self, channel: str, pub: Publication, opts: StreamOptions
    ) -> StreamPosition:
        if opts.enabled:
            with tracing.span(self._tracer, "squall.history.append", channel=channel):
                pub = await self._history.append(channel, pub, opts)
        assert self._handler is not None, "broker not started"
        self._handler.on_publication(channel, pub)
        return StreamPosition(pub.offset, pub.epoch)

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        assert self._handler is not None
        self._handler.on_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        assert self._handler is not None
        self._handler.on_leave(channel, info)

    async def publish_control(self, data: bytes) -> None:
        assert self._handler is not None
        self._handler.on_control(data)

    async def history(
        self, channel: str, query: HistoryQuery, opts: StreamOptions
    ) -> HistoryResult:
        return await self._history.read(channel, query, opts)

    async def remove_history(self, channel: str) -> None:
        await self._history.remove(channel)

    async def new_epoch(self, channel: str) -> None:
        return None  # an in-process stream never loses what it delivered
