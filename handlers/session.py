"""One client connection's protocol state machine, independent of transport.

A transport (WebSocket, SSE, HTTP stream) owns the socket and gives the
session a :class:`~handlers.wire.Wire`, and optionally an
:class:`~handlers.wire.Output` for how replies are written; the session
decodes commands and runs them from the one table in :mod:`handlers.commands`.
It holds the connection's state, its timers and its subscriptions, and it is
the hub's :class:`channels.transport.Subscriber` for this connection.

States::

    NEW ──connect──► CONNECTED ──disconnect / peer gone──► CLOSED
     └───────────── stale, refused, disconnect ──────────────┘

NEW accepts only ``connect`` (3502 if none comes in time); CONNECTED accepts
every other command; CLOSED ignores input. The transport calls
:meth:`ClientSession.closed_by_peer` once its socket is gone, whatever the state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import Any, Callable, Hashable, Mapping

from channels import errors
from channels.errors import Disconnect, DisconnectCode, SquallError
from channels.types import ClientInfo
from handlers.commands import COMMANDS
from handlers.commands_channel import Subscription, server_subscribe, server_unsubscribe
from handlers.client_ids import new_client_id
from handlers.commands_connection import connection_closed, server_refresh
from handlers.context import Context
from handlers.expiry import deadline, due, first_deadline
from handlers.limits import TokenBucket
from handlers.proxy import NO_HEADERS
from handlers.publish_run import PublishRun
from handlers.protocol import Command, ProtocolError, check_data
from handlers.reply import Reply
from handlers.sdk import label as sdk_label
from handlers.sub_outages import SubscribeOutages
from handlers.wire import WIRE_OUTPUT, Output, Wire

log = logging.getLogger("squall.client")

_TOO_MANY_ERRORS = 50  # rate-limited commands in a row before disconnect
UNSUBSCRIBE_EXPIRED = 2501  # Centrifugo's unsubscribe code: subscription token expired


class State(Enum):
    NEW = "new"
    CONNECTED = "connected"
    CLOSED = "closed"


class ClientSession:
    """Protocol state of one connection; the hub's Subscriber for it."""

    __slots__ = (
        "ctx", "wire", "out", "wire_key", "remote_ip", "client_id", "user", "info", "state", "subs", "expire_at",
        "meta", "_bucket", "_limited", "_pong_at", "_expire_handle", "_sub_expire_handle",
        "_ip_counted", "_registered", "sdk", "sdk_version", "__weakref__",
        # the HTTP proxy's (handlers.proxy): set by the transport / the connect command
        "transport", "request_headers", "emulated_headers", "close_code", "proxy_timer",
        "sub_outages", "_publishing",
    )

    def __init__(self, ctx: Context, wire: Wire, remote_ip: str, out: Output = WIRE_OUTPUT) -> None:
        self.ctx = ctx
        self.wire = wire
        self.out = out
        self.wire_key: Hashable = wire.key  # read per subscriber per publication by the hub
        self.remote_ip = remote_ip
        self.client_id = new_client_id()
        self.user = ""
        self.info = ClientInfo(client=self.client_id)
        self.state = State.NEW
        self.subs: dict[str, Subscription] = {}
        self.expire_at = 0  # the connection token's expiry; 0 = never
        self.meta: Any = None  # the token's meta claim: for the server side only
        self.sdk = ""  # connect name/version (handlers.sdk.clean): logs, the admin page, a metrics label
        self.sdk_version = ""
        o = ctx.options
        self._bucket = TokenBucket(o.client_command_rate_limit, o.client_command_burst) if o.client_command_rate_limit > 0 else None
        self._limited = 0
        self._pong_at = 0.0
        self._expire_handle: asyncio.TimerHandle | None = None
        self._sub_expire_handle: asyncio.TimerHandle | None = None
        self._ip_counted = False
        self._registered = False  # counted for its user, in the hub and in the pinger
        self.transport = "websocket"  # Centrifugo's transport name, sent to the proxy
        self.request_headers: Mapping[str, str] = NO_HEADERS  # the allow-listed ones (handlers.proxy.kept_headers)
        self.emulated_headers: Mapping[str, str] = NO_HEADERS  # the connect command's `headers`
        self.close_code = 0  # the disconnect code, once closed
        self.proxy_timer: asyncio.TimerHandle | None = None  # the refresh proxy's
        self.sub_outages: SubscribeOutages | None = None  # subscribes failed in an outage (handlers.sub_outages)
        self._publishing: PublishRun | None = None  # publishes started together (handlers.publish_run)

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # ------------------------------------------------------------ lifecycle
    def opened(self) -> None:
        """Called by the transport once the socket is accepted; raises
        Disconnect (and the session is closed) when a limit refuses it."""
        try:
            self.ctx.limiter.open_ip(self.remote_ip)
        except Disconnect:
            self.state = State.CLOSED
            raise
        self._ip_counted = True
        # 3502 if still NEW then: the pinger's FIFO, not a timer per connection
        # (a handle made and cancelled per connect, left in the loop's heap)
        self.ctx.pinger.watch_new(self, time.monotonic() + self.ctx.options.client_stale_timeout)

    def stale_due(self) -> None:
        """The pinger: client_stale_timeout has passed since the socket opened."""
        if self.state is State.NEW:
            self.disconnect(errors.STALE)

    def connected_as(self, user: str, conn_info: Any, expire_at: int, meta: Any) -> None:
        """NEW -> CONNECTED: the connect command authenticated ``user``."""
        ctx = self.ctx
        ctx.limiter.open_user(user)
        self._registered = True
        self.user = user
        self.info = ClientInfo(client=self.client_id, user=user, conn_info=conn_info)
        self.expire_at = expire_at
        self.meta = meta
        self.state = State.CONNECTED
        ctx.hub.add_client(self)
        ctx.pinger.add(self)
        self._schedule_expiry()
        ctx.observer.connect(sdk_label(self.sdk))
        if log.isEnabledFor(logging.INFO):  # the extra dict is built per connect otherwise
            log.info(
                "connect client=%s user=%s ip=%s sdk=%s/%s", self.client_id, user, self.remote_ip, self.sdk or "-",
                self.sdk_version or "-",
                extra={"event": "connect", "client": self.client_id, "user": user, "ip": self.remote_ip,
                       "sdk": self.sdk, "sdk_version": self.sdk_version},
            )

    async def closed_by_peer(self) -> None:
        """Transport lost: forget everything this connection held."""
        by_peer = self.state is not State.CLOSED  # else disconnect() already counted and logged it
        self.state = State.CLOSED
        registered, self._registered = self._registered, False
        self._release(registered)
        hub = self.ctx.hub
        if registered:
            hub.remove_client(self)
            self.ctx.pinger.remove(self)
            if by_peer:
                self._log_disconnect(errors.CONNECTION_CLOSED, None)
        for channel in list(self.subs):
            self.subs.pop(channel, None)
            try:
                await hub.unsubscribe(self, channel, self.info)
            except Exception:
                log.exception("unsubscribe on close failed for %s", channel)
        if registered:
            await connection_closed(self)

    def _release(self, registered: bool) -> None:
        for h in (self._expire_handle, self._sub_expire_handle):
            if h is not None:
                h.cancel()
        self._expire_handle = self._sub_expire_handle = None
        if self._ip_counted:
            self._ip_counted = False
            self.ctx.limiter.close_ip(self.remote_ip)
        if registered:
            self.ctx.limiter.close_user(self.user)

    def _log_disconnect(self, code: DisconnectCode, reason: str | None) -> None:
        self.close_code = code.code
        self.ctx.observer.disconnect(code.code)
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "disconnect client=%s user=%s code=%d reason=%s",
            self.client_id, self.user, code.code, reason or code.reason,
            extra={"event": "disconnect", "client": self.client_id, "user": self.user, "code": code.code},
        )

    # ------------------------------------------------------------ Subscriber
    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        return self.out.push(self, channel, kind, body)

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        if self.state is not State.CLOSED:
            self.wire.write(data, conflate)

    def disconnect(self, code: DisconnectCode, reason: str | None = None) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self._log_disconnect(code, reason)
        self.wire.close(code.code, reason or code.reason)

    # ------------------------------------------------------------ pinger
    def send_ping(self, now: float) -> None:
        self.write_wire(self.wire.frame(self.wire.codec.ping))

    def pong_overdue(self, sent_at: float) -> bool:
        return self.out.expects_pongs and self._pong_at < sent_at

    def no_pong(self) -> None:
        self.disconnect(errors.NO_PONG)

    # ------------------------------------------------------------ input
    async def handle_frame(self, data: bytes | str) -> None:
        """Decode one incoming message and run its commands in order."""
        commands = self._decode(data)
        if commands:
            await self.run_commands(commands)

    def start_frame(self, data: bytes | str) -> list[Command] | None:
        """Decode one incoming message and start, without a Task of the
        caller's, the publishes it leads with that can start at once; the
        commands left (for :meth:`run_commands`, in order), or None.

        Why: a publishing client's frame is usually one publish, and a Task
        only to start it was a tenth of the server's CPU per publication. Only
        for a transport with nothing of this session's still running."""
        commands = self._decode(data)
        if not commands:
            return None
        together = self._runs_publishes_together()
        i = 0
        for cmd in commands:
            if not cmd.method:  # a pong: nothing to run
                i += 1
                continue
            if not (together and cmd.method == "publish" and cmd.id):
                break
            if self._publishing is None:
                self._publishing = PublishRun()
            if not self._publishing.start_now(self.run, cmd):
                break
            i += 1
        return commands[i:] or None

    def _decode(self, data: bytes | str) -> list[Command] | None:
        if self.state is State.CLOSED:
            return None
        self._pong_at = time.monotonic()  # any frame proves the peer is alive
        try:
            return self.wire.codec.decode_commands(data)
        except ProtocolError as e:
            log.info("bad frame from client=%s: %s", self.client_id, e)
            self.disconnect(e.disconnect, str(e)[:100])
            return None

    async def run_commands(self, commands: list[Command]) -> None:
        """Run decoded commands in order; consecutive publishes start together."""
        for cmd in commands:
            if self.state is State.CLOSED:
                return
            if cmd.method == "publish" and cmd.id and self._runs_publishes_together():
                if self._publishing is None:
                    self._publishing = PublishRun()
                await self._publishing.start(self.run, cmd)
                continue
            if self._publishing is not None:
                await self._publishing.drain()
            await self.run(cmd)

    def _runs_publishes_together(self) -> bool:
        """Whether publishes may start before the previous ones finished (handlers.publish_run)."""
        ctx = self.ctx
        return self.state is State.CONNECTED and ctx.proxy is None and ctx.hooks.on_publish is None

    async def run(self, cmd: Command) -> None:
        """Run one decoded command (a transport may feed commands it made itself).

        One coroutine for the whole command (no inner dispatch coroutine): it is
        resumed once per await of every command, publishes included."""
        try:
            method = cmd.method
            if not method:
                return  # pong
            if self.state is State.NEW:
                if method != "connect":
                    raise Disconnect(errors.BAD_REQUEST, "connect first")
            elif method == "connect":
                raise Disconnect(errors.BAD_REQUEST, "already connected")
            command = COMMANDS.get(method)
            if not cmd.id and (command is None or command.needs_id):
                raise Disconnect(errors.BAD_REQUEST, "command id required")
            if self._bucket is not None and not self._bucket.take():
                self._limited += 1
                if self._limited > _TOO_MANY_ERRORS:
                    raise Disconnect(errors.TOO_MANY_REQUESTS)
                self.out.error(self, cmd.id, errors.TooManyRequests())
                return
            self._limited = 0
            if command is None:
                self.out.error(self, cmd.id, errors.MethodNotFound())
                return
            hub = self.ctx.hub
            hub.inflight += 1
            started = time.perf_counter()
            code = 0
            try:
                result = await command.run(self, command.parse(cmd.params))
            except Disconnect as d:
                code = d.code
                raise
            except Exception as e:
                err = _error_reply(e, self.client_id, method)
                code = err.code
                self.out.error(self, cmd.id, err)
                return
            finally:
                hub.inflight -= 1
                self.ctx.observer.command(method, code, time.perf_counter() - started)
            if result is None or not cmd.id:
                return
            if isinstance(result, Reply):
                self.out.reply(self, cmd.id, method, result.result)
                for frame in result.after:  # pushes that must follow this reply
                    self.write_wire(frame)
            else:
                self.out.reply(self, cmd.id, method, result)
        except Disconnect as d:
            log.info("client=%s disconnected by command %s: %s", self.client_id, cmd.method, d.reason)
            self.disconnect(DisconnectCode(d.code, d.reason), d.reason)

    def accept_data(self, data: Any) -> None:
        """BadRequest unless data this client sent can reach every client format."""
        if self.wire.codec.binary:
            check_data(data)  # JSON input is always representable

    # ------------------------------------------------------------ token expiry
    def set_expiry(self, expire_at: int) -> None:
        """The connection token now expires at ``expire_at`` (0 = never)."""
        self.expire_at = expire_at
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if not self.expire_at and self._expire_handle is None:
            return  # never expires, no timer to cancel: the common connect
        at = deadline(self.expire_at, self.ctx.options.client_expired_close_delay)
        self._expire_handle = _rearm(self._expire_handle, at, self._expired)

    def _expired(self) -> None:
        self._expire_handle = None
        at = deadline(self.expire_at, self.ctx.options.client_expired_close_delay)
        if at is not None and time.time() >= at:
            self.disconnect(errors.EXPIRED)
        else:
            self._schedule_expiry()

    def watch_subscriptions(self) -> None:
        """One timer for the earliest subscription-token deadline."""
        at = first_deadline((sub.expire_at for sub in self.subs.values()), self.ctx.options.client_expired_sub_close_delay)
        self._sub_expire_handle = _rearm(self._sub_expire_handle, None if self.closed else at, self._subs_expired)

    def _subs_expired(self) -> None:
        self._sub_expire_handle = None
        if self.state is State.CLOSED:
            return
        expiries = {channel: sub.expire_at for channel, sub in self.subs.items()}
        for channel in due(expiries, time.time(), self.ctx.options.client_expired_sub_close_delay):
            log.info("client=%s subscription to %s expired", self.client_id, channel)
            self.ctx.hub.spawn(self.server_side_unsubscribe(channel, UNSUBSCRIBE_EXPIRED, "subscription expired"))
            self.subs[channel].expire_at = 0
        self.watch_subscriptions()

    # ------------------------------------------------------------ server side (handlers.control)
    async def server_side_subscribe(self, channel: str) -> None:
        """Subscribe on the server's initiative (server API) and push it."""
        await server_subscribe(self, channel)

    async def server_side_unsubscribe(self, channel: str, code: int = 2000, reason: str = "server unsubscribe") -> None:
        await server_unsubscribe(self, channel, code, reason)

    async def server_side_refresh(self, expire_at: int, conn_info: Any = None) -> None:
        await server_refresh(self, expire_at, conn_info)

    async def update_conn_info(self, conn_info: Any) -> None:
        """A refresh (client token, refresh proxy, server API) changed the
        connection's info: publications, joins and leaves carry the new one,
        and its presence entries are re-written now, not at the next connect."""
        self.info = ClientInfo(client=self.client_id, user=self.user, conn_info=conn_info)
        await self.ctx.hub.update_info(self, list(self.subs), self.info)

    def send_message(self, data: Any) -> None:
        """A ``message`` push: the server API's send (the client's 'message' event)."""
        if self.state is State.CONNECTED:
            w = self.wire
            self.write_wire(w.frame(w.codec.connection_push("message", {"data": data})))


def _error_reply(e: Exception, client: str, method: str) -> SquallError:
    """The error reply for a command that raised ``e``, logged by how bad it is."""
    if isinstance(e, SquallError):
        if e.code != 100:
            log.debug("client=%s %s -> error %d %s", client, method, e.code, e.message)
        else:
            log.warning("client=%s %s -> temporary error: %s", client, method, e.message)
        return e
    if isinstance(e, (KeyError, TypeError, ValueError)):
        log.info("client=%s bad %s params: %r", client, method, e)
        return errors.BadRequest()
    log.exception("client=%s %s failed", client, method)
    return errors.InternalError()


def _rearm(handle: asyncio.TimerHandle | None, at: float | None, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Cancel ``handle``; a new timer calling ``callback`` at unix time ``at`` (none if None)."""
    if handle is not None:
        handle.cancel()
    if at is None:
        return None
    return asyncio.get_running_loop().call_later(max(0.0, at - time.time()), callback)
