"""The server HTTP API at ``POST /api/<method>`` (Centrifugo v5 shape).

HTTP concerns only: the API key, the JSON body and status codes. Methods are
in :mod:`handlers.api_methods`. Status codes follow Centrifugo: 200 with
``{"result": ...}`` or ``{"error": {"code", "message"}}``; 400 for a body that
is not a JSON object; 401 for a missing or wrong key; 404 for an unknown
method and when the API is off (no ``api_key`` and not ``api_insecure``).
The older single-endpoint form, ``POST /api`` with ``{"method", "params"}``,
is accepted too.

:func:`answer` is the whole exchange, request in and status plus body out,
shared by Tornado's :class:`ApiHandler` and the front door's lean
keep-alive connection (:mod:`handlers.api_conn`), so both answer alike.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Mapping

import orjson
import tornado.web

from channels import errors
from handlers.api_methods import ServerApi
from handlers.context import Context
from handlers.protocol import JSON

log = logging.getLogger("squall.api")


def presented_key(headers: Mapping[str, str]) -> str:
    """The key from ``X-API-Key`` or ``Authorization: apikey <key>``; names in
    lower case, which Tornado's headers and the door's dict both answer."""
    key = headers.get("x-api-key", "")
    if key:
        return str(key)
    auth = str(headers.get("authorization", ""))
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "apikey":
        return value.strip()
    return ""


def error_body(err: errors.SquallError) -> bytes:
    """Centrifugo's error object as the response body."""
    return JSON.encode({"error": {"code": err.code, "message": err.message}})


async def answer(
    ctx: Context, api: ServerApi, method: str, headers: Mapping[str, str], body: bytes, remote_ip: str
) -> tuple[int, bytes]:
    """One API request: the status and the JSON body to send. ``method`` is
    the path's (empty for the legacy ``/api``); ``headers`` by lower-case name."""
    s = ctx.options
    if not (s.api_key or s.api_insecure):
        return 404, error_body(errors.NotAvailable("server API is off: set api_key"))
    if s.api_key and not hmac.compare_digest(presented_key(headers).encode(), s.api_key.encode()):
        log.info("API request with a bad key from %s", remote_ip)
        return 401, error_body(errors.Unauthorized())
    try:
        params: Any = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return 400, error_body(errors.BadRequest("malformed JSON"))
    if not isinstance(params, dict):
        return 400, error_body(errors.BadRequest("body must be a JSON object"))
    if not method:  # legacy form: {"method": ..., "params": {...}}
        method = params.get("method", "")
        params = params.get("params") or {}
        if not isinstance(method, str) or not method:
            return 400, error_body(errors.BadRequest("method required"))
    if method not in api.methods:
        return 404, error_body(errors.MethodNotFound())
    try:
        if ctx.tracer is None:  # no span: one coroutine frame less per call
            result = await api.call(method, params)
        else:
            result = await _traced_call(ctx, api, method, params, headers)
    except errors.SquallError as e:
        if e.code == errors.InternalError.code:
            log.warning("API %s failed: %s", method, e.message)
        return 200, error_body(e)
    except Exception:
        log.exception("API %s failed", method)
        return 200, error_body(errors.InternalError())
    # bytes data as base64, as on the client protocol; Centrifugo answers batch with {"replies": [...]}
    return 200, JSON.encode(result if method == "batch" else {"result": result})


async def _traced_call(ctx: Context, api: ServerApi, method: str, params: Any, headers: Mapping[str, str]) -> Any:
    """The call, in a span continuing the caller's W3C traceparent when it sent one."""
    tracer = ctx.tracer
    assert tracer is not None
    channel = params.get("channel") if isinstance(params, dict) else None
    attrs = {"method": method} if not isinstance(channel, str) else {"method": method, "channel": channel}
    with tracer.span(f"squall.api.{method}", attrs, headers=headers):
        return await api.call(method, params)


class ApiHandler(tornado.web.RequestHandler):
    """One API call per request; ``api`` is shared by every request of a node."""

    def initialize(self, ctx: Context, api: ServerApi) -> None:
        self.ctx = ctx
        self.api = api

    async def post(self, method: str = "") -> None:
        req = self.request
        status, body = await answer(self.ctx, self.api, method, req.headers, req.body, req.remote_ip or "")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)

    def check_xsrf_cookie(self) -> None:
        """Key-authenticated machine API: no cookies, no XSRF token."""


def api_routes(ctx: Context, api: ServerApi) -> list[Any]:
    """``/api/<method>`` and the legacy ``/api``, sharing the node's ServerApi."""
    kw = {"ctx": ctx, "api": api}
    return [
        (r"/api/([^/]+)/?", ApiHandler, kw),
        (r"/api/?", ApiHandler, kw),
    ]
