"""The server API's methods, independent of HTTP (the handler is handlers.api).

Shapes follow Centrifugo's v5 server API so ``cent`` and curl examples written
for Centrifugo work unchanged. The API bypasses client permissions: whoever
holds the API key may publish anywhere, read any history or presence, and act
on any user's connections (through node-to-node control ops, so every node's
connections are reached).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable

from channels import errors
from channels.errors import SquallError
from channels.namespaces import NamespaceOptions
from handlers.context import Context
from handlers.api_requests import (
    BatchRequest,
    BroadcastRequest,
    DisconnectRequest,
    MembershipRequest,
    PublishRequest,
    RefreshRequest,
    SendRequest,
    string_param,
)
from handlers.requests import ChannelRequest, HistoryRequest

Params = dict[str, Any]
Method = Callable[[Params], Awaitable[dict[str, Any]]]

# Publications with the same idempotency_key within this window are published once.
IDEMPOTENCY_WINDOW = 300.0
IDEMPOTENCY_MAX_KEYS = 10_000


class ServerApi:
    """One instance per node; holds the idempotency window for publish."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.started = time.time()
        self._recent: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.methods: dict[str, Method] = {
            "publish": self.publish,
            "broadcast": self.broadcast,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "disconnect": self.disconnect,
            "send": self.send,
            "refresh": self.refresh,
            "presence": self.presence,
            "presence_stats": self.presence_stats,
            "history": self.history,
            "history_remove": self.history_remove,
            "channels": self.channels,
            "info": self.info,
            "batch": self.batch,
        }

    async def call(self, method: str, params: Any) -> dict[str, Any]:
        """Run one method; raises SquallError (MethodNotFound for unknown ones)."""
        fn = self.methods.get(method)
        if fn is None:
            raise errors.MethodNotFound()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise errors.BadRequest("params must be an object")
        try:
            return await fn(params)
        except SquallError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise errors.BadRequest(str(e)[:200] or "bad request") from None

    async def reply(self, method: str, params: Any) -> dict[str, Any]:
        """``{"result": ...}`` or ``{"error": {"code", "message"}}``."""
        try:
            return {"result": await self.call(method, params)}
        except SquallError as e:
            return {"error": {"code": e.code, "message": e.message}}

    # ------------------------------------------------------------ helpers
    def _lookup(self, channel: str) -> NamespaceOptions:
        return self.ctx.channel_options(channel)

    # ------------------------------------------------------------ publishing
    async def publish(self, params: Params) -> dict[str, Any]:
        req = PublishRequest.parse(params)
        channel, key = req.channel, req.idempotency_key
        opts = self._lookup(channel)
        if key:
            seen = self._recent_result(f"{channel}\x00{key}")
            if seen is not None:
                return seen
        if req.skip_history and opts.stream.enabled:
            opts = dataclasses.replace(opts, history_size=0, latest_value=False)
        pos = await self.ctx.hub.publish(channel, req.data, tags=req.tags, opts=opts)
        out: dict[str, Any] = {}
        if pos.offset or pos.epoch:
            out = {"offset": pos.offset, "epoch": pos.epoch}
        if key:
            self._remember(f"{channel}\x00{key}", out)
        return out

    def _recent_result(self, key: str) -> dict[str, Any] | None:
        now = time.monotonic()
        while self._recent:
            oldest, (stamp, _) = next(iter(self._recent.items()))
            if now - stamp < IDEMPOTENCY_WINDOW and len(self._recent) <= IDEMPOTENCY_MAX_KEYS:
                break
            self._recent.pop(oldest)
        hit = self._recent.get(key)
        return dict(hit[1]) if hit is not None else None

    def _remember(self, key: str, result: dict[str, Any]) -> None:
        self._recent[key] = (time.monotonic(), dict(result))

    async def broadcast(self, params: Params) -> dict[str, Any]:
        req = BroadcastRequest.parse(params)
        rest = {k: v for k, v in params.items() if k != "channels"}
        replies = await asyncio.gather(*(self.reply("publish", {**rest, "channel": c}) for c in req.channels))
        return {"responses": list(replies)}

    # ------------------------------------------------------------ connections
    async def subscribe(self, params: Params) -> dict[str, Any]:
        return await self._membership("subscribe", params)

    async def unsubscribe(self, params: Params) -> dict[str, Any]:
        return await self._membership("unsubscribe", params)

    async def _membership(self, op: str, params: Params) -> dict[str, Any]:
        """Subscribe or unsubscribe a user's (or one client's) connections on every node."""
        req = MembershipRequest.parse(params)
        self._lookup(req.channel)
        await self.ctx.hub.send_control(op, user=req.user, client=req.client, channel=req.channel)
        return {}

    async def send(self, params: Params) -> dict[str, Any]:
        """A ``message`` push to a user's (or one client's) connections on every node."""
        req = SendRequest.parse(params)
        await self.ctx.hub.send_control("message", user=req.user, client=req.client, data=req.data)
        return {}

    async def disconnect(self, params: Params) -> dict[str, Any]:
        req = DisconnectRequest.parse(params)
        await self.ctx.hub.send_control(
            "disconnect", user=req.user, client=req.client, code=req.code, reason=req.reason, whitelist=req.whitelist
        )
        return {}

    async def refresh(self, params: Params) -> dict[str, Any]:
        """Centrifugo's server-side refresh: ``expired`` ends the connections with
        3005; otherwise they expire at ``expire_at`` (unix seconds, none = never)
        and, with ``info``, show that info from now on."""
        req = RefreshRequest.parse(params)
        if req.expired:
            dc = errors.EXPIRED
            await self.ctx.hub.send_control("disconnect", user=req.user, client=req.client, code=dc.code, reason=dc.reason)
            return {}
        extra: dict[str, Any] = {"info": req.info} if req.info is not None else {}
        await self.ctx.hub.send_control("refresh", user=req.user, client=req.client, expire_at=req.expire_at, **extra)
        return {}

    # ------------------------------------------------------------ reads
    async def presence(self, params: Params) -> dict[str, Any]:
        channel = ChannelRequest.parse(params).channel
        if not self._lookup(channel).presence:
            raise errors.NotAvailable()
        entries = await self.ctx.hub.presence(channel)
        return {"presence": {cid: info.to_dict() for cid, info in entries.items()}}

    async def presence_stats(self, params: Params) -> dict[str, Any]:
        channel = ChannelRequest.parse(params).channel
        if not self._lookup(channel).presence:
            raise errors.NotAvailable()
        clients, users = await self.ctx.hub.presence_stats(channel)
        return {"num_clients": clients, "num_users": users}

    async def history(self, params: Params) -> dict[str, Any]:
        # cent sends unset fields as null: absent, as on the client protocol
        req = HistoryRequest.parse({k: v for k, v in params.items() if v is not None})
        opts = self._lookup(req.channel)
        if not opts.stream.enabled:
            raise errors.NotAvailable()
        res = await self.ctx.hub.history(req.channel, req.query(self.ctx.options.history_max_limit), opts)
        return {
            "publications": [p.to_dict() for p in res.publications],
            "offset": res.position.offset,
            "epoch": res.position.epoch,
        }

    async def history_remove(self, params: Params) -> dict[str, Any]:
        channel = ChannelRequest.parse(params).channel
        if not self._lookup(channel).stream.enabled:
            raise errors.NotAvailable()
        await self.ctx.hub.remove_history(channel)
        return {}

    async def channels(self, params: Params) -> dict[str, Any]:
        """Active channels of THIS node with their local subscriber counts."""
        pattern = string_param(params, "pattern", required=False)
        counts = self.ctx.hub.channel_counts()
        return {
            "channels": {
                name: {"num_clients": n}
                for name, n in sorted(counts.items())
                if n > 0 and (not pattern or fnmatch.fnmatchcase(name, pattern))
            }
        }

    async def info(self, params: Params) -> dict[str, Any]:
        hub = self.ctx.hub
        nodes = []
        for node in hub.nodes():
            d = node.to_dict()
            if node.uid == hub.node_id:
                d["version"] = self.ctx.version
                d["uptime"] = int(time.time() - self.started)
            nodes.append(d)
        return {"nodes": nodes}

    async def batch(self, params: Params) -> dict[str, Any]:
        """``{"commands": [{method: params}, ...], "parallel": bool}`` -> ``{"replies": [...]}``."""
        req = BatchRequest.parse(params)
        calls = [self._batch_one(c) for c in req.commands]
        if req.parallel:
            replies = list(await asyncio.gather(*calls))
        else:
            replies = [await c for c in calls]
        return {"replies": replies}

    async def _batch_one(self, command: Any) -> dict[str, Any]:
        if not isinstance(command, dict) or len(command) != 1:
            return {"error": {"code": errors.BadRequest.code, "message": "command must be {method: params}"}}
        ((method, params),) = command.items()
        if method == "batch":
            return {"error": {"code": errors.BadRequest.code, "message": "nested batch"}}
        try:
            return {method: await self.call(method, params)}
        except SquallError as e:
            return {"error": {"code": e.code, "message": e.message}}
