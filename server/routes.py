"""The route table: every handler gets its dependencies via initialize()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from handlers.admin import admin_routes
from handlers.api import api_routes
from handlers.api_methods import ServerApi
from handlers.context import Context
from handlers.emulation import EmulationHandler
from handlers.emulation_sessions import EmulationSessions
from handlers.emulation_transport import HttpStreamBidiHandler, SSEBidiHandler
from handlers.health import HealthHandler, ReadyHandler
from handlers.http_stream import HttpStreamHandler
from handlers.metrics import Metrics, MetricsHandler
from handlers.pages import PageHandler
from handlers.sse import SSEHandler
from handlers.uni_websocket import UniWebSocketHandler
from handlers.websocket import WS_PATH, WebSocketHandler
from server.backends import Backends


def routes(ctx: Context, backends: Backends, metrics: Metrics, static_dir: Path, api: ServerApi) -> list[Any]:
    table: list[Any] = [
        (WS_PATH, WebSocketHandler, {"ctx": ctx}),
        (r"/health", HealthHandler, {"ctx": ctx}),
        (r"/ready", ReadyHandler, {"ctx": ctx, "history_healthy": backends.history.healthy}),
        (r"/", PageHandler, {"path": str(static_dir / "index.html")}),
        (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(static_dir)}),
        (r"/metrics", MetricsHandler, {"metrics": metrics}),
    ]
    table += admin_routes(ctx, static_dir)
    table += api_routes(ctx, api)
    emulated = {"ctx": ctx, "sessions": EmulationSessions(ctx.hub)}
    table += [
        # centrifuge-js's bidirectional fallbacks (Centrifugo's routes); the uni ones stay apart
        (r"/connection/http_stream", HttpStreamBidiHandler, emulated),
        (r"/connection/sse", SSEBidiHandler, emulated),
        (r"/emulation", EmulationHandler, emulated),
        (r"/connection/uni_sse", SSEHandler, {"ctx": ctx}),
        (r"/connection/uni_http_stream", HttpStreamHandler, {"ctx": ctx}),
        (r"/connection/uni_websocket", UniWebSocketHandler, {"ctx": ctx}),
        (r"/dashboard", PageHandler, {"path": str(static_dir / "dashboard.html")}),
    ]
    return table
