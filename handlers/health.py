"""Liveness and readiness probes."""

from __future__ import annotations

import tornado.web

from handlers.context import Context


class HealthHandler(tornado.web.RequestHandler):
    """/health: the loop answers. Reports backend state for information."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def get(self) -> None:
        hub = self.ctx.hub
        self.finish(
            {
                "status": "ok",
                "node": hub.node_id,
                "broker": "up" if hub.broker.healthy() else "down",
                "presence": "up" if hub.presence_manager.healthy() else "down",
                "clients": hub.num_clients,
            }
        )


class ReadyHandler(tornado.web.RequestHandler):
    """/ready: 200 only when the broker and the history store are reachable."""

    def initialize(self, ctx: Context, history_healthy: "object") -> None:
        self.ctx = ctx
        self.history_healthy = history_healthy

    def get(self) -> None:
        reasons = []
        if not self.ctx.hub.broker.healthy():
            reasons.append("broker unreachable")
        if not self.ctx.hub.presence_manager.healthy():
            reasons.append("presence unreachable")
        if callable(self.history_healthy) and not self.history_healthy():
            reasons.append("history store unreachable")
        if reasons:
            self.set_status(503)
            self.finish({"status": "unavailable", "reasons": reasons})
        else:
            self.finish({"status": "ready"})
