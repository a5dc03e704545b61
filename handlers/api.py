"""The server HTTP API at ``POST /api/<method>`` (Centrifugo v5 shape).

HTTP concerns only: the API key, the JSON body and status codes. Methods are
in :mod:`handlers.api_methods`. Status codes follow Centrifugo: 200 with
``{"result": ...}`` or ``{"error": {"code", "message"}}``; 400 for a body that
is not a JSON object; 401 for a missing or wrong key; 404 for an unknown
method and when the API is off (no ``api_key`` and not ``api_insecure``).
The older single-endpoint form, ``POST /api`` with ``{"method", "params"}``,
is accepted too.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
import tornado.web

from channels import errors
from handlers.api_methods import ServerApi
from handlers.context import Context
from handlers.protocol import JSON

log = logging.getLogger("squall.api")


def presented_key(headers: Any) -> str:
    """The key from ``X-API-Key`` or ``Authorization: apikey <key>``."""
    key = headers.get("X-API-Key", "")
    if key:
        return str(key)
    auth = str(headers.get("Authorization", ""))
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "apikey":
        return value.strip()
    return ""


class ApiHandler(tornado.web.RequestHandler):
    """One API call per request; ``api`` is shared by every request of a node."""

    def initialize(self, ctx: Context, api: ServerApi) -> None:
        self.ctx = ctx
        self.api = api

    def _enabled(self) -> bool:
        s = self.ctx.options
        return bool(s.api_key) or s.api_insecure

    def _authorized(self) -> bool:
        s = self.ctx.options
        if not s.api_key:
            return s.api_insecure
        given = presented_key(self.request.headers).encode()
        return hmac.compare_digest(given, s.api_key.encode())

    def _send(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(JSON.encode(body))  # bytes data as base64, as on the client protocol

    def _error(self, status: int, err: errors.SquallError) -> None:
        self._send(status, {"error": {"code": err.code, "message": err.message}})

    async def post(self, method: str = "") -> None:
        if not self._enabled():
            self._error(404, errors.NotAvailable("server API is off: set api_key"))
            return
        if not self._authorized():
            log.info("API request with a bad key from %s", self.request.remote_ip)
            self._error(401, errors.Unauthorized())
            return
        try:
            body = orjson.loads(self.request.body or b"{}")
        except orjson.JSONDecodeError:
            self._error(400, errors.BadRequest("malformed JSON"))
            return
        if not isinstance(body, dict):
            self._error(400, errors.BadRequest("body must be a JSON object"))
            return
        params: Any = body
        if not method:  # legacy form: {"method": ..., "params": {...}}
            method = body.get("method", "")
            params = body.get("params") or {}
            if not isinstance(method, str) or not method:
                self._error(400, errors.BadRequest("method required"))
                return
        if method not in self.api.methods:
            self._error(404, errors.MethodNotFound())
            return
        try:
            result = await self._call(method, params)
        except errors.SquallError as e:
            if e.code == errors.InternalError.code:
                log.warning("API %s failed: %s", method, e.message)
            self._error(200, e)
            return
        except Exception:
            log.exception("API %s failed", method)
            self._error(200, errors.InternalError())
            return
        if method == "batch":
            self._send(200, result)  # Centrifugo answers batch with {"replies": [...]}
        else:
            self._send(200, {"result": result})

    async def _call(self, method: str, params: Any) -> Any:
        """The call, in a span continuing the caller's W3C traceparent when it sent one."""
        tracer = self.ctx.tracer
        if tracer is None:
            return await self.api.call(method, params)
        channel = params.get("channel") if isinstance(params, dict) else None
        attrs = {"method": method} if not isinstance(channel, str) else {"method": method, "channel": channel}
        with tracer.span(f"squall.api.{method}", attrs, headers=self.request.headers):
            return await self.api.call(method, params)

    def check_xsrf_cookie(self) -> None:
        """Key-authenticated machine API: no cookies, no XSRF token."""


def api_routes(ctx: Context) -> list[Any]:
    """``/api/<method>`` and the legacy ``/api``, sharing one ServerApi."""
    api = ServerApi(ctx)
    kw = {"ctx": ctx, "api": api}
    return [
        (r"/api/([^/]+)/?", ApiHandler, kw),
        (r"/api/?", ApiHandler, kw),
    ]
