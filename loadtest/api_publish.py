"""``--publish-via api``: publishers publish through the server HTTP API, as a backend does.

Centrifugo's (and Squall's) API: ``POST {api_url}/publish`` with
``X-API-Key`` and ``{"channel", "data"}``; the answer is ``{"result": ...}``
or ``{"error": {"code", "message"}}`` with status 200, or 401/404 for a wrong
key or a disabled API. aiohttp keeps the connections alive.

Each channel's publishes go out one at a time, in order: the load tester
checks every (publisher, channel) stream's sequence, and concurrent HTTP
requests on separate connections could overtake each other. A single
channel's rate through the API is therefore bounded by one round trip.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable

import orjson

Reply = dict[str, Any]


class ApiPublisher:
    def __init__(self, api_url: str, api_key: str, timeout: float) -> None:
        self.url = api_url.rstrip("/") + "/publish"
        self.api_key = api_key
        self.timeout = timeout
        self._session: Any = None
        self._queues: dict[str, deque[tuple[Any, Callable[[Reply], None]]]] = {}
        self._senders: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=0),
        )

    def publish(self, channel: str, data: Any, callback: Callable[[Reply], None]) -> None:
        """Queue one publish; ``callback`` gets ``{"publish": result}`` or ``{"error": {...}}``."""
        q = self._queues.get(channel)
        if q is None:
            q = self._queues[channel] = deque()
        q.append((data, callback))
        if len(q) == 1:
            task = asyncio.ensure_future(self._send_all(channel, q))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _send_all(self, channel: str, q: deque[tuple[Any, Callable[[Reply], None]]]) -> None:
        while q:
            data, callback = q[0]
            reply = await self._post(channel, data)
            q.popleft()
            callback(reply)

    async def _post(self, channel: str, data: Any) -> Reply:
        import aiohttp

        body = orjson.dumps({"channel": channel, "data": data})
        try:
            async with self._session.post(self.url, data=body) as r:
                raw = await r.read()
                if r.status != 200:
                    return {"error": {"code": f"http-{r.status}", "message": raw[:200].decode(errors="replace")}}
                reply = orjson.loads(raw)
        except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError) as e:
            return {"error": {"code": type(e).__name__, "message": str(e)}}
        err = reply.get("error") if isinstance(reply, dict) else None
        if err:
            return {"error": err}
        return {"publish": reply.get("result") or {}}

    async def close(self) -> None:
        """Fail what is still queued (code -1, as a closed connection's commands) and close the session."""
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        for q in self._queues.values():
            while q:
                _, callback = q.popleft()
                callback({"error": {"code": -1, "message": "closed by the load tester"}})
        if self._session is not None:
            await self._session.close()
