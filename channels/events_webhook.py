"""The webhook sink: POST a batch of events, HMAC-signed, to one URL.

Body: ``{"events": [ {id, type, time_ms, node, ...}, ... ]}``. Headers:
``X-Squall-Timestamp`` (unix seconds) and ``X-Squall-Signature:
sha256=<hex>``, the HMAC-SHA256 with ``events_webhook_secret`` of
``<timestamp>.<body>`` (docs/EVENTS.md shows the check). Any 2xx answer
takes the batch; anything else, a timeout or no connection raises, and
:mod:`channels.events_delivery` retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import aiohttp


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookError(Exception):
    """The receiver did not take the batch."""


class Webhook:
    def __init__(self, url: str, secret: str = "", timeout: float = 5.0) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, events: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"events": events})
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Squall-Timestamp": ts}
        if self.secret:
            headers["X-Squall-Signature"] = signature(self.secret, ts, body)
        import aiohttp  # only when a webhook is configured (docs/DEPENDENCIES.md)

        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.post(self.url, data=body, headers=headers) as resp:
                    await resp.read()
                    if not 200 <= resp.status < 300:
                        raise WebhookError(f"HTTP {resp.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise WebhookError(f"{type(e).__name__}: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
