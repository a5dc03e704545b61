"""Auto-pipelining: Redis calls made at the same time leave in one pipeline.

Each publish to a channel with history is one Lua script call. Sent one by
one, every call pays a round trip and a socket write of its own, and Redis
reads one small frame per wake-up. Here concurrent calls queue, and a writer
per Redis server sends whatever has queued as one write on one held
connection, without waiting for the replies of the batches before it (up to
MAX_IN_FLIGHT); a reader hands each batch's replies to its callers, in order.
Nothing waits on a timer: a lone call leaves at once.

Why not one batch at a time (as before): the next batch then waited for the
previous replies, a loop turn or more on a busy server, so publications
came back over pub/sub in half-sized bunches and a fan-out to thousands of
sockets cost one write per socket per bunch (bench/processes.py: 1.6x the
memory engine's CPU per delivery, now about as much as it).

Order and acknowledgement:

* calls enter Redis in the order they were queued (one connection, FIFO,
  batches written in order), so a publisher that awaits each publish keeps
  its order, and the offsets a channel assigns follow the queue;
* a caller hears its own reply (or error) only after Redis answered it;
  nothing is acknowledged on the strength of a neighbour's reply;
* a connection error fails every call in flight on that connection
  (whether Redis ran them is unknown, as for a single call); none is sent
  again, since a script run twice would publish twice.

``NOSCRIPT`` (Redis restarted or flushed its script cache) is answered per
call: the writer holds, the batches already written are read, the scripts
are loaded, and every call that met it is sent again, in queue order, before
any later call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Protocol, Sequence

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

log = logging.getLogger("squall.redis.batch")

MAX_BATCH = 512  # calls per pipeline: bounds one reply's parse time and the write
MAX_IN_FLIGHT = 8  # batches written whose replies are still due; then the writer waits


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script's text and SHA1 (as Redis names it)."""

    text: str
    sha: str


@dataclass(slots=True)
class _Call:
    command: tuple[Any, ...] | bytes  # as redis-py's execute_command takes it, or already packed (RESP)
    script: Script | None  # for EVALSHA: what to load on NOSCRIPT
    future: asyncio.Future[Any]


def _packed(call: _Call) -> bytes:
    command = call.command
    return command if isinstance(command, bytes) else hiredis.pack_command(command)


class Commands(Protocol):
    """The calls the broker makes on the publish path, batched or not."""

    def script(self, text: str) -> Script: ...

    def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Awaitable[Any]: ...

    def publish(self, topic: bytes, data: bytes) -> Awaitable[int]: ...

    async def close(self) -> None: ...


def _connection_error(e: Exception) -> Exception:
    """What the callers of a lost connection hear: redis-py's error as it is,
    anything else (a bug, a closed transport) as a connection error."""
    if isinstance(e, (RedisError, OSError, asyncio.TimeoutError)):
        return e
    return RedisConnectionError(f"redis connection lost: {e!r}")


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

    def __init__(self, client: Any, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._client = client
        self._max_batch = max(1, max_batch)
        self._max_in_flight = max(1, max_in_flight)
        self._queue: list[_Call] = []
        # batches written on self._conn whose replies are still due, oldest first
        self._in_flight: deque[list[_Call]] = deque()
        self._conn: Any = None  # None, or the connection held from the pool while calls are queued or in flight
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None  # the writer waits here at max_in_flight
        self._hold = False  # set while NOSCRIPT is being repaired: the writer waits
        self._closed = False
        # cumulative, for metrics and the bench: batches sent, calls in them,
        # and the most batches that were in flight at once
        self.batches = 0
        self.calls = 0
        self.peak_in_flight = 0

    def script(self, text: str) -> Script:
        return Script(text, _sha(text))

    # run_script and publish queue at once and return the reply's future, not
    # a coroutine: the call is queued in the caller's order even before it is
    # awaited, and the publish path has two coroutine frames less to resume.
    def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue ``script``; the future gives its reply or raises its error (a RedisError)."""
        return self._queued(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def run_packed(self, script: Script, command: bytes) -> asyncio.Future[Any]:
        """Queue an EVALSHA of ``script`` already packed as RESP (channels.resp_template), as run_script."""
        return self._queued(command, script)

    def publish(self, topic: bytes, data: bytes) -> asyncio.Future[Any]:
        """Queue a PUBLISH; the future gives how many subscribers Redis reached."""
        return self._queued(("PUBLISH", topic, data), None)

    def _queued(self, command: tuple[Any, ...] | bytes, script: Script | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            fut.set_exception(RedisError("redis command pipeline closed"))
            return fut
        self._queue.append(_Call(command, script, fut))
        if self._writer is None:
            self._writer = loop.create_task(self._write())
        return fut

    async def close(self) -> None:
        """Stop; calls queued or in flight fail (whether Redis ran those in flight is unknown)."""
        self._closed = True
        for task in (self._writer, self._reader):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._writer = self._reader = None
        error = RedisError("redis command pipeline closed")
        self._fail(self._queue, error)
        self._queue = []
        dropping = self._lost(self._conn, error) if self._conn is not None else None
        if dropping is not None:
            await dropping

    # ------------------------------------------------------------ writing
    async def _write(self) -> None:
        """Write what has queued, batch after batch, without waiting for replies."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self._hold or len(self._in_flight) >= self._max_in_flight:
                    self._room = loop.create_future()
                    await self._room
                    continue
                conn = self._conn
                if conn is None:
                    try:
                        conn = await self._client.connection_pool.get_connection()
                    except (RedisError, OSError, asyncio.TimeoutError) as e:
                        # as a single call would fail; the next batch tries again
                        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                        self._fail(batch, e)
                        continue
                    self._conn = conn
                # No await from taking the batch to putting it in flight: a
                # cancelled writer (close) leaves every call queued or in flight.
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                data = self._pack(batch)
                if not batch:
                    continue
                self.batches += 1
                self.calls += len(batch)
                self._in_flight.append(batch)  # before the write: a failed write fails it with the rest
                if len(self._in_flight) > self.peak_in_flight:
                    self.peak_in_flight = len(self._in_flight)
                if self._reader is None:
                    self._reader = loop.create_task(self._read(conn))
                try:
                    await conn.send_packed_command(data, check_health=False)
                except Exception as e:  # redis-py's errors, or any once the reader dropped conn mid-write
                    self._lost(conn, _connection_error(e))
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
            await self._release_if_idle()

    @staticmethod
    def _pack(batch: list[_Call]) -> bytes:
        """The batch's commands as one write (hiredis, C); a call that cannot be packed fails alone."""
        try:
            return b"".join([_packed(c) for c in batch])
        except Exception:  # a bad argument (hiredis raises TypeError or its own errors)
            packed: list[bytes] = []
            good: list[_Call] = []
            for c in batch:
                try:
                    packed.append(_packed(c))
                    good.append(c)
                except Exception as e:
                    if not c.future.done():
                        c.future.set_exception(e)
            batch[:] = good
            return b"".join(packed)

    # ------------------------------------------------------------ reading
    async def _read(self, conn: Any) -> None:
        """Hand each batch's replies to its callers, in order, as they arrive.

        Anything but an error reply leaves the connection's state unknown: it
        is dropped and what is in flight fails (``_lost``)."""
        in_flight = self._in_flight
        try:
            while in_flight:
                if conn is not self._conn:
                    return
                batch = in_flight[0]
                try:
                    replies = await self._replies(conn, batch)
                except Exception as e:  # never leave callers (or a waiting writer) hanging
                    self._lost(conn, _connection_error(e))
                    return
                if conn is not self._conn or not in_flight or in_flight[0] is not batch:
                    return  # dropped meanwhile: the batch has failed already
                if any(isinstance(r, NoScriptError) for r in replies):
                    await self._unloaded(conn, replies)
                    continue
                in_flight.popleft()
                self._wake_writer()
                self._deliver(batch, replies)
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None
            await self._release_if_idle()

    @staticmethod
    async def _replies(conn: Any, batch: Sequence[_Call]) -> list[Any]:
        """One reply per call, under one deadline for the batch (the pool's
        socket timeout; math.inf: none of redis-py's own per reply)."""
        replies: list[Any] = []
        async with asyncio.timeout(conn.socket_timeout):
            for _ in batch:
                try:
                    replies.append(await conn.read_response(timeout=math.inf))
                except ResponseError as e:
                    replies.append(e)
        return replies

    async def _unloaded(self, conn: Any, first: list[Any]) -> None:
        """The oldest batch in flight met NOSCRIPT (first: its replies).

        The writer holds; the batches already written are read (Redis ran them
        before any load of ours, so theirs failed alike); the scripts are
        loaded; every call that met NOSCRIPT is sent again, in queue order;
        then all of them are answered in order and the writer goes on. So a
        restarted Redis does not let a later call overtake an earlier one."""
        in_flight = self._in_flight
        self._hold = True
        try:
            batches = list(in_flight)  # the writer holds: no batch joins meanwhile
            replies = list(first)
            try:
                for later in batches[1:]:
                    replies += await self._replies(conn, later)
            except Exception as e:
                self._lost(conn, _connection_error(e))
                return
            calls = [c for batch in batches for c in batch]
            try:
                replies = await self._retry_unloaded(calls, replies)
            except asyncio.CancelledError:
                self._fail(calls, RedisError("redis command pipeline closed"))
                raise
            if conn is not self._conn:
                return  # lost meanwhile: failed already
            for _ in batches:
                in_flight.popleft()
            self._deliver(calls, replies)
        finally:
            self._hold = False
            self._wake_writer()

    @staticmethod
    def _deliver(calls: Sequence[_Call], replies: Sequence[Any]) -> None:
        for c, r in zip(calls, replies):
            if c.future.done():
                continue  # the caller gave up waiting
            if isinstance(r, Exception):
                c.future.set_exception(r)
            else:
                c.future.set_result(r)

    def _wake_writer(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def _lost(self, conn: Any, error: BaseException) -> asyncio.Task[None] | None:
        """``conn`` failed: what is in flight on it fails, and the next batch
        takes another connection. Only the first to notice acts (the writer and
        the reader may both see it); the connection is dropped by the Task returned."""
        if conn is not self._conn:
            return None
        self._conn = None
        self._reader = None  # a reader still on conn ends by itself
        batches = list(self._in_flight)
        self._in_flight.clear()
        for batch in batches:
            self._fail(batch, error)
        self._wake_writer()
        return asyncio.get_running_loop().create_task(self._discard(conn))

    async def _discard(self, conn: Any) -> None:
        try:
            await conn.disconnect()
        finally:
            await self._client.connection_pool.release(conn)

    async def _release_if_idle(self) -> None:
        """Give the connection back to the pool once nothing is queued or in flight."""
        conn = self._conn
        if conn is None or self._queue or self._in_flight or self._writer is not None or self._reader is not None:
            return
        self._conn = None
        await self._client.connection_pool.release(conn)

    async def _execute(self, batch: Sequence[_Call]) -> list[Any]:
        """Send ``batch`` on a pooled connection of its own and read its replies (NOSCRIPT retries)."""
        pool = self._client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(b"".join([_packed(c) for c in batch]))
            return await self._replies(conn, batch)
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _retry_unloaded(self, batch: list[_Call], replies: list[Any]) -> list[Any]:
        """Load the scripts Redis did not know, then send those calls again, in
        order (on a pooled connection of its own: nothing of this pipeline is
        in flight meanwhile)."""
        again = [c for c, r in zip(batch, replies) if isinstance(r, NoScriptError)]
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
