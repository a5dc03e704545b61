"""One client connection's protocol state machine, independent of transport.

A transport (WebSocket, SSE, HTTP stream) owns the socket and gives the
session a :class:`Wire`; the session decodes commands, checks permissions,
calls the hub, and writes replies. The session is also the hub's
:class:`channels.transport.Subscriber` for this connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from types import MappingProxyType
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable, Mapping, Protocol

from channels import errors
from channels.errors import Disconnect, DisconnectCode, SquallError
from channels.namespaces import NamespaceOptions
from channels.types import ClientInfo, HistoryQuery, Publication, StreamPosition
from handlers.auth import ConnectClaims, ExpiredToken, InvalidToken, token_error
from handlers.context import Context
from handlers.hooks import ConnectEvent
from handlers.limits import TokenBucket
from handlers.permissions import Action, check, check_subscription_token
from handlers.protocol import Codec, Command, ProtocolError, check_data, decode_frame

log = logging.getLogger("squall.client")

FLAG_REJECT_UNRECOVERED = 2
_AFTER = "\x00after"  # result key: encoded frames to write after the reply
_TOO_MANY_ERRORS = 50  # rate-limited commands in a row before disconnect
UNSUBSCRIBE_EXPIRED = 2501  # Centrifugo's unsubscribe code: subscription token expired
MAX_TTL = 365 * 24 * 3600  # a later expiry is cut to this (as Centrifugo: likely a bug, and timers overflow)


class Wire(Protocol):
    """What a transport gives its session."""

    codec: Codec

    @property
    def key(self) -> Hashable: ...

    def frame(self, payload: bytes) -> bytes:
        """Wrap an encoded reply/push for this transport (WS frame, SSE event)."""
        ...

    def write(self, data: bytes, conflate: str | None = None) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True)
class _Sub:
    opts: NamespaceOptions
    server_side: bool = False
    expire_at: int = 0




class ClientSession:
    """Protocol state of one connection; the hub's Subscriber for it."""

    __slots__ = (
        "ctx",
        "wire",
        "wire_key",
        "remote_ip",
        "client_id",
        "user",
        "info",
        "connected",
        "closed",
        "subs",
        "expire_at",
        "_bucket",
        "_limited",
        "_ping_sent",
        "_pong_at",
        "_stale_handle",
        "_expire_handle",
        "_sub_expire_handle",
        "meta",
        "_ip_counted",
        "_user_counted",
        "_unsent_disconnect",
        "__weakref__",
    )

    def __init__(self, ctx: Context, wire: Wire, remote_ip: str) -> None:
        self.ctx = ctx
        self.wire = wire
        self.wire_key: Hashable = wire.key  # read per subscriber per publication by the hub
        self.remote_ip = remote_ip
        self.client_id = str(uuid.uuid4())
        self.user = ""
        self.info = ClientInfo(client=self.client_id)
        self.connected = False
        self.closed = False
        self.subs: dict[str, _Sub] = {}
        self.expire_at = 0
        s = ctx.settings
        self._bucket = TokenBucket(s.client_command_rate_limit, s.client_command_burst) if s.client_command_rate_limit > 0 else None
        self._limited = 0
        self._ping_sent = 0.0
        self._pong_at = 0.0
        self._stale_handle: asyncio.TimerHandle | None = None
        self._expire_handle: asyncio.TimerHandle | None = None
        self._sub_expire_handle: asyncio.TimerHandle | None = None
        self.meta: Any = None  # the token's meta claim: for the server side only
        self._ip_counted = False
        self._user_counted = False
        self._unsent_disconnect: DisconnectCode | None = None

    # ------------------------------------------------------------ lifecycle
    def opened(self) -> None:
        """Called by the transport once the socket is accepted."""
        self.ctx.limiter.open_ip(self.remote_ip)
        self._ip_counted = True
        loop = asyncio.get_running_loop()
        self._stale_handle = loop.call_later(self.ctx.settings.client_stale_timeout, self._stale)

    def _stale(self) -> None:
        if not self.connected and not self.closed:
            self.disconnect(errors.STALE)

    async def closed_by_peer(self) -> None:
        """Transport lost: forget everything this connection held."""
        by_peer = not self.closed  # else disconnect() already counted and logged it
        self.closed = True
        self._release()
        hub = self.ctx.hub
        was_connected = self.connected
        self.connected = False
        if was_connected:
            hub.remove_client(self)
            self.ctx.pinger.remove(self)
        if was_connected and by_peer:
            code = errors.CONNECTION_CLOSED
            self.ctx.observer.disconnect(code.code)
            log.info(
                "disconnect client=%s user=%s code=%d reason=%s",
                self.client_id, self.user, code.code, code.reason,
                extra={"event": "disconnect", "client": self.client_id, "user": self.user, "code": code.code},
            )
        for channel in list(self.subs):
            self.subs.pop(channel, None)
            try:
                await hub.unsubscribe(self, channel, self.info)
            except Exception:
                log.exception("unsubscribe on close failed for %s", channel)
        if was_connected and self.ctx.hooks.on_disconnect is not None:
            try:
                await self.ctx.hooks.on_disconnect(self.info, 0)
            except Exception:
                log.exception("on_disconnect hook failed")

    def _release(self) -> None:
        for h in (self._stale_handle, self._expire_handle, self._sub_expire_handle):
            if h is not None:
                h.cancel()
        self._stale_handle = self._expire_handle = self._sub_expire_handle = None
        if self._ip_counted:
            self._ip_counted = False
            self.ctx.limiter.close_ip(self.remote_ip)
        if self._user_counted:
            self._user_counted = False
            self.ctx.limiter.close_user(self.user)

    # ------------------------------------------------------------ Subscriber
    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.wire.frame(self.wire.codec.push(channel, kind, body))

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        if not self.closed:
            self.wire.write(data, conflate)

    def disconnect(self, code: DisconnectCode, reason: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.ctx.observer.disconnect(code.code)
        log.info(
            "disconnect client=%s user=%s code=%d reason=%s",
            self.client_id, self.user, code.code, reason or code.reason,
            extra={"event": "disconnect", "client": self.client_id, "user": self.user, "code": code.code},
        )
        self.wire.close(code.code, reason or code.reason)

    # ------------------------------------------------------------ pinger
    def send_ping(self, now: float) -> None:
        self._ping_sent = now
        self.write_wire(self.wire.frame(self.wire.codec.ping))

    def pong_overdue(self, sent_at: float) -> bool:
        return self._pong_at < sent_at

    def no_pong(self) -> None:
        self.disconnect(errors.NO_PONG)

    # ------------------------------------------------------------ input
    async def handle_frame(self, data: bytes | str) -> None:
        """Decode one incoming message and run its commands in order."""
        if self.closed:
            return
        self._pong_at = time.monotonic()  # any frame proves the peer is alive
        try:
            commands = decode_frame(data, self.wire.codec.name)
        except ProtocolError as e:
            log.info("bad frame from client=%s: %s", self.client_id, e)
            self.disconnect(e.disconnect, str(e)[:100])
            return
        for cmd in commands:
            if self.closed:
                return
            try:
                await self._run(cmd)
            except Disconnect as d:
                log.info("client=%s disconnected by command %s: %s", self.client_id, cmd.method, d.reason)
                self.disconnect(DisconnectCode(d.code, d.reason), d.reason)
                return

    async def _run(self, cmd: Command) -> None:
        method = cmd.method
        if not method:
            return  # pong
        if not self.connected and method != "connect":
            raise Disconnect(errors.BAD_REQUEST, "connect first")
        if self.connected and method == "connect":
            raise Disconnect(errors.BAD_REQUEST, "already connected")
        if not cmd.id and method not in ("send",):
            raise Disconnect(errors.BAD_REQUEST, "command id required")
        if self._bucket is not None and not self._bucket.take():
            self._limited += 1
            if self._limited > _TOO_MANY_ERRORS:
                raise Disconnect(errors.TOO_MANY_REQUESTS)
            self._reply_error(cmd.id, errors.TooManyRequests())
            return
        self._limited = 0
        handler = _COMMANDS.get(method)
        if handler is None:
            self._reply_error(cmd.id, errors.MethodNotFound())
            return
        hub = self.ctx.hub
        hub.inflight += 1
        started = time.perf_counter()
        code = 0
        try:
            result = await handler(self, cmd.params)
        except SquallError as e:
            code = e.code
            if e.code != 100:
                log.debug("client=%s %s -> error %d %s", self.client_id, method, e.code, e.message)
            else:
                log.warning("client=%s %s -> temporary error: %s", self.client_id, method, e.message)
            self._reply_error(cmd.id, e)
            return
        except Disconnect as d:
            code = d.code
            raise
        except (KeyError, TypeError, ValueError) as e:
            code = errors.BadRequest.code
            log.info("client=%s bad %s params: %r", self.client_id, method, e)
            self._reply_error(cmd.id, errors.BadRequest())
            return
        except Exception:
            code = errors.InternalError.code
            log.exception("client=%s %s failed", self.client_id, method)
            self._reply_error(cmd.id, errors.InternalError())
            return
        finally:
            hub.inflight -= 1
            self.ctx.observer.command(method, code, time.perf_counter() - started)
        if result is not None and cmd.id:
            after: list[bytes] = result.pop(_AFTER, ())
            self._reply(cmd.id, method, result)
            for frame in after:  # pushes that must follow this reply
                self.write_wire(frame)

    def _reply(self, cid: int, method: str, result: dict[str, Any]) -> None:
        w = self.wire
        self.write_wire(w.frame(w.codec.reply(cid, method, result)))

    def _reply_error(self, cid: int, err: SquallError) -> None:
        if cid:
            w = self.wire
            self.write_wire(w.frame(w.codec.error(cid, err)))

    # ------------------------------------------------------------ helpers
    def _channel_param(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise errors.BadRequest("channel required")
        return channel

    def _allowed(self, action: Action, channel: str, opts: NamespaceOptions) -> None:
        check(action, channel, opts, self.user, channel in self.subs)

    def _ttl(self, expire_at: int) -> dict[str, Any]:
        if not expire_at:
            return {}
        return {"expires": True, "ttl": max(1, expire_at - int(time.time()))}

    def _schedule_expiry(self) -> None:
        """Disconnect 3005 once the token's expiry plus the grace delay passed
        without a ``refresh`` (the SDK refreshes when ``ttl`` runs out)."""
        if self._expire_handle is not None:
            self._expire_handle.cancel()
            self._expire_handle = None
        if self.expire_at:
            at = self.expire_at + self.ctx.settings.client_expired_close_delay
            self._expire_handle = asyncio.get_running_loop().call_later(max(0.0, at - time.time()), self._expired)

    def _expired(self) -> None:
        self._expire_handle = None
        if self.expire_at and time.time() >= self.expire_at + self.ctx.settings.client_expired_close_delay:
            self.disconnect(errors.EXPIRED)
        else:
            self._schedule_expiry()

    def _schedule_sub_expiry(self) -> None:
        """One timer for the earliest subscription-token expiry (plus grace)."""
        if self._sub_expire_handle is not None:
            self._sub_expire_handle.cancel()
            self._sub_expire_handle = None
        times = [sub.expire_at for sub in self.subs.values() if sub.expire_at]
        if times and not self.closed:
            at = min(times) + self.ctx.settings.client_expired_sub_close_delay
            self._sub_expire_handle = asyncio.get_running_loop().call_later(
                max(0.0, at - time.time()), self._subs_expired
            )

    def _subs_expired(self) -> None:
        self._sub_expire_handle = None
        if self.closed:
            return
        limit = time.time() - self.ctx.settings.client_expired_sub_close_delay
        for channel, sub in list(self.subs.items()):
            if sub.expire_at and sub.expire_at <= limit:
                log.info("client=%s subscription to %s expired", self.client_id, channel)
                self.ctx.hub.spawn(
                    self.server_side_unsubscribe(channel, UNSUBSCRIBE_EXPIRED, "subscription expired")
                )
                sub.expire_at = 0
        self._schedule_sub_expiry()

    # ------------------------------------------------------------ commands
    async def _connect(self, params: dict[str, Any]) -> dict[str, Any] | None:
        ctx = self.ctx
        s = ctx.settings
        token = params.get("token") or ""
        claims: ConnectClaims | None = None
        if token:
            if not isinstance(token, str):
                raise Disconnect(errors.INVALID_TOKEN)
            try:
                claims = ctx.verifier.connect(token)
            except ExpiredToken:
                raise errors.TokenExpired() from None
            except InvalidToken as e:
                log.info("invalid connection token from %s: %s", self.remote_ip, e)
                raise Disconnect(errors.INVALID_TOKEN) from None
            if claims.expire_at and claims.expire_at <= time.time():
                raise errors.TokenExpired()
        elif not s.allow_anonymous_connect_without_token:
            raise Disconnect(errors.BAD_REQUEST, "token required")
        user = claims.user if claims else ""
        info = claims.info if claims else None
        # server-side subscriptions the token grants: no permission checks
        channels = [*claims.channels, *claims.subs] if claims else []
        if ctx.hooks.on_connect is not None:
            decision = await ctx.hooks.on_connect(
                ConnectEvent(self.client_id, user, self.remote_ip, params.get("data"), info)
            )
            if decision is not None:
                if decision.user is not None:
                    user = decision.user
                if decision.info is not None:
                    info = decision.info
                channels.extend(decision.channels)
        if self.closed:
            return None
        ctx.limiter.open_user(user)
        self._user_counted = True
        self.user = user
        self.info = ClientInfo(client=self.client_id, user=user, conn_info=info)
        self.expire_at = claims.expire_at if claims else 0
        self.meta = claims.meta if claims else None
        self.connected = True
        if self._stale_handle is not None:
            self._stale_handle.cancel()
            self._stale_handle = None
        ctx.hub.add_client(self)
        ctx.pinger.add(self)
        self._schedule_expiry()
        log.info(
            "connect client=%s user=%s ip=%s", self.client_id, user, self.remote_ip,
            extra={"event": "connect", "client": self.client_id, "user": user, "ip": self.remote_ip},
        )
        result: dict[str, Any] = {
            "client": self.client_id,
            "version": ctx.version,
            "ping": int(s.ping_interval),
            "pong": True,
            "node": ctx.hub.node_id,
        }
        result.update(self._ttl(self.expire_at))
        recover_subs = params.get("subs") or {}
        if not isinstance(recover_subs, dict):
            raise errors.BadRequest("subs must be an object")
        subs_out: dict[str, Any] = {}
        after: list[bytes] = []
        for channel in dict.fromkeys(channels):
            req = recover_subs.get(channel) or {}
            try:
                subs_out[channel] = await self._server_subscribe(channel, req if isinstance(req, dict) else {}, after)
            except SquallError as e:
                log.warning("server-side subscribe to %s failed: %s", channel, e.message)
        if subs_out:
            result["subs"] = subs_out
        result[_AFTER] = after
        return result

    async def _server_subscribe(self, channel: str, req: dict[str, Any], after: list[bytes]) -> dict[str, Any]:
        opts = self.ctx.hub.namespaces.lookup(channel)
        result, pending = await self._do_subscribe(channel, opts, req, server_side=True)
        after.extend(self.encode_push(channel, "pub", p.to_dict()) for p in pending)
        return result

    async def server_side_subscribe(self, channel: str) -> None:
        """Subscribe on the server's initiative (server API) and push it."""
        if channel in self.subs or self.closed or not self.connected:
            return
        opts = self.ctx.hub.namespaces.lookup(channel)
        result, pending = await self._do_subscribe(channel, opts, {}, server_side=True)
        body = {k: v for k, v in result.items() if k in ("recoverable", "epoch", "offset", "positioned")}
        self.write_wire(self.encode_push(channel, "subscribe", body))
        for p in pending:
            self.write_wire(self.encode_push(channel, "pub", p.to_dict()))

    async def server_side_refresh(self, expire_at: int, conn_info: Any = None) -> None:
        """The server API's refresh: the connection now expires at ``expire_at``
        (unix seconds; 0 = never), and with ``conn_info`` the info others see of
        it changes. As Centrifugo, an ``expire_at`` already past ends it (3005),
        and the client hears a ``refresh`` push with its new ``ttl``."""
        if self.closed or not self.connected:
            return
        now = int(time.time())
        if expire_at > 0:
            if expire_at <= now:
                self.disconnect(errors.EXPIRED)
                return
            expire_at = min(expire_at, now + MAX_TTL)
        self.expire_at = max(0, expire_at)
        self._schedule_expiry()
        self.write_wire(self.wire.frame(self.wire.codec.connection_push("refresh", self._ttl(self.expire_at))))
        if conn_info is not None:
            self.info = dataclasses.replace(self.info, conn_info=conn_info)
            await self.ctx.hub.update_info(self, list(self.subs), self.info)

    async def server_side_unsubscribe(self, channel: str, code: int = 2000, reason: str = "server unsubscribe") -> None:
        if channel not in self.subs:
            return
        self.subs.pop(channel, None)
        await self.ctx.hub.unsubscribe(self, channel, self.info)
        self.write_wire(self.encode_push(channel, "unsubscribe", {"code": code, "reason": reason}))

    async def _subscribe(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        hub = self.ctx.hub
        opts = hub.namespaces.lookup(channel)
        if channel in self.subs:
            raise errors.AlreadySubscribed()
        if len(self.subs) >= self.ctx.settings.client_channel_limit:
            raise errors.LimitExceeded("channel limit")
        expire_at = 0
        token = params.get("token") or ""
        if token:
            if not isinstance(token, str):
                raise errors.PermissionDenied()
            try:
                sc = self.ctx.verifier.subscribe(token)
            except (InvalidToken, ExpiredToken) as e:
                log.info("client=%s bad subscription token for %s: %s", self.client_id, channel, e)
                raise token_error(e) from None
            check_subscription_token(channel, self.user, sc.channel, sc.user)
            expire_at = sc.expire_at
            if expire_at and expire_at <= time.time():
                raise errors.TokenExpired()
        else:
            self._allowed(Action.SUBSCRIBE, channel, opts)
        if self.ctx.hooks.on_subscribe is not None:
            await self.ctx.hooks.on_subscribe(self.info, channel)
        result, pending = await self._do_subscribe(channel, opts, params, expire_at=expire_at)
        result[_AFTER] = [self.encode_push(channel, "pub", p.to_dict()) for p in pending]
        if expire_at:
            self._schedule_sub_expiry()
        return result

    async def _do_subscribe(
        self, channel: str, opts: NamespaceOptions, params: dict[str, Any], *, server_side: bool = False, expire_at: int = 0
    ) -> tuple[dict[str, Any], list[Publication]]:
        recover = bool(params.get("recover"))
        since = None
        if recover:
            offset = params.get("offset", 0)
            epoch = params.get("epoch", "")
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or not isinstance(epoch, str):
                raise errors.BadRequest("bad recovery position")
            since = StreamPosition(offset, epoch)
        flag = params.get("flag", 0)
        if not isinstance(flag, int):
            flag = 0
        self.subs[channel] = _Sub(opts, server_side=server_side, expire_at=expire_at)
        try:
            out = await self.ctx.hub.subscribe(
                self,
                channel,
                opts,
                self.info,
                recover=recover,
                since=since,
                join_leave=bool(params.get("join_leave")) or server_side,
                recoverable=bool(params.get("recoverable")),
            )
        except BaseException:
            self.subs.pop(channel, None)
            raise
        if self.closed:
            # the connection went away while subscribing: undo
            self.subs.pop(channel, None)
            await self.ctx.hub.unsubscribe(self, channel, None)
            return {}, []
        if out.was_recovering and not out.recovered and flag & FLAG_REJECT_UNRECOVERED:
            self.subs.pop(channel, None)
            await self.ctx.hub.unsubscribe(self, channel, None)
            raise errors.UnrecoverablePosition()
        result: dict[str, Any] = {}
        if opts.stream.enabled:
            result["epoch"] = out.position.epoch
            result["offset"] = out.position.offset
            if out.recoverable:
                result["recoverable"] = True
            if opts.force_positioning or params.get("positioned"):
                result["positioned"] = True
        if out.was_recovering:
            result["was_recovering"] = True
            result["recovered"] = out.recovered
        if out.publications:
            result["publications"] = [p.to_dict() for p in out.publications]
        result.update(self._ttl(expire_at))
        return result, out.pending

    async def _unsubscribe(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        if self.subs.pop(channel, None) is not None:
            await self.ctx.hub.unsubscribe(self, channel, self.info)
        return {}

    async def _publish(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        if "data" not in params:
            raise errors.BadRequest("data required")
        opts = self.ctx.hub.namespaces.lookup(channel)
        self._allowed(Action.PUBLISH, channel, opts)
        data = params["data"]
        if self.wire.codec.binary:
            check_data(data)  # JSON input is always representable
        if self.ctx.hooks.on_publish is not None:
            data = await self.ctx.hooks.on_publish(self.info, channel, data)
        await self.ctx.hub.publish(channel, data, info=self.info, opts=opts)
        return {}

    async def _presence(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        opts = self.ctx.hub.namespaces.lookup(channel)
        if not opts.presence:
            raise errors.NotAvailable()
        self._allowed(Action.PRESENCE, channel, opts)
        entries = await self.ctx.hub.presence(channel)
        if len(entries) > self.ctx.settings.presence_max_clients:
            raise errors.LimitExceeded("presence too large; use presence_stats")
        return {"presence": {cid: i.to_dict() for cid, i in entries.items()}}

    async def _presence_stats(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        opts = self.ctx.hub.namespaces.lookup(channel)
        if not opts.presence:
            raise errors.NotAvailable()
        self._allowed(Action.PRESENCE, channel, opts)
        clients, users = await self.ctx.hub.presence_stats(channel)
        return {"num_clients": clients, "num_users": users}

    async def _history(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        opts = self.ctx.hub.namespaces.lookup(channel)
        if not opts.stream.enabled:
            raise errors.NotAvailable()
        self._allowed(Action.HISTORY, channel, opts)
        query = parse_history_query(params, self.ctx.settings.history_max_limit)
        res = await self.ctx.hub.history(channel, query, opts)
        return {
            "publications": [p.to_dict() for p in res.publications],
            "epoch": res.position.epoch,
            "offset": res.position.offset,
        }

    async def _ping(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return {}

    async def _send(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if self.ctx.hooks.on_message is not None:
            await self.ctx.hooks.on_message(self.info, params.get("data"))
        return None

    async def _rpc(self, params: dict[str, Any]) -> dict[str, Any] | None:
        method = params.get("method", "")
        handler = self.ctx.hooks.rpc.get(method) if isinstance(method, str) else None
        if handler is None:
            raise errors.MethodNotFound()
        data = await handler(self.info, params.get("data"))
        return {"data": data} if data is not None else {}

    async def _refresh(self, params: dict[str, Any]) -> dict[str, Any] | None:
        token = params.get("token")
        if not isinstance(token, str) or not token:
            raise errors.BadRequest("token required")
        try:
            claims = self.ctx.verifier.connect(token)
        except ExpiredToken:
            raise errors.TokenExpired() from None
        except InvalidToken:
            raise Disconnect(errors.INVALID_TOKEN) from None
        if claims.user != self.user:
            raise Disconnect(errors.INVALID_TOKEN, "user mismatch")
        self.expire_at = claims.expire_at
        self._schedule_expiry()
        out: dict[str, Any] = {"client": self.client_id, "version": self.ctx.version}
        out.update(self._ttl(self.expire_at))
        return out

    async def _sub_refresh(self, params: dict[str, Any]) -> dict[str, Any] | None:
        channel = self._channel_param(params)
        sub = self.subs.get(channel)
        if sub is None:
            raise errors.BadRequest("not subscribed")
        token = params.get("token")
        if not isinstance(token, str) or not token:
            raise errors.BadRequest("token required")
        try:
            sc = self.ctx.verifier.subscribe(token)
        except (InvalidToken, ExpiredToken) as e:
            raise token_error(e) from None
        check_subscription_token(channel, self.user, sc.channel, sc.user)
        sub.expire_at = sc.expire_at
        self._schedule_sub_expiry()
        return self._ttl(sc.expire_at)


# method -> handler; read-only and shared by every session (a per-session
# dict of bound methods cost ~460 bytes per connection)
_COMMANDS: Mapping[str, Callable[[ClientSession, dict[str, Any]], Awaitable[dict[str, Any] | None]]] = MappingProxyType(
    {
        "connect": ClientSession._connect,
        "subscribe": ClientSession._subscribe,
        "unsubscribe": ClientSession._unsubscribe,
        "publish": ClientSession._publish,
        "presence": ClientSession._presence,
        "presence_stats": ClientSession._presence_stats,
        "history": ClientSession._history,
        "ping": ClientSession._ping,
        "send": ClientSession._send,
        "rpc": ClientSession._rpc,
        "refresh": ClientSession._refresh,
        "sub_refresh": ClientSession._sub_refresh,
    }
)


def parse_history_query(params: dict[str, Any], max_limit: int) -> HistoryQuery:
    """Centrifugo's history params; shared by the client and server APIs."""
    limit = params.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise errors.BadRequest("limit must be an integer")
    if limit > max_limit:
        raise errors.LimitExceeded(f"limit over {max_limit}")
    if limit < 0:
        limit = max_limit
    since = None
    raw = params.get("since")
    if raw is not None:
        if not isinstance(raw, dict):
            raise errors.BadRequest("since must be an object")
        off, ep = raw.get("offset", 0), raw.get("epoch", "")
        if isinstance(off, bool) or not isinstance(off, int) or off < 0 or not isinstance(ep, str):
            raise errors.BadRequest("bad since")
        since = StreamPosition(off, ep)
    reverse = params.get("reverse", False)
    if not isinstance(reverse, bool):
        raise errors.BadRequest("reverse must be a boolean")
    return HistoryQuery(limit=limit, since=since, reverse=reverse)
