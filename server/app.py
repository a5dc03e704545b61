"""Assembles Squall: backends, hub, handler context, and the route table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tornado.web

from channels.hub import Hub
from handlers.auth import TokenVerifier
from handlers.context import Context
from handlers.control import register_controls
from handlers.flusher import Flusher
from handlers.hooks import Hooks, load_hooks
from handlers.limits import ConnectionLimiter
from handlers.metrics import Metrics
from handlers.options import HandlerOptions
from handlers.pinger import Pinger
from server.backends import Backends, build_backends
from server.routes import routes
from server.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@dataclass(eq=False)
class Squall:
    """One running node: its context, backends and Tornado application."""

    settings: Settings
    ctx: Context
    backends: Backends
    app: tornado.web.Application
    metrics: Metrics

    async def start(self) -> None:
        """Start the history store first: the broker writes into it."""
        await self.backends.history.start()
        await self.ctx.hub.start()
        self.ctx.pinger.start()
        self.metrics.start()

    async def close(self) -> None:
        await self.metrics.close()
        self.ctx.pinger.stop()
        await self.ctx.hub.drain_background()
        await self.ctx.hub.close()
        await self.backends.history.close()


def handler_options(settings: Settings) -> HandlerOptions:
    """The options handlers read, by the same names as in Settings."""
    return HandlerOptions(**{f.name: getattr(settings, f.name) for f in fields(HandlerOptions)})


def build(settings: Settings, hooks: Hooks | None = None) -> Squall:
    node_id = uuid.uuid4().hex
    backends = build_backends(settings, node_id)
    hub = Hub(
        backends.broker,
        backends.presence,
        settings.channels,
        node_id=node_id,
        node_name=settings.node_name,
        presence_ttl=settings.presence_ttl,
        recovery_max_publication_limit=settings.recovery_max_publication_limit,
    )
    metrics = Metrics(hub, backends.history)
    ctx = Context(
        options=handler_options(settings),
        hub=hub,
        channel_options=hub.namespaces.lookup,
        verifier=TokenVerifier(
            settings.token_hmac_secret_key,
            settings.token_rsa_public_key,
            settings.token_ecdsa_public_key,
            settings.token_audience,
            settings.token_issuer,
        ),
        hooks=hooks if hooks is not None else load_hooks(settings.hooks),
        pinger=Pinger(settings.ping_interval, settings.pong_timeout),
        flusher=Flusher(settings.write_delay_ms / 1000.0),
        limiter=ConnectionLimiter(
            settings.client_connection_limit,
            settings.client_user_connection_limit,
            settings.client_ip_connection_limit,
            settings.client_connection_rate_limit,
        ),
        observer=metrics,
    )
    app_settings: dict[str, Any] = {
        "websocket_max_message_size": settings.max_message_size,
        "websocket_ping_interval": None,  # our Pinger sends protocol pings
        "static_path": str(STATIC_DIR),
        "compress_response": False,
    }
    register_controls(hub)
    app = tornado.web.Application(routes(ctx, backends, metrics, STATIC_DIR), **app_settings)
    return Squall(settings, ctx, backends, app, metrics)
