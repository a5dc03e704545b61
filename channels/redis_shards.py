"""Where a channel lives in Redis: its bucket, its key names, its clients.

Every channel maps to a *bucket* by a stable hash of its name (CRC-32, the
same in every process, unlike Python's ``hash()``). Every key and topic of a
channel carries its bucket as a Redis hash tag ``{N}``, so in Redis Cluster a
channel's keys and its bucket's persist log share a hash slot and one Lua
script may touch them all.

* Standalone (one or more URLs): one bucket per URL, bucket ``i`` lives on
  ``urls[i]``. Adding a URL moves channels; do it with every node stopped.
* Cluster (``cluster=True``): :data:`CLUSTER_BUCKETS` buckets, placed by the
  cluster's own slot map; pub/sub is sharded (SSUBSCRIBE/SPUBLISH).
* Sentinel (a ``redis+sentinel://`` URL, Centrifugo's spelling): the bucket's
  server is whichever master the sentinels name; every new connection, the
  pub/sub one included, asks them first, so after a failover reconnects land
  on the new master.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from channels.redis_batch import CommandPipeline, Commands, DirectCommands

CLUSTER_BUCKETS = 64
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379

# The pub/sub link to one endpoint opens its connection through this.
ConnectionFactory = Callable[[], AbstractConnection]


def bucket_of(channel: str, n_buckets: int) -> int:
    """Stable across processes and restarts (never Python's salted hash())."""
    return zlib.crc32(channel.encode("utf-8")) % n_buckets


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """A ``redis+sentinel://`` URL, read as Centrifugo reads it."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """For logs: no credentials."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"sentinel {self.master_name}@{hosts}/{self.db}"


def _no_maint_notifications() -> dict[str, Any]:
    """Pool kwargs that keep redis-py's stale-connection check on.

    Recent redis-py (8.1 here) skips the check a pooled connection gets before reuse (is
    the socket at EOF?) while maintenance notifications are enabled, and
    their default "auto" counts as enabled. After a Redis restart the first
    call on every pooled connection then fails, and since a call here is
    never retried (a script could run twice), that is an error for a client.
    Squall talks to self-run Redis, not to a managed service that sends them.
    """
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # an older redis-py: no such notifications, the check always runs
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{url!r}: {text!r} is not a sentinel HOST:PORT")
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelAddress:
    """``redis+sentinel://[user:password@]host:port[/db]?sentinel_master_name=NAME[&addr=host:port...]``
    (Centrifugo's form: more sentinels as repeated ``addr=``, never a comma list, which
    flags and SQUALL_REDIS_URLS would split); ``sentinel_user``/``sentinel_password``
    authenticate to the sentinels, the user/password before ``@`` to the master.
    Raises ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"{url!r}: not a {SENTINEL_SCHEME}:// URL")
    query = parse_qs(parts.query)
    known = {"sentinel_master_name", "addr", "sentinel_user", "sentinel_password"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ValueError(f"{url!r}: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    master = query.get("sentinel_master_name", [""])[-1]
    if not master:
        raise ValueError(f"{url!r}: sentinel_master_name is missing (?sentinel_master_name=mymaster)")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if "," in hostlist or any("," in v for v in query.get("addr", [])):
        raise ValueError(f"{url!r}: list more sentinels as &addr=HOST:PORT, one each, not separated by commas")
    hosts = [h for h in [hostlist, *query.get("addr", [])] if h]
    if not hosts:
        raise ValueError(f"{url!r}: no sentinel address")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{url!r}: the database {path!r} is not a number")
    user, colon, password = userinfo.partition(":")
    return SentinelAddress(
        sentinels=tuple(_host_port(h, url) for h in hosts),
        master_name=master,
        db=int(path or 0),
        username=unquote(user) or None,
        password=unquote(password) if colon else None,
        sentinel_username=query.get("sentinel_user", [None])[-1],
        sentinel_password=query.get("sentinel_password", [None])[-1],
    )


class _SentinelBlockingPool(SentinelConnectionPool, BlockingConnectionPool):
    """The sentinel's master pool, waiting for a free connection like the standalone one."""


def client_for_url(url: str, **kwargs: Any) -> Redis:
    """A plain command client for any URL Squall accepts (``redis+sentinel://`` included), for
    helpers outside the broker (the events outbox); the caller closes it."""
    if not is_sentinel_url(url):
        client: Redis = Redis.from_url(url, **kwargs)
        return client
    addr = parse_sentinel_url(url)
    sentinel = Sentinel(list(addr.sentinels), sentinel_kwargs={
        "username": addr.sentinel_username, "password": addr.sentinel_password,
        **{k: v for k, v in kwargs.items() if k.startswith("socket_")},
    })
    master: Redis = sentinel.master_for(
        addr.master_name, db=addr.db, username=addr.username, password=addr.password, **kwargs
    )
    return master


KEYS_CACHE = 10_000  # channels whose key names RedisShards keeps


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    bucket: int
    meta: str  # hash: e = epoch, s = top offset
    window: str  # list of envelopes: the hot window
    persist: str  # stream: the bucket's persist log
    topic: bytes  # pub/sub topic
    presence_zset: str  # client id -> expiry (unix seconds)
    presence_hash: str  # client id -> packed ClientInfo


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One Redis server that holds a dedicated pub/sub connection."""

    name: str
    factory: ConnectionFactory
    buckets: tuple[int, ...]


class RedisShards:
    """Command clients (pooled, short timeouts) and the bucket layout."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix: str,
        cluster: bool,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        if not urls:
            raise ValueError("at least one Redis URL is needed")
        self.prefix = prefix
        self._urls = list(urls)
        self._connect_timeout = connect_timeout
        self.control_topic = f"{self.tag(0)}:control".encode()
        # No retries: a retried script could publish twice. Stale pooled
        # connections are still replaced, since the pool checks them first.
        common: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        pool_extra = _no_maint_notifications()
        self._clients: list[Any] = []
        self._keys: dict[str, ChannelKeys] = {}  # channel -> its key names, made once (see keys)
        self._names = [u if not is_sentinel_url(u) else parse_sentinel_url(u).name for u in self._urls]
        self._sentinels: list[Sentinel] = []
        self._cluster: RedisCluster | None = None
        if cluster and any(is_sentinel_url(u) for u in self._urls):
            raise ValueError("redis_cluster and redis+sentinel:// URLs do not mix")
        if cluster:
            self._cluster = RedisCluster.from_url(
                self._urls[0], max_connections=max_connections, **common
            )
            self.n_buckets = CLUSTER_BUCKETS
        else:
            for url in self._urls:
                if is_sentinel_url(url):
                    self._clients.append(
                        self._master_client(parse_sentinel_url(url), max_connections, {**common, **pool_extra})
                    )
                    continue
                pool = BlockingConnectionPool.from_url(
                    url, max_connections=max_connections, timeout=connect_timeout, **common, **pool_extra
                )
                self._clients.append(Redis(connection_pool=pool))
            self.n_buckets = len(self._urls)
        # The publish path's calls: pipelined per server; one by one in a
        # cluster, whose client routes every call on its own.
        self._commands: list[Commands] = (
            [DirectCommands(self._cluster)] if self._cluster is not None else [CommandPipeline(c) for c in self._clients]
        )

    def _master_client(self, addr: SentinelAddress, max_connections: int, common: dict[str, Any]) -> Redis:
        """A client of the master the sentinels name; it asks them again for every new connection."""
        auth = {"username": addr.sentinel_username, "password": addr.sentinel_password}
        sentinel = Sentinel(
            list(addr.sentinels),
            sentinel_kwargs={**auth, "socket_timeout": common["socket_timeout"],
                             "socket_connect_timeout": common["socket_connect_timeout"]},
        )
        self._sentinels.append(sentinel)
        client: Redis = sentinel.master_for(
            addr.master_name,
            connection_pool_class=_SentinelBlockingPool,
            max_connections=max_connections,
            timeout=self._connect_timeout,
            db=addr.db,
            username=addr.username,
            password=addr.password,
            **common,
        )
        return client

    async def start(self) -> None:
        """Cluster only: learn the slot map (raises when the cluster is down)."""
        if self._cluster is not None:
            await self._cluster.initialize()

    async def refresh_layout(self) -> None:
        """Cluster only: read the slot map again (after a failover or a slot migration)."""
        if self._cluster is not None:
            await self._cluster.nodes_manager.initialize()

    async def close(self) -> None:
        for commands in self._commands:
            await commands.close()
        if self._cluster is not None:
            await self._cluster.aclose()
        for client in self._clients:
            await client.aclose()
        for sentinel in self._sentinels:
            await sentinel.aclose()

    # ---------------------------------------------------------------- names
    def tag(self, bucket: int) -> str:
        return f"{self.prefix}:{{{bucket}}}"

    def keys(self, channel: str) -> ChannelKeys:
        """The channel's key names; remembered for up to KEYS_CACHE channels
        (the publish path asks once per publication: a CRC and six strings)."""
        keys = self._keys.get(channel)
        if keys is None:
            if len(self._keys) >= KEYS_CACHE:
                self._keys.clear()
            keys = self._keys[channel] = self._make_keys(channel)
        return keys

    def _make_keys(self, channel: str) -> ChannelKeys:
        b = bucket_of(channel, self.n_buckets)
        t = self.tag(b)
        return ChannelKeys(
            bucket=b,
            meta=f"{t}:meta:{channel}",
            window=f"{t}:hist:{channel}",
            persist=f"{t}:persist",
            topic=f"{t}:ch:{channel}".encode(),
            presence_zset=f"{t}:pz:{channel}",
            presence_hash=f"{t}:ph:{channel}",
        )

    def persist_key(self, bucket: int) -> str:
        return f"{self.tag(bucket)}:persist"

    def node_topic(self, bucket: int, node_id: str) -> bytes:
        """A topic only this node listens to, on ``bucket``'s server (liveness pings)."""
        return f"{self.tag(bucket)}:node:{node_id}".encode()

    # ---------------------------------------------------------------- clients
    def client(self, bucket: int) -> Any:
        """The command client for ``bucket`` (Redis or RedisCluster)."""
        if self._cluster is not None:
            return self._cluster
        return self._clients[bucket]

    def commands(self, bucket: int) -> Commands:
        """The publish path's calls for ``bucket`` (channels/redis_batch.py)."""
        return self._commands[0] if self._cluster is not None else self._commands[bucket]

    async def publish(self, bucket: int, topic: bytes, data: bytes) -> int:
        """PUBLISH, or SPUBLISH in a cluster (routed by the topic's hash tag)."""
        return int(await self.commands(bucket).publish(topic, data))

    def endpoints(self) -> list[Endpoint]:
        """Servers that need a pub/sub connection, with the buckets they hold."""
        if self._cluster is None:
            return [
                Endpoint(name, self._pubsub_factory(client), (i,))
                for i, (name, client) in enumerate(zip(self._names, self._clients))
            ]
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for b in range(self.n_buckets):
            node = self._cluster.get_node_from_key(self.tag(b))
            if node is None:
                continue
            by_node.setdefault(node.name, (node, []))[1].append(b)
        return [
            Endpoint(name, self._node_factory(node), tuple(buckets))
            for name, (node, buckets) in sorted(by_node.items())
        ]

    def _pubsub_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        # Reads on a pub/sub connection wait for messages indefinitely; the
        # link's liveness ping detects a dead or deaf connection instead.
        out["socket_timeout"] = None
        out["socket_connect_timeout"] = self._connect_timeout
        out["retry"] = Retry(NoBackoff(), 0)
        out["decode_responses"] = False
        out["protocol"] = 2  # pub/sub messages as plain replies, not RESP3 pushes
        return out

    def _pubsub_factory(self, client: Redis) -> ConnectionFactory:
        """Connections like the pool's own: a sentinel pool's ask the sentinels for the master."""
        pool = client.connection_pool
        kwargs = self._pubsub_kwargs(pool.connection_kwargs)
        cls = pool.connection_class
        return lambda: cls(**kwargs)

    def _node_factory(self, node: Any) -> ConnectionFactory:
        kwargs = self._pubsub_kwargs(node.connection_kwargs)
        cls = node.connection_class
        return lambda: cls(**kwargs)
