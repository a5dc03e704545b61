"""Everything a handler needs, built once by server.app and passed through
``initialize(ctx=...)`` in the route table (never globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from channels.events import EventLog, NoEvents
from channels.hub import Hub
from channels.namespaces import NamespaceOptions
from channels.tracing import Tracer
from handlers.auth import TokenVerifier
from handlers.flusher import Flusher
from handlers.hooks import Hooks
from handlers.limits import ConnectionLimiter
from handlers.observer import NullObserver, Observer
from handlers.options import HandlerOptions
from handlers.pinger import Pinger
from handlers.proxy import Proxy

VERSION = "squall 0.1.0"


def _always_healthy() -> bool:
    """A history store that cannot be down (in memory)."""
    return True


@dataclass(frozen=True, eq=False)
class Context:
    options: HandlerOptions
    hub: Hub
    # channel -> its namespace's options; raises UnknownChannel (the hub's namespaces)
    channel_options: Callable[[str], NamespaceOptions]
    verifier: TokenVerifier
    hooks: Hooks
    pinger: Pinger
    flusher: Flusher
    limiter: ConnectionLimiter
    observer: Observer = field(default_factory=NullObserver)
    proxy: Proxy | None = None  # the HTTP proxy to the backend (handlers.proxy); None: no event proxied
    events: EventLog | NoEvents = field(default_factory=NoEvents)  # lifecycle events (channels.events)
    tracer: Tracer | None = None  # the node's spans (channels.tracing); None: tracing off
    # whether the history store is reachable now (the broker's health is the hub's); default: always
    history_healthy: Callable[[], bool] = field(default_factory=lambda: _always_healthy)
    version: str = VERSION
