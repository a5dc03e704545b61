"""The channel commands: subscribe, unsubscribe, publish, presence, presence
stats, history, sub_refresh; joining a channel, which the connect command and
the server API's subscribe share with subscribe; and the server API's
subscribe and unsubscribe of a connection.

Each command is one function of the session and its parsed request (see
:mod:`handlers.commands` for the table). Permissions are
:mod:`handlers.permissions`'s; tokens are checked by :mod:`handlers.tokens`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable

from channels import errors, tracing
from channels.namespaces import NamespaceOptions
from channels.types import Publication
from handlers import proxy_calls
from channels.delta_fanout import Delivery
from handlers.delivery import delivery_for, keeps, publication_body
from handlers.expiry import already_expired, ttl_fields
from handlers.permissions import Action, check
from handlers.reply import Reply, Result
from handlers import sub_outages
from handlers.requests import (
    NO_STREAM_REQUEST,
    ChannelRequest,
    HistoryRequest,
    PublishRequest,
    StreamRequest,
    SubRefreshRequest,
    SubscribeRequest,
)
from handlers.tokens import subscription_claims

if TYPE_CHECKING:
    from handlers.session import ClientSession

log = logging.getLogger("squall.client")

FLAG_REJECT_UNRECOVERED = 2
_SUBSCRIBE_PUSH_FIELDS = ("recoverable", "epoch", "offset", "positioned")


@dataclass(slots=True)
class Subscription:
    """One channel a session is subscribed to."""

    opts: NamespaceOptions
    server_side: bool = False
    expire_at: int = 0  # the subscription token's expiry; 0 = none
    proxy_timer: asyncio.TimerHandle | None = None  # the sub_refresh proxy's (handlers.proxy_calls)


def allowed(s: ClientSession, action: Action, channel: str, opts: NamespaceOptions) -> None:
    try:
        check(action, channel, opts, s.user, channel in s.subs)
    except errors.PermissionDenied:
        # not subscribed only because its subscribe failed in a backend outage: say that (handlers.sub_outages)
        outage = sub_outages.outage_instead(s, action, channel, opts)
        if outage is not None:
            raise outage from None
        raise


async def join(
    s: ClientSession,
    channel: str,
    opts: NamespaceOptions,
    stream: StreamRequest,
    *,
    server_side: bool = False,
    expire_at: int = 0,
    chan_info: Any = None,
    delivery: Delivery | None = None,
) -> tuple[dict[str, Any], list[Publication]]:
    """Subscribe ``s`` in the hub: the reply's stream fields, and the
    publications to push right after the reply."""
    hub = s.ctx.hub
    s.subs[channel] = Subscription(opts, server_side=server_side, expire_at=expire_at)
    try:
        out = await hub.subscribe(
            s,
            channel,
            opts,
            s.info if chan_info is None else dataclasses.replace(s.info, chan_info=chan_info),
            recover=stream.since is not None,
            since=stream.since,
            join_leave=stream.join_leave or server_side,
            recoverable=stream.recoverable,
            delivery=delivery,
        )
    except BaseException:
        s.subs.pop(channel, None)
        raise
    if s.closed:
        # the connection went away while subscribing: undo
        s.subs.pop(channel, None)
        await hub.unsubscribe(s, channel, None)
        return {}, []
    if out.was_recovering and not out.recovered and stream.flag & FLAG_REJECT_UNRECOVERED:
        s.subs.pop(channel, None)
        await hub.unsubscribe(s, channel, None)
        raise errors.UnrecoverablePosition()
    result: dict[str, Any] = {}
    if opts.stream.enabled:
        result["epoch"] = out.position.epoch
        result["offset"] = out.position.offset
        if out.recoverable:
            result["recoverable"] = True
        if opts.force_positioning or stream.positioned:
            result["positioned"] = True
    if out.was_recovering:
        result["was_recovering"] = True
        result["recovered"] = out.recovered
    if delivery is not None and delivery.delta:
        result["delta"] = True
    recovered = [p for p in out.publications if keeps(delivery, p)] if out.publications else []
    if recovered:
        result["publications"] = [publication_body(delivery, p) for p in recovered]
    if expire_at:
        result.update(ttl_fields(expire_at, time.time()))
    return result, out.pending


async def subscribe(s: ClientSession, req: SubscribeRequest) -> Result:
    ctx = s.ctx
    channel = req.channel
    opts = ctx.channel_options(channel)
    if channel in s.subs:
        raise errors.AlreadySubscribed()
    if len(s.subs) >= ctx.options.client_channel_limit:
        raise errors.LimitExceeded("channel limit")
    expire_at = 0
    proxied = None
    delivery = delivery_for(req, opts, s.wire.codec.binary)
    token_info: Any = None
    if req.token:
        claims = subscription_claims(ctx.verifier, req.token, channel, s.user, s.client_id)
        expire_at, token_info = claims.expire_at, claims.info
        if already_expired(expire_at, time.time()):
            raise errors.TokenExpired()
    elif (found := proxy_calls.channel_proxy(ctx, "subscribe", opts)) is not None:
        proxied = await proxy_calls.subscribe(*found, s, channel, req.token, req.data)
        opts = dataclasses.replace(opts, **proxied.override.changes())
    else:
        allowed(s, Action.SUBSCRIBE, channel, opts)
    if ctx.hooks.on_subscribe is not None:
        with tracing.span(ctx.tracer, "squall.hook", hook="on_subscribe", channel=channel):
            await ctx.hooks.on_subscribe(s.info, channel)
    try:
        result, pending = await join(
            s, channel, opts, req.stream, expire_at=expire_at, chan_info=proxied.info if proxied else token_info, delivery=delivery
        )
    except errors.BackendUnavailable as e:
        sub_outages.remember(s, channel, e)
        raise
    sub_outages.forget(s, channel)
    if proxied is not None:
        proxy_calls.subscribed(s, channel, opts, proxied, result)
    after = (
        [s.encode_push(channel, "pub", publication_body(delivery, p)) for p in pending if keeps(delivery, p)]
        if pending else []
    )
    if expire_at:
        s.watch_subscriptions()
    return Reply(result, after)


async def unsubscribe(s: ClientSession, req: ChannelRequest) -> Result:
    sub_outages.forget(s, req.channel)
    if s.subs.pop(req.channel, None) is not None:
        await s.ctx.hub.unsubscribe(s, req.channel, s.info)
    return {}


def publish(s: ClientSession, req: PublishRequest) -> Awaitable[Result]:
    # not a coroutine itself: without tracing (the common case) the command
    # is _publish, one coroutine frame less to resume per publication
    if s.ctx.tracer is None:
        return _publish(s, req)
    return _traced_publish(s, req)


async def _traced_publish(s: ClientSession, req: PublishRequest) -> Result:
    tracer = s.ctx.tracer
    assert tracer is not None
    with tracer.span("squall.client.publish", {"channel": req.channel, "client": s.client_id, "user": s.user}):
        return await _publish(s, req)


async def _publish(s: ClientSession, req: PublishRequest) -> Result:
    ctx = s.ctx
    channel = req.channel
    opts = ctx.channel_options(channel)
    found = proxy_calls.channel_proxy(ctx, "publish", opts)
    if found is None:
        allowed(s, Action.PUBLISH, channel, opts)
    data = req.data
    s.accept_data(data)
    if found is not None:
        data = await proxy_calls.publish_data(*found, s, channel, data)
    if ctx.hooks.on_publish is not None:
        with tracing.span(ctx.tracer, "squall.hook", hook="on_publish", channel=channel):
            data = await ctx.hooks.on_publish(s.info, channel, data)
    await ctx.hub.publish(channel, data, info=s.info, tags=req.tags, opts=opts)
    return {}


def _presence_allowed(s: ClientSession, channel: str) -> None:
    opts = s.ctx.channel_options(channel)
    if not opts.presence:
        raise errors.NotAvailable()
    allowed(s, Action.PRESENCE, channel, opts)


async def presence(s: ClientSession, req: ChannelRequest) -> Result:
    _presence_allowed(s, req.channel)
    entries = await s.ctx.hub.presence(req.channel)
    if len(entries) > s.ctx.options.presence_max_clients:
        raise errors.LimitExceeded("presence too large; use presence_stats")
    return {"presence": {cid: i.to_dict() for cid, i in entries.items()}}


async def presence_stats(s: ClientSession, req: ChannelRequest) -> Result:
    _presence_allowed(s, req.channel)
    clients, users = await s.ctx.hub.presence_stats(req.channel)
    return {"num_clients": clients, "num_users": users}


async def history(s: ClientSession, req: HistoryRequest) -> Result:
    ctx = s.ctx
    opts = ctx.channel_options(req.channel)
    if not opts.stream.enabled:
        raise errors.NotAvailable()
    allowed(s, Action.HISTORY, req.channel, opts)
    res = await ctx.hub.history(req.channel, req.query(ctx.options.history_max_limit), opts)
    return {
        "publications": [p.to_dict() for p in res.publications],
        "epoch": res.position.epoch,
        "offset": res.position.offset,
    }


async def sub_refresh(s: ClientSession, req: SubRefreshRequest) -> Result:
    sub = s.subs.get(req.channel)
    if sub is None:
        raise errors.BadRequest("not subscribed")
    claims = subscription_claims(s.ctx.verifier, req.token, req.channel, s.user, s.client_id)
    sub.expire_at = claims.expire_at
    s.watch_subscriptions()
    return ttl_fields(claims.expire_at, time.time())


async def server_subscribe(s: ClientSession, channel: str) -> None:
    """Subscribe on the server's initiative (server API) and push it."""
    if channel in s.subs or not s.connected:
        return
    result, pending = await join(s, channel, s.ctx.channel_options(channel), NO_STREAM_REQUEST, server_side=True)
    body = {k: v for k, v in result.items() if k in _SUBSCRIBE_PUSH_FIELDS}
    s.write_wire(s.encode_push(channel, "subscribe", body))
    for p in pending:
        s.write_wire(s.encode_push(channel, "pub", p.to_dict()))


async def server_unsubscribe(s: ClientSession, channel: str, code: int, reason: str) -> None:
    """Unsubscribe on the server's initiative (server API, expired token) and push it."""
    if s.subs.pop(channel, None) is None:
        return
    await s.ctx.hub.unsubscribe(s, channel, s.info)
    s.write_wire(s.encode_push(channel, "unsubscribe", {"code": code, "reason": reason}))
