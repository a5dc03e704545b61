"""One rule for every Redis call: failures become BackendUnavailable."""

from __future__ import annotations

import asyncio
from types import TracebackType

from redis.exceptions import RedisError

from channels.errors import BackendUnavailable

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class redis_call:  # noqa: N801 (used like a function: ``with redis_call("publish"):``)
    """Connection errors, timeouts and error replies: temporary for clients.

    A plain (synchronous) context manager around the awaits it guards: the
    publish path enters one per publication, and ``contextlib``'s async
    generator version cost a few µs each time."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None and isinstance(e, _FAILURES):
            raise BackendUnavailable(f"redis {self.what} failed: {type(e).__name__}") from e
