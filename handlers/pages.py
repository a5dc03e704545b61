"""The browser pages and their static files (nothing from the internet)."""

from __future__ import annotations

from typing import Any

import tornado.web


class PageHandler(tornado.web.RequestHandler):
    """Serves one HTML file from static/ (``/`` -> index.html)."""

    def initialize(self, path: str) -> None:
        self.path = path

    def get(self, *args: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
        with open(self.path, "rb") as f:
            self.finish(f.read())
