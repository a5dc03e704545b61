"""`serve --processes N`: workers share the port, fan out via Redis, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Callable

import pytest

from tests.helpers import squall_process
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401
from tests.helpers.wsclient import connected

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.gen_test(timeout=60)
async def test_two_workers_serve_and_fan_out(redis_server: RedisServer, squall_factory: Callable[..., SquallProcess]) -> None:
    """Clients land on both workers and a publish reaches subscribers on each."""
    cfg = squall_process.test_config(engine="redis", redis_urls=[redis_server.url])
    sp = squall_factory(cfg, args=["--processes", "2"])
    workers = children_of(sp.pid)
    assert len(workers) == 2
    clients, nodes = [], set()
    for _ in range(40):  # the kernel spreads accepts over both workers
        c = await squall_process_connect(sp.ws_url)
        clients.append(c)
        nodes.add(c.node)
        if len(nodes) == 2 and len(clients) >= 4:
            break
    assert len(nodes) == 2, "every connection went to one worker"
    for c in clients:
        await c.client.call("subscribe", {"channel": "chat:workers"})
    await clients[0].client.call("publish", {"channel": "chat:workers", "data": "to all"})
    for c in clients:
        push = await c.client.next_push(timeout=10)
        assert push["push"]["pub"]["data"] == "to all"
        assert push["push"]["pub"]["offset"] == 1
    for c in clients:
        c.client.close()
    assert sp.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{w}") for w in workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not any(_alive(w) for w in workers)


def test_processes_refused_without_redis(tmp_path) -> None:
    """More than one process with the memory engine is refused with a clear message."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, str(squall_process.ROOT / "run.py"), "--processes", "2"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2
    assert "processes" in r.stderr and "redis" in r.stderr


class _Conn:
    def __init__(self, client, node: str) -> None:
        self.client = client
        self.node = node


async def squall_process_connect(url: str) -> _Conn:
    c = await connected(url)
    # the connect reply carried the node id; RawClient.call returned it
    return _Conn(c, c.last_connect["connect"]["node"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_failing_worker_reports_why(capfd: pytest.CaptureFixture[str]) -> None:
    """A worker that raises logs its traceback before exiting; the supervisor then gives up."""
    import logging
    import sys

    from server.workers import supervise

    handler = logging.StreamHandler(sys.stderr)
    logger = logging.getLogger("squall.workers")
    logger.addHandler(handler)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}  # supervise() takes them

    def child(index: int) -> int:
        raise RuntimeError(f"no backend for worker {index}")

    try:
        assert supervise(1, child, max_restarts=0) == 1
    finally:
        logger.removeHandler(handler)
        for sig, h in saved.items():
            signal.signal(sig, h)
    err = capfd.readouterr().err
    assert "worker 0 failed" in err and "RuntimeError: no backend for worker 0" in err
