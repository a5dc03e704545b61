"""The admin web UI's endpoints under /admin (disabled when admin_password is empty).

Login trades the password (compared in constant time) for a short-lived
HS256 token signed with ``admin_secret`` (derived from the password when empty). The
page keeps it in sessionStorage and sends it in ``X-Admin-Token``; it is a
header, never a cookie, so cross-site requests cannot ride on it and it never
lands in a URL or an access log.

The admin acts with server rights: publishing bypasses channel permissions,
and the channel inspector subscribes through the hub's public API as a
:class:`channels.transport.Subscriber` of its own (not a client connection).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Hashable

import jwt
import tornado.web
from tornado.iostream import StreamClosedError

from channels import errors
from channels.errors import DisconnectCode, SquallError
from channels.types import ClientInfo
from handlers.context import Context

log = logging.getLogger("squall.admin")

TOKEN_HEADER = "X-Admin-Token"
TOKEN_TTL = 8 * 3600
AUDIENCE = "squall-admin"
FAILED_LOGIN_DELAY = 0.3
MAX_CHANNELS_LISTED = 500
INSPECT_MAX_PENDING = 1000  # unflushed writes before a slow inspector is cut off
INSPECT_KEEPALIVE = 15.0


class AdminAuth:
    """Checks the admin password and signs/verifies admin session tokens."""

    def __init__(self, password: str, secret: str = "") -> None:
        self.enabled = bool(password)
        # Digests have equal length, so compare_digest's time does not depend
        # on how much of the password a guess got right, nor on its length.
        self._password_digest = hashlib.sha256(password.encode()).digest()
        # Without a configured secret the key derives from the password, so
        # every worker and instance sharing the password accepts the token.
        self._secret = secret or hashlib.sha256(b"squall admin token key\0" + password.encode()).hexdigest()

    def check_password(self, candidate: str) -> bool:
        digest = hashlib.sha256(candidate.encode()).digest()
        return self.enabled and hmac.compare_digest(digest, self._password_digest)

    def issue(self, ttl: int = TOKEN_TTL) -> str:
        now = int(time.time())
        claims = {"sub": "admin", "aud": AUDIENCE, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> bool:
        if not self.enabled or not token:
            return False
        try:
            jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp"]})
        except jwt.PyJWTError:
            return False
        return True


DISABLED = "the admin UI is disabled: set admin_password (or SQUALL_ADMIN_PASSWORD) to enable it"


class _AdminBase(tornado.web.RequestHandler):
    def initialize(self, ctx: Context, auth: AdminAuth) -> None:
        self.ctx = ctx
        self.auth = auth

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> None:
        if not self.auth.enabled:
            raise tornado.web.HTTPError(404, reason=DISABLED)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason})

    def body_json(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="body must be JSON") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, reason="body must be a JSON object")
        return body


class _AdminAPI(_AdminBase):
    """Every admin endpoint but login: needs a valid admin token."""

    def prepare(self) -> None:
        super().prepare()
        if not self.auth.verify(self.request.headers.get(TOKEN_HEADER, "")):
            raise tornado.web.HTTPError(401, reason="admin login required")

    def channel_arg(self, value: Any) -> str:
        channel = value if isinstance(value, str) else ""
        try:
            self.ctx.channel_options(channel)
        except SquallError as e:
            raise tornado.web.HTTPError(400, reason=f"{channel!r}: {e.message}") from None
        return channel


class AdminPageHandler(_AdminBase):
    """/admin: the static page (its scripts come from /static)."""

    def initialize(self, ctx: Context, auth: AdminAuth, path: str = "") -> None:  # type: ignore[override]
        super().initialize(ctx, auth)
        self.path = path

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
        )
        self.set_header("X-Frame-Options", "DENY")
        self.finish(Path(self.path).read_bytes())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A person opened /admin: say why it is not there, and how to turn it on."""
        if status_code != 404:
            return super().write_error(status_code, **kwargs)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!doctype html><meta charset=utf-8><title>Squall admin disabled</title>"
            "<h1>The admin UI is disabled</h1><p>Set <code>admin_password</code> in the configuration "
            "(or the environment variable <code>SQUALL_ADMIN_PASSWORD</code>) and restart Squall to "
            "enable <code>/admin</code>.</p>"
        )


class LoginHandler(_AdminBase):
    async def post(self) -> None:
        password = self.body_json().get("password")
        if not isinstance(password, str) or not self.auth.check_password(password):
            log.warning("admin login failed from %s", self.request.remote_ip)
            await asyncio.sleep(FAILED_LOGIN_DELAY)  # slows guessing a little
            raise tornado.web.HTTPError(401, reason="wrong password")
        log.info("admin login from %s", self.request.remote_ip)
        self.finish({"token": self.auth.issue(), "expires_in": TOKEN_TTL})


def _sdk_counts(hub: Any) -> list[dict[str, Any]]:
    """This node's connections by the SDK name and version they gave (connect name/version)."""
    counts: dict[tuple[str, str], int] = {}
    for c in hub.clients():
        key = (getattr(c, "sdk", ""), getattr(c, "sdk_version", ""))
        counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CHANNELS_LISTED]
    return [{"name": n or "unknown", "version": v, "clients": k} for (n, v), k in top]


class StatsHandler(_AdminAPI):
    """Nodes, this node's channels and counters; the page polls it for rates."""

    def get(self) -> None:
        hub = self.ctx.hub
        counts = sorted(hub.channel_counts().items(), key=lambda kv: (-kv[1], kv[0]))
        s = hub.stats
        self.finish(
            {
                "node": {"uid": hub.node_id, "name": hub.node_name, "version": self.ctx.version},
                "nodes": sorted((n.to_dict() for n in hub.nodes()), key=lambda n: str(n["name"])),
                "channels": [{"channel": c, "subscribers": n} for c, n in counts[:MAX_CHANNELS_LISTED]],
                "num_channels": len(counts),
                "counters": {
                    "publications": s.publications,
                    "deliveries": s.deliveries,
                    "joins": s.joins,
                    "leaves": s.leaves,
                    "recovered": s.recovered,
                    "not_recovered": s.not_recovered,
                },
                "clients": hub.num_clients,
                "sdks": _sdk_counts(hub),
                "users": hub.num_users,
                "subscriptions": hub.num_subscriptions,
                "broker_healthy": hub.broker.healthy(),
                "time": time.time(),
            }
        )


class PresenceHandler(_AdminAPI):
    async def get(self) -> None:
        channel = self.channel_arg(self.get_query_argument("channel", ""))
        if not self.ctx.channel_options(channel).presence:
            raise tornado.web.HTTPError(400, reason="presence is not enabled for this channel")
        try:
            clients = await self.ctx.hub.presence(channel)
        except SquallError as e:
            raise tornado.web.HTTPError(503, reason=e.message) from None
        self.finish({"channel": channel, "clients": [info.to_dict() for info in clients.values()]})


class PublishHandler(_AdminAPI):
    async def post(self) -> None:
        body = self.body_json()
        channel = self.channel_arg(body.get("channel"))
        if "data" not in body:
            raise tornado.web.HTTPError(400, reason="data is required")
        try:
            pos = await self.ctx.hub.publish(channel, body["data"])
        except SquallError as e:
            raise tornado.web.HTTPError(503 if e.code == 100 else 400, reason=e.message) from None
        log.info("admin published to %s", channel)
        self.finish({"channel": channel, "offset": pos.offset, "epoch": pos.epoch})


class DisconnectHandler(_AdminAPI):
    """Disconnects a user's connections on every node (a control message)."""

    async def post(self) -> None:
        body = self.body_json()
        user = body.get("user")
        client = body.get("client", "")
        if not isinstance(user, str) or not isinstance(client, str):
            raise tornado.web.HTTPError(400, reason="user (and optional client) must be strings")
        code = errors.FORCE_NO_RECONNECT.code
        hub = self.ctx.hub
        # Counted here before the control message closes them; other nodes count their own.
        here = sum(1 for c in hub.user_connections(user) if not client or c.client_id == client)
        others = sum(1 for n in hub.nodes() if n.uid != hub.node_id)
        try:
            await hub.send_control("disconnect", user=user, client=client, code=code, reason="disconnected by admin")
        except SquallError as e:
            raise tornado.web.HTTPError(503, reason=e.message) from None
        log.info("admin disconnected user=%s client=%s (%d here, %d other nodes)", user, client or "*", here, others)
        self.finish({"user": user, "client": client, "code": code, "disconnected": here, "other_nodes": others})


class _InspectorSub:
    """The hub's Subscriber for one inspector stream: NDJSON lines over HTTP."""

    def __init__(self, handler: "InspectHandler") -> None:
        self.client_id = "admin-" + uuid.uuid4().hex[:12]
        self.user = ""
        self.handler = handler
        self.key: Hashable = object()  # own encoding: nobody else wants NDJSON
        self.pending = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def wire_key(self) -> Hashable:
        return self.key

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return ndjson({"kind": kind, "channel": channel, **body})

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        if self.done.done():
            return
        if self.pending >= INSPECT_MAX_PENDING:
            self.disconnect(errors.SLOW)
            return
        self.handler.write(data)
        self.pending += 1
        self.handler.flush().add_done_callback(self._flushed)

    def _flushed(self, fut: "asyncio.Future[None]") -> None:
        self.pending -= 1
        if not fut.cancelled() and isinstance(fut.exception(), StreamClosedError):
            self.disconnect(errors.WRITE_ERROR)

    def disconnect(self, code: DisconnectCode, reason: str | None = None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def ndjson(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=str, separators=(",", ":")).encode() + b"\n"


class InspectHandler(_AdminAPI):
    """Streams a channel's publications, joins and leaves as they flow (NDJSON).

    The page reads it with fetch() so the token travels in a header.
    """

    def initialize(self, ctx: Context, auth: AdminAuth) -> None:
        super().initialize(ctx, auth)
        self.sub: _InspectorSub | None = None

    async def get(self) -> None:
        hub = self.ctx.hub
        channel = self.channel_arg(self.get_query_argument("channel", ""))
        opts = self.ctx.channel_options(channel)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        sub = self.sub = _InspectorSub(self)
        info = ClientInfo(client=sub.client_id, user="", conn_info={"admin": "inspector"})
        try:
            out = await hub.subscribe(sub, channel, opts, info, join_leave=opts.join_leave, observe=True)
        except SquallError as e:
            raise tornado.web.HTTPError(503, reason=e.message) from None
        try:
            pos = out.position
            self.write(ndjson({"kind": "subscribed", "channel": channel, "offset": pos.offset, "epoch": pos.epoch}))
            for pub in out.pending:
                self.write(sub.encode_push(channel, "pub", pub.to_dict()))
            self.flush()
            while not sub.done.done():
                try:
                    await asyncio.wait_for(asyncio.shield(sub.done), INSPECT_KEEPALIVE)
                except asyncio.TimeoutError:
                    sub.write_wire(b"\n")  # keeps proxies from closing an idle stream
        finally:
            await hub.unsubscribe(sub, channel, info)
        if not self.request.connection.stream.closed():  # type: ignore[union-attr]
            self.finish()

    def on_connection_close(self) -> None:
        if self.sub is not None:
            self.sub.disconnect(errors.CONNECTION_CLOSED)


def admin_routes(ctx: Context, static_dir: Path) -> list[Any]:
    """The /admin page and API; every handler 404s when admin_password is empty."""
    s = ctx.options
    auth = AdminAuth(s.admin_password, s.admin_secret)
    deps = {"ctx": ctx, "auth": auth}
    return [
        (r"/admin/?", AdminPageHandler, {**deps, "path": str(static_dir / "admin.html")}),
        (r"/admin/api/login", LoginHandler, deps),
        (r"/admin/api/stats", StatsHandler, deps),
        (r"/admin/api/presence", PresenceHandler, deps),
        (r"/admin/api/publish", PublishHandler, deps),
        (r"/admin/api/disconnect", DisconnectHandler, deps),
        (r"/admin/api/inspect", InspectHandler, deps),
    ]
