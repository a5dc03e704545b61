"""One rule for every Redis call: failures become BackendUnavailable."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from redis.exceptions import RedisError

from channels.errors import BackendUnavailable


@contextlib.asynccontextmanager
async def redis_call(what: str) -> AsyncIterator[None]:
    """Connection errors, timeouts and error replies: temporary for clients."""
    try:
        yield
    except (RedisError, OSError, asyncio.TimeoutError) as e:
        raise BackendUnavailable(f"redis {what} failed: {type(e).__name__}") from e
