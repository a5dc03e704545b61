"""One dedicated pub/sub connection to one Redis server, kept alive.

The link owns a raw redis-py ``Connection`` (hiredis-parsed) rather than
redis-py's ``PubSub`` helper, because the broker must know exactly when a
subscription is active (``subscribe`` returns after Redis confirmed it) and
when the connection was replaced (messages may have been lost: resync).

* Subscribe/unsubscribe calls made in one loop turn go out as one batch.
* Confirmations are matched to requests in order, per topic.
* Every ``ping_interval`` the link publishes a token to its own node topic
  through a command connection; no echo within ``ping_timeout`` means the
  connection is deaf (killed, or subscribed to nothing after a failover) and
  it is replaced.
* Reconnects back off exponentially with jitter, capped.
* ``on_trouble`` hears every failed connect, lost session and topic the
  server dropped unasked (a Redis Cluster slot moved): the broker then checks
  whether the cluster's layout changed and moves its topics to new links.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections import deque
from typing import Awaitable, Callable, Iterable

from redis.asyncio.connection import AbstractConnection as Connection
from redis.backoff import AbstractBackoff
from redis.exceptions import RedisError

from channels.errors import BackendUnavailable
from channels.redis_shards import ConnectionFactory

log = logging.getLogger("squall.redis.pubsub")

MessageHandler = Callable[[bytes, bytes], None]
PingPublisher = Callable[[bytes, bytes], Awaitable[int]]

_BATCH = 500  # topics per SUBSCRIBE command


def hash_tag(key: bytes) -> bytes:
    """What Redis Cluster hashes of ``key``: the part inside its first ``{...}``
    when non-empty, else the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


class _Deaf(Exception):
    """No echo of our ping: the connection no longer delivers messages."""


class PubSubLink:
    """Topics this node wants from one server, and the connection serving them."""

    def __init__(
        self,
        name: str,
        factory: ConnectionFactory,
        *,
        ping_topic: bytes,
        pinned: Iterable[bytes],
        on_message: MessageHandler,
        on_resync: Callable[[], None],
        publish_ping: PingPublisher,
        backoff: AbstractBackoff,
        sharded: bool = False,
        ping_interval: float = 2.0,
        ping_timeout: float = 3.0,
        confirm_timeout: float = 3.0,
        on_trouble: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_trouble = on_trouble
        self._factory = factory
        self._ping_topic = ping_topic
        self._pinned = [*pinned, ping_topic]  # always subscribed; ping topic last
        self._on_message = on_message
        self._on_resync = on_resync
        self._publish_ping = publish_ping
        self._backoff = backoff
        self._sharded = sharded
        self._sub_cmd, self._unsub_cmd = ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._confirm_timeout = confirm_timeout

        self._wanted: set[bytes] = set()  # topics with local interest
        self._dirty: set[bytes] = set()  # touched since the last flush
        self._sent: set[bytes] = set()  # SUBSCRIBE sent on this connection
        # Confirmations still expected per topic, in request order: a future
        # for a SUBSCRIBE, None for an UNSUBSCRIBE.
        self._acks: dict[bytes, deque[asyncio.Future[None] | None]] = {}
        self._waiters: dict[bytes, asyncio.Future[None]] = {}  # for the next flush
        self._flush_scheduled = False
        self._send_lock = asyncio.Lock()
        self._conn: Connection | None = None
        self._connected = False
        self._up = asyncio.Event()
        self._echo: tuple[bytes, asyncio.Future[None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Future[None] | None = None  # set: drop this session
        self._had_session = False
        self._closing = False
        self.reconnects = 0

    # ---------------------------------------------------------------- state
    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self, wait: float) -> None:
        """Start the link; wait up to ``wait`` seconds for the first connection."""
        self._task = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait_for(self._up.wait(), wait)
        except asyncio.TimeoutError:
            log.warning("pub/sub %s: not connected yet, retrying in the background", self.name)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def kill(self) -> None:
        """Drop the current connection; the link reconnects and resyncs."""
        stop = self._stop
        if stop is not None and not stop.done():
            stop.set_result(None)

    # ---------------------------------------------------------------- interest
    def want(self, topics: Iterable[bytes]) -> None:
        """Interest taken over from another link: subscribed with the next
        session (or the next flush), nobody waits for the confirmation."""
        for topic in topics:
            self._wanted.add(topic)
            self._dirty.add(topic)
        self._schedule_flush()

    async def subscribe(self, topic: bytes) -> None:
        """Return once Redis confirmed the subscription (BackendUnavailable otherwise)."""
        if not self._connected:
            raise BackendUnavailable("redis pub/sub not connected")
        self._wanted.add(topic)
        self._dirty.add(topic)
        fut = self._confirmation(topic)
        self._schedule_flush()
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._confirm_timeout)
        except (asyncio.TimeoutError, BackendUnavailable):
            self._wanted.discard(topic)
            self._dirty.add(topic)
            self._schedule_flush()
            raise BackendUnavailable("redis subscribe not confirmed") from None

    def unsubscribe(self, topic: bytes) -> None:
        self._wanted.discard(topic)
        self._dirty.add(topic)
        self._schedule_flush()

    def _confirmation(self, topic: bytes) -> asyncio.Future[None]:
        if topic in self._sent:
            pending = self._acks.get(topic)
            last = pending[-1] if pending else None
            if last is not None:
                return last
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        fut = self._waiters.get(topic)
        if fut is None:
            fut = self._waiters[topic] = asyncio.get_running_loop().create_future()
        return fut

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Turn this loop turn's interest changes into one batch of commands."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        if self._conn is None:
            return  # the next session subscribes everything wanted
        subs = [t for t in dirty if t in self._wanted and t not in self._sent]
        unsubs = [t for t in dirty if t not in self._wanted and t in self._sent]
        self._send_batch(subs, unsubs)

    def _send_batch(self, subs: list[bytes], unsubs: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        for t in subs:
            fut = self._waiters.pop(t, None) or loop.create_future()
            self._acks.setdefault(t, deque()).append(fut)
            self._sent.add(t)
        for t in unsubs:
            self._acks.setdefault(t, deque()).append(None)
            self._sent.discard(t)
        # Waiters whose topic needed no command (subscribed and unsubscribed
        # in the same turn): nothing to wait for.
        for t in [t for t in self._waiters if t not in self._wanted]:
            self._waiters.pop(t).set_result(None)
        commands = self._commands(self._sub_cmd, subs) + self._commands(self._unsub_cmd, unsubs)
        if commands and self._conn is not None:
            asyncio.ensure_future(self._send(self._conn, commands))

    def _commands(self, name: str, topics: list[bytes]) -> list[tuple[bytes | str, ...]]:
        """``name`` over ``topics`` in commands of at most _BATCH topics. Sharded,
        one command may only name topics of one hash slot (else CROSSSLOT), so
        topics are grouped by their hash tag first."""
        groups = [topics]
        if self._sharded:
            by_tag: dict[bytes, list[bytes]] = {}
            for t in topics:
                by_tag.setdefault(hash_tag(t), []).append(t)
            groups = list(by_tag.values())
        return [(name, *g[i : i + _BATCH]) for g in groups for i in range(0, len(g), _BATCH)]

    async def _send(self, conn: Connection, commands: list[tuple[bytes | str, ...]]) -> None:
        async with self._send_lock:
            if conn is not self._conn:
                return
            try:
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            except (RedisError, OSError) as e:
                log.warning("pub/sub %s: send failed: %s", self.name, e)
                self.kill()

    # ---------------------------------------------------------------- session
    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            conn = self._factory()
            try:
                await conn.connect()
            except (RedisError, OSError, asyncio.TimeoutError) as e:
                failures += 1
                delay = self._backoff.compute(failures)
                log.warning("pub/sub %s: connect failed (%s); retry in %.2fs", self.name, e, delay)
                self._trouble()
                await asyncio.sleep(delay)
                continue
            try:
                await self._session(conn)
            except (RedisError, OSError, asyncio.TimeoutError, _Deaf, BackendUnavailable) as e:
                log.warning("pub/sub %s: connection lost: %s", self.name, e or type(e).__name__)
            finally:
                was_up = self._connected
                self._end_session()
                await conn.disconnect(nowait=True)
            if self._closing:
                break
            self._trouble()
            failures = 1 if was_up else failures + 1
            self.reconnects += 1
            await asyncio.sleep(self._backoff.compute(failures))

    async def _session(self, conn: Connection) -> None:
        """Subscribe everything wanted, then read and ping until something fails."""
        loop = asyncio.get_running_loop()
        self._conn = conn
        stop = self._stop = loop.create_future()
        reader = asyncio.ensure_future(self._read(conn))
        try:
            topics = [t for t in self._wanted if t not in self._pinned] + self._pinned
            self._send_batch(topics, [])
            ready = self._acks[self._ping_topic][-1]
            assert ready is not None
            done, _ = await asyncio.wait({reader, stop, ready}, timeout=self._confirm_timeout, return_when=asyncio.FIRST_COMPLETED)
            self._check(reader, stop)
            if ready not in done:
                raise asyncio.TimeoutError("subscriptions not confirmed")
            resync = self._had_session
            self._connected = self._had_session = True
            self._up.set()
            log.info("pub/sub %s: subscribed to %d topics", self.name, len(self._sent))
            if resync:
                self._on_resync()
            while True:
                await asyncio.wait({reader, stop}, timeout=self._ping_interval, return_when=asyncio.FIRST_COMPLETED)
                self._check(reader, stop)
                await self._ping(reader, stop)
        finally:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, RedisError, OSError):
                pass

    def _trouble(self) -> None:
        if self._on_trouble is not None and not self._closing:
            self._on_trouble()

    @staticmethod
    def _check(reader: asyncio.Future[None], stop: asyncio.Future[None]) -> None:
        if reader.done():
            reader.result()
            raise BackendUnavailable("pub/sub reader ended")
        if stop.done():
            raise BackendUnavailable("pub/sub connection dropped on request")

    def _end_session(self) -> None:
        self._connected = False
        self._stop = None
        self._conn = None
        self._sent.clear()
        self._echo = None
        for pending in self._acks.values():
            for fut in pending:
                if fut is not None and not fut.done():
                    fut.set_exception(BackendUnavailable("redis pub/sub connection lost"))
                    fut.exception()
        self._acks.clear()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(BackendUnavailable("redis pub/sub connection lost"))
                fut.exception()
        self._waiters.clear()
        self._dirty.clear()

    async def _ping(self, reader: asyncio.Future[None], stop: asyncio.Future[None]) -> None:
        token = secrets.token_bytes(8)
        echo: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._echo = (token, echo)
        try:
            receivers = await self._publish_ping(self._ping_topic, token)
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            # The command side failing says nothing about this connection;
            # the reader notices when the server is really gone.
            log.debug("pub/sub %s: ping publish failed: %s", self.name, e)
            return
        if receivers == 0:
            raise _Deaf("server has no subscriber on our node topic")
        done, _ = await asyncio.wait({reader, stop, echo}, timeout=self._ping_timeout, return_when=asyncio.FIRST_COMPLETED)
        self._check(reader, stop)
        if echo not in done:
            raise _Deaf(f"no ping echo within {self._ping_timeout}s")

    async def _read(self, conn: Connection) -> None:
        while True:
            resp = await conn.read_response(timeout=math.inf)
            if not isinstance(resp, list) or len(resp) < 3:
                continue
            kind = resp[0]
            if kind in (b"message", b"smessage"):
                topic, data = resp[1], resp[2]
                if topic == self._ping_topic:
                    echo = self._echo
                    if echo is not None and data == echo[0] and not echo[1].done():
                        echo[1].set_result(None)
                    continue
                try:
                    self._on_message(topic, data)
                except Exception:
                    log.exception("pub/sub %s: message handler failed", self.name)
            elif kind in (b"subscribe", b"ssubscribe", b"unsubscribe", b"sunsubscribe"):
                pending = self._acks.get(resp[1])
                if pending:
                    fut = pending.popleft()
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                    if not pending:
                        del self._acks[resp[1]]
                elif kind == b"sunsubscribe" and resp[1] in self._wanted:
                    # Unasked: the topic's slot moved to another server.
                    log.warning("pub/sub %s: server dropped %r (slot moved)", self.name, resp[1])
                    self._trouble()
                    self.kill()
