"""Auto-pipelining: Redis calls made at the same time leave in one pipeline.

Each publish to a channel with history is one Lua script call. Sent one by
one, every call pays a round trip and a socket write of its own, and Redis
reads one small frame per wake-up. Here concurrent calls queue, and one
drainer per Redis server sends whatever has queued as one pipeline
(``transaction=False``), waits for the replies, and sends the next batch.
Nothing waits on a timer: a lone call leaves at once, and a batch grows only
while the previous one is in flight.

Order and acknowledgement:

* calls enter Redis in the order they were queued (one pipeline in flight,
  one connection, FIFO), so a publisher that awaits each publish keeps its
  order, and the offsets a channel assigns follow the queue;
* a caller hears its own reply (or error) only after Redis answered it;
  nothing is acknowledged on the strength of a neighbour's reply;
* a connection error fails every call of that batch (whether Redis ran them
  is unknown, as for a single call); none is sent again, since a script run
  twice would publish twice.

``NOSCRIPT`` (Redis restarted or flushed its script cache) is answered per
call; those calls are sent again, in their order, after one ``SCRIPT LOAD``.
"""

from __future__ import annotations

import asyncio
import math
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Protocol, Sequence

import hiredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

log = logging.getLogger("squall.redis.batch")

MAX_BATCH = 512  # calls per pipeline: bounds one reply's parse time and the write


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script's text and SHA1 (as Redis names it)."""

    text: str
    sha: str


@dataclass(slots=True)
class _Call:
    command: tuple[Any, ...]  # as redis-py's execute_command takes it
    script: Script | None  # for EVALSHA: what to load on NOSCRIPT
    future: asyncio.Future[Any]


class Commands(Protocol):
    """The calls the broker makes on the publish path, batched or not."""

    def script(self, text: str) -> Script: ...

    def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Awaitable[Any]: ...

    def publish(self, topic: bytes, data: bytes) -> Awaitable[int]: ...

    async def close(self) -> None: ...


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class DirectCommands:
    """One request per call: for a Redis Cluster client, which routes each
    call by its key and has no single connection to pipeline on."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def script(self, text: str) -> Script:
        return Script(text, _sha(text))

    async def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._client.script_load(script.text)  # the key's node lacked it
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)

    async def publish(self, topic: bytes, data: bytes) -> int:
        return int(await self._client.spublish(topic, data))

    async def close(self) -> None:
        pass


class CommandPipeline:
    """Batches the calls made to one Redis client (not a cluster client)."""

    def __init__(self, client: Any, *, max_batch: int = MAX_BATCH) -> None:
        self._client = client
        self._max_batch = max(1, max_batch)
        self._queue: list[_Call] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        # cumulative, for metrics and the bench: batches sent and calls in them
        self.batches = 0
        self.calls = 0

    def script(self, text: str) -> Script:
        return Script(text, _sha(text))

    # run_script and publish queue at once and return the reply's future, not
    # a coroutine: the call is queued in the caller's order even before it is
    # awaited, and the publish path has two coroutine frames less to resume.
    def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue ``script``; the future gives its reply or raises its error (a RedisError)."""
        return self._queued(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def publish(self, topic: bytes, data: bytes) -> asyncio.Future[Any]:
        """Queue a PUBLISH; the future gives how many subscribers Redis reached."""
        return self._queued(("PUBLISH", topic, data), None)

    def _queued(self, command: tuple[Any, ...], script: Script | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            fut.set_exception(RedisError("redis command pipeline closed"))
            return fut
        self._queue.append(_Call(command, script, fut))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return fut

    async def close(self) -> None:
        """Stop draining; queued calls that were never sent fail."""
        self._closed = True
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        self._fail(self._queue, RedisError("redis command pipeline closed"))
        self._queue = []

    async def _drain(self) -> None:
        batch: list[_Call] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._send(batch)
                batch = []
        except asyncio.CancelledError:
            self._fail(batch, RedisError("redis command pipeline closed"))
            raise
        finally:
            if self._drainer is asyncio.current_task():
                self._drainer = None

    async def _send(self, batch: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            replies = await self._execute(batch)
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            self._fail(batch, e)
            return
        again = [c for c, r in zip(batch, replies) if isinstance(r, NoScriptError)]
        if again:
            replies = await self._retry_unloaded(batch, replies, again)
        for c, r in zip(batch, replies):
            if c.future.done():
                continue  # the caller gave up waiting
            if isinstance(r, Exception):
                c.future.set_exception(r)
            else:
                c.future.set_result(r)

    async def _execute(self, batch: Sequence[_Call]) -> list[Any]:
        """Send the batch as one write on one pooled connection; one reply per call.

        The commands are packed by hiredis (C) rather than redis-py's pipeline,
        whose pure-Python packing cost more than everything else on the path.
        An error reply belongs to its call; anything else leaves the
        connection's state unknown, so it is dropped and the batch fails.
        """
        pool = self._client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(b"".join([hiredis.pack_command(c.command) for c in batch]))
            replies: list[Any] = []
            # one deadline for the whole batch, not a timer per reply (math.inf: none of redis-py's own)
            async with asyncio.timeout(conn.socket_timeout):
                for _ in batch:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as e:
                        replies.append(e)
            return replies
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _retry_unloaded(self, batch: list[_Call], replies: list[Any], again: list[_Call]) -> list[Any]:
        """Load the scripts Redis did not know, then send those calls again, in order."""
        try:
            for script in {c.script for c in again if c.script is not None}:
                await self._client.script_load(script.text)
            second = iter(await self._execute(again))
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            return [e if isinstance(r, NoScriptError) else r for r in replies]
        log.info("redis had no script cached; loaded it and sent %d call(s) again", len(again))
        return [next(second) if isinstance(r, NoScriptError) else r for r in replies]

    @staticmethod
    def _fail(calls: Sequence[_Call], error: BaseException) -> None:
        for c in calls:
            if not c.future.done():
                c.future.set_exception(error)
