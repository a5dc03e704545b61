"""Liveness and readiness probes.

``/health`` answers 200 whenever the event loop runs this handler: a
liveness probe must not fail because Redis is down (restarting Squall would
not bring Redis back). ``/ready`` says whether this node can serve clients
now; load balancers and orchestrators stop routing to it on 503.
"""

from __future__ import annotations

from typing import Callable

import tornado.web

from handlers.context import Context


def readiness_problems(ctx: Context, history_healthy: Callable[[], bool]) -> list[str]:
    """Why this node cannot serve clients now; empty when it can."""
    s = ctx.options
    hub = ctx.hub
    reasons = []
    if ctx.limiter.closing:
        reasons.append("shutting down")
    if not hub.broker.healthy():
        reasons.append(f"broker unreachable (engine={s.engine})")
    if not hub.presence_manager.healthy():
        reasons.append(f"presence unreachable (engine={s.engine})")
    if not history_healthy():
        reasons.append(f"history store unreachable (history={s.history})")
    return reasons


class _Probe(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def head(self) -> None:
        self.get()


class HealthHandler(_Probe):
    """/health: the loop answers. Reports backend state for information only."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def get(self) -> None:
        hub = self.ctx.hub
        self.finish(
            {
                "status": "ok",
                "node": hub.node_id,
                "name": hub.node_name,
                "broker": "up" if hub.broker.healthy() else "down",
                "presence": "up" if hub.presence_manager.healthy() else "down",
                "clients": hub.num_clients,
            }
        )


class ReadyHandler(_Probe):
    """/ready: 200 only when the broker, presence and history store are reachable."""

    def initialize(self, ctx: Context, history_healthy: Callable[[], bool]) -> None:
        self.ctx = ctx
        self.history_healthy = history_healthy

    def get(self) -> None:
        reasons = readiness_problems(self.ctx, self.history_healthy)
        if reasons:
            self.set_status(503)
            self.finish({"status": "unavailable", "reasons": reasons})
        else:
            self.finish({"status": "ready"})
