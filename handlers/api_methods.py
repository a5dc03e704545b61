"""The server API's methods, independent of HTTP (the handler is handlers.api).

Shapes follow Centrifugo's v5 server API so ``cent`` and curl examples written
for Centrifugo work unchanged. The API bypasses client permissions: whoever
holds the API key may publish anywhere, read any history or presence, and act
on any user's connections (through node-to-node control ops, so every node's
connections are reached).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import fnmatch
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable

from channels import errors
from channels.errors import SquallError
from channels.namespaces import NamespaceOptions
from handlers.context import Context
from handlers.requests import ChannelRequest, HistoryRequest, channel_param

Params = dict[str, Any]
Method = Callable[[Params], Awaitable[dict[str, Any]]]

# Publications with the same idempotency_key within this window are published once.
IDEMPOTENCY_WINDOW = 300.0
IDEMPOTENCY_MAX_KEYS = 10_000
BATCH_MAX_COMMANDS = 1000


def _str(params: Params, key: str, *, required: bool = True) -> str:
    value = params.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise errors.BadRequest(f"{key} must be a string")
    if required and not value:
        raise errors.BadRequest(f"{key} required")
    return value


def _data(params: Params) -> Any:
    """``data`` (any JSON) or ``b64data`` (bytes, delivered base64 to JSON clients)."""
    b64 = params.get("b64data")
    if b64:
        if not isinstance(b64, str):
            raise errors.BadRequest("b64data must be a string")
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise errors.BadRequest("b64data is not base64") from None
    if "data" not in params:
        raise errors.BadRequest("data required")
    return params["data"]


def _tags(params: Params) -> dict[str, str] | None:
    tags = params.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise errors.BadRequest("tags must map strings to strings")
    return tags or None


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
        channel = channel_param(params)
        opts = self._lookup(channel)
        data = _data(params)
        tags = _tags(params)
        key = _str(params, "idempotency_key", required=False)
        if key:
            seen = self._recent_result(f"{channel}\x00{key}")
            if seen is not None:
                return seen
        if params.get("skip_history") and opts.stream.enabled:
            opts = dataclasses.replace(opts, history_size=0, latest_value=False)
        pos = await self.ctx.hub.publish(channel, data, tags=tags, opts=opts)
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
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            raise errors.BadRequest("channels must be a non-empty list of strings")
        _data(params)  # validate once before publishing anywhere
        rest = {k: v for k, v in params.items() if k != "channels"}
        replies = await asyncio.gather(*(self.reply("publish", {**rest, "channel": c}) for c in channels))
        return {"responses": list(replies)}

    # ------------------------------------------------------------ connections
    async def subscribe(self, params: Params) -> dict[str, Any]:
        return await self._membership("subscribe", params)

    async def unsubscribe(self, params: Params) -> dict[str, Any]:
        return await self._membership("unsubscribe", params)

    async def _membership(self, op: str, params: Params) -> dict[str, Any]:
        """Subscribe or unsubscribe a user's (or one client's) connections on every node."""
        user = _str(params, "user", required=False)
        channel = channel_param(params)
        self._lookup(channel)
        client = _str(params, "client", required=False)
        await self.ctx.hub.send_control(op, user=user, client=client, channel=channel)
        return {}

    async def disconnect(self, params: Params) -> dict[str, Any]:
        user = _str(params, "user", required=False)
        client = _str(params, "client", required=False)
        whitelist = params.get("whitelist") or []
        if not isinstance(whitelist, list) or not all(isinstance(c, str) for c in whitelist):
            raise errors.BadRequest("whitelist must be a list of client IDs")
        d = params.get("disconnect") or {}
        if not isinstance(d, dict):
            raise errors.BadRequest("disconnect must be an object")
        code = d.get("code") or errors.FORCE_NO_RECONNECT.code
        reason = d.get("reason") or errors.FORCE_NO_RECONNECT.reason
        if isinstance(code, bool) or not isinstance(code, int) or not 3000 <= code <= 4999:
            raise errors.BadRequest("disconnect code must be 3000..4999")
        if not isinstance(reason, str):
            raise errors.BadRequest("disconnect reason must be a string")
        await self.ctx.hub.send_control(
            "disconnect", user=user, client=client, code=code, reason=reason, whitelist=whitelist
        )
        return {}

    async def refresh(self, params: Params) -> dict[str, Any]:
        """Centrifugo's server-side refresh: ``expired`` ends the connections with
        3005; otherwise they expire at ``expire_at`` (unix seconds, none = never)
        and, with ``info``, show that info from now on."""
        user = _str(params, "user", required=False)
        client = _str(params, "client", required=False)
        expired = params.get("expired") or False
        expire_at = params.get("expire_at") or 0
        if not isinstance(expired, bool):
            raise errors.BadRequest("expired must be a boolean")
        if isinstance(expire_at, bool) or not isinstance(expire_at, int) or expire_at < 0:
            raise errors.BadRequest("expire_at must be a unix time in seconds")
        if expired:
            dc = errors.EXPIRED
            await self.ctx.hub.send_control("disconnect", user=user, client=client, code=dc.code, reason=dc.reason)
            return {}
        extra: dict[str, Any] = {"info": params["info"]} if params.get("info") is not None else {}
        await self.ctx.hub.send_control("refresh", user=user, client=client, expire_at=expire_at, **extra)
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
        pattern = _str(params, "pattern", required=False)
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
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise errors.BadRequest("commands must be a list")
        if len(commands) > BATCH_MAX_COMMANDS:
            raise errors.LimitExceeded(f"more than {BATCH_MAX_COMMANDS} commands")
        calls = [self._batch_one(c) for c in commands]
        if params.get("parallel"):
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
