"""Assembles Squall: backends, hub, handler context, and the route table."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tornado.web

from channels import tracing
from channels.events import EVENT_TYPES, EventLog, NoEvents
from channels.events_delivery import Delivery, Sink
from channels.events_webhook import Webhook
from channels.hub import Hub
from handlers.api_methods import ServerApi
from handlers.auth import TokenVerifier
from handlers.context import Context
from handlers.control import register_controls
from handlers.flusher import Flusher
from handlers.hooks import Hooks, load_hooks
from handlers.limits import ConnectionLimiter
from handlers.metrics import Metrics
from handlers.options import HandlerOptions
from handlers.pinger import Pinger
from handlers.options import Endpoint, ProxyConfig, StatusTransform
from handlers.proxy import Proxy
from handlers.proxy_metrics import ProxyEventCollector
from server.backends import Backends, build_backends, build_outbox
from server.routes import routes
from server.settings import ConfigError, Settings

log = logging.getLogger("squall.events")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@dataclass(eq=False)
class Squall:
    """One running node: its context, backends and Tornado application."""

    settings: Settings
    ctx: Context
    backends: Backends
    app: tornado.web.Application
    metrics: Metrics
    api: ServerApi  # the server API's methods, shared by Tornado's handler and the front door's lean path
    delivery: Delivery | None = None
    webhook: Webhook | None = None
    tracer_provider: Any = None  # the OpenTelemetry SDK's, when settings turned tracing on (shut down by close)

    async def start(self) -> None:
        """Start the history store first: the broker writes into it; the
        events outbox before the hub, which reports into it."""
        await self.backends.history.start()
        events = self.ctx.events
        if isinstance(events, EventLog):
            await events.outbox.start()
            events.start()
        await self.ctx.hub.start()
        if self.delivery is not None:
            self.delivery.start()
        self.ctx.pinger.start()
        self.metrics.start()

    async def close(self) -> None:
        await self.metrics.close()
        self.ctx.pinger.stop()
        await self.ctx.hub.drain_background()
        await self.ctx.hub.close()
        events = self.ctx.events
        if isinstance(events, EventLog):
            await events.close()  # what the last disconnects reported reaches the outbox
        if self.delivery is not None:
            await self.delivery.close()
        if self.webhook is not None:
            await self.webhook.close()
        if isinstance(events, EventLog):
            await events.outbox.close()
        if self.ctx.proxy is not None:
            await self.ctx.proxy.close()
        await self.backends.history.close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # exports what is still batched


def handler_options(settings: Settings) -> HandlerOptions:
    """The options handlers read, by the same names as in Settings."""
    return HandlerOptions(**{f.name: getattr(settings, f.name) for f in fields(HandlerOptions)})


def _endpoint(settings: Settings, key: str, url: str, timeout: float) -> Endpoint | None:
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(key, f"{url!r} is not an http:// or https:// URL")
    if timeout <= 0:
        raise ConfigError(key.replace("endpoint", "timeout"), "must be > 0")
    return Endpoint(url, timeout)


def proxy_config(settings: Settings) -> ProxyConfig:
    """The proxy_* settings as handlers.proxy reads them; ConfigError names a bad one."""
    s = settings

    def ep(event: str) -> Endpoint | None:
        return _endpoint(s, f"proxy_{event}_endpoint", getattr(s, f"proxy_{event}_endpoint"), getattr(s, f"proxy_{event}_timeout"))

    methods = {}
    for method, url in s.proxy_rpc_endpoints.items():
        e = _endpoint(s, "proxy_rpc_endpoints", str(url), s.proxy_rpc_timeout)
        if e is not None:
            methods[str(method)] = e
    transforms = []
    for i, raw in enumerate(s.proxy_http_status_code_transforms):
        try:
            transforms.append(StatusTransform.parse(raw))
        except (ValueError, AttributeError) as e:
            raise ConfigError(f"proxy_http_status_code_transforms[{i}]", str(e)) from None
    if s.proxy_max_inflight <= 0:
        raise ConfigError("proxy_max_inflight", "must be > 0")
    for ns in (s.channels.default, *s.channels.by_name.values()):
        for event in ("subscribe", "publish", "sub_refresh"):
            if getattr(ns, f"proxy_{event}") and not getattr(s, f"proxy_{event}_endpoint"):
                where = f"namespace {ns.name!r}" if ns.name else "[channel]"
                raise ConfigError(f"proxy_{event}_endpoint", f"{where} sets proxy_{event} = true: give the endpoint")
    return ProxyConfig(
        connect=ep("connect"), refresh=ep("refresh"), subscribe=ep("subscribe"), publish=ep("publish"),
        sub_refresh=ep("sub_refresh"), rpc=ep("rpc"), rpc_methods=methods,
        http_headers=tuple(h.lower() for h in s.proxy_http_headers),
        emulated_headers=tuple(h.lower() for h in s.proxy_emulated_headers),
        static_headers={str(k): str(v) for k, v in s.proxy_static_http_headers.items()},
        binary_encoding=s.proxy_binary_encoding, max_inflight=s.proxy_max_inflight, status_transforms=tuple(transforms),
    )


def _hook_sink(hooks: Hooks) -> Sink | None:
    """The in-process on_event hook as a delivery sink (the one call up, registered here)."""
    on_event = hooks.on_event
    if on_event is None:
        return None

    async def sink(events: list[dict[str, Any]]) -> None:
        for e in events:
            await on_event(e)

    return sink


def build(settings: Settings, hooks: Hooks | None = None, tracer: tracing.Tracer | None = None) -> Squall:
    """One node. Its tracer is made here from ``settings.tracing`` and handed
    to the hub, broker and handler context (no process-wide tracer); a given
    ``tracer`` is used instead (tests pass one exporting into memory; its
    provider stays the caller's to shut down)."""
    node_id = uuid.uuid4().hex
    hooks = hooks if hooks is not None else load_hooks(settings.hooks)
    pc = proxy_config(settings)
    tracer_provider = None
    if tracer is None:
        try:
            tracer_provider = tracing.provider(settings.tracing, settings.tracing_service_name, settings.tracing_otlp_endpoint)
        except RuntimeError as e:  # the otlp extra is not installed
            raise ConfigError("tracing", str(e)) from None
        tracer = tracing.tracer_of(tracer_provider)
    proxy = Proxy(pc) if pc.enabled else None
    webhook = Webhook(settings.events_webhook_url, settings.events_webhook_secret, settings.events_webhook_timeout) if settings.events_webhook_url else None
    sinks: list[Sink] = [s for s in (webhook, _hook_sink(hooks)) if s is not None]
    events: EventLog | NoEvents = NoEvents()
    delivery = None
    unknown = set(settings.events_types) - set(EVENT_TYPES)
    if unknown:
        raise ConfigError("events_types", f"unknown {', '.join(sorted(unknown))}; known: {', '.join(EVENT_TYPES)}")
    if settings.events_webhook_url and not settings.events_webhook_url.startswith(("http://", "https://")):
        raise ConfigError("events_webhook_url", "must be an http:// or https:// URL")
    if settings.events_webhook_url and not settings.events_webhook_secret:
        log.warning("events_webhook_url is set without events_webhook_secret: webhook bodies are not signed")
    if settings.events_types and sinks:
        events = EventLog(build_outbox(settings, node_id), node_id, settings.events_types)
        delivery = Delivery(
            events.outbox, sinks, events.stats, batch_size=settings.events_batch_size,
            min_delay=settings.events_retry_min_delay, max_delay=settings.events_retry_max_delay,
            max_attempts=settings.events_max_attempts,
        )
    backends = build_backends(settings, node_id, tracer)
    hub = Hub(
        backends.broker,
        backends.presence,
        settings.channels,
        node_id=node_id,
        node_name=settings.node_name,
        presence_ttl=settings.presence_ttl,
        recovery_max_publication_limit=settings.recovery_max_publication_limit,
        tracer=tracer,
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
        hooks=hooks,
        pinger=Pinger(settings.ping_interval, settings.pong_timeout),
        flusher=Flusher(settings.write_delay_ms / 1000.0),
        limiter=ConnectionLimiter(
            settings.client_connection_limit,
            settings.client_user_connection_limit,
            settings.client_ip_connection_limit,
            settings.client_connection_rate_limit,
        ),
        observer=metrics,
        proxy=proxy,
        events=events,
        tracer=tracer,
        history_healthy=backends.history.healthy,
    )
    if isinstance(events, EventLog):
        hub.events = events
    if not metrics.multiprocess and (proxy is not None or isinstance(events, EventLog)):
        metrics.registry.register(ProxyEventCollector(proxy, events.stats if isinstance(events, EventLog) else None))  # type: ignore[arg-type]
    app_settings: dict[str, Any] = {
        "websocket_max_message_size": settings.max_message_size,
        "websocket_ping_interval": None,  # our Pinger sends protocol pings
        "static_path": str(STATIC_DIR),
        "compress_response": False,
    }
    register_controls(hub, hooks)
    api = ServerApi(ctx)
    app = tornado.web.Application(routes(ctx, backends, metrics, STATIC_DIR, api), **app_settings)
    return Squall(settings, ctx, backends, app, metrics, api, delivery, webhook, tracer_provider)
