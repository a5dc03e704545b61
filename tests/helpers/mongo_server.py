"""MongoDB-wire servers for tests: SecantusDB started here, or MONGO_URL.

Import the fixtures explicitly into a test module::

    from tests.helpers.mongo_server import mongo_db, secantus, secantus_factory  # noqa: F401

``mongo_db`` runs each test against a SecantusDB started for the session and,
when the ``MONGO_URL`` environment variable is set, once more against that
server; each test gets its own database, dropped afterwards.
``secantus_factory`` starts private servers a test may stop and restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.helpers.procs import free_port, stop_process

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def secantusd_path() -> str:
    """The launcher next to this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found is None:
        pytest.skip("secantusd-py not installed (pip install SecantusDB)")
    return found


def ping(url: str, timeout_ms: int = 500) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@dataclass
class SecantusServer:
    """One secantusd-py process; stop() and start() keep port and storage."""

    port: int
    storage: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()  # more secantusd-py flags, e.g. ("--sync-on-commit",)

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [secantusd_path(), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", str(self.storage), "--log-level", "WARNING", *self.extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd exited with {self.proc.returncode}: {self.log_tail()}")
            if ping(self.url):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"secantusd did not answer a ping within {START_TIMEOUT}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop our process by its PID (SIGTERM: clean; SIGKILL: a crash)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, sig, STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class SecantusFactory:
    """Starts servers in a tmp dir; stops every one it started at teardown."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[SecantusServer] = []

    def __call__(self, extra: tuple[str, ...] = ()) -> SecantusServer:
        n = len(self._servers)
        server = SecantusServer(
            port=free_port(), storage=self._root / f"data{n}", log_path=self._root / f"secantusd{n}.log", extra=extra
        )
        self._servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture
def secantus_factory(tmp_path: Path) -> Iterator[SecantusFactory]:
    factory = SecantusFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def secantus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """One SecantusDB for the whole session (tests use their own databases)."""
    factory = SecantusFactory(tmp_path_factory.mktemp("secantus"))
    try:
        yield factory()
    finally:
        factory.close()


@dataclass(frozen=True)
class MongoTarget:
    url: str
    database: str
    kind: str  # "secantus" or "env"


@pytest.fixture(params=["secantus", "env"])
def mongo_db(request: pytest.FixtureRequest) -> Iterator[MongoTarget]:
    """A fresh database on SecantusDB, and on MONGO_URL's server when set."""
    if request.param == "env":
        url = os.environ.get("MONGO_URL", "")
        if not url:
            pytest.skip("MONGO_URL not set")
    else:
        url = request.getfixturevalue("secantus").url
    target = MongoTarget(url=url, database=f"squall_test_{uuid.uuid4().hex[:12]}", kind=request.param)
    try:
        yield target
    finally:
        client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(target.database)
        except PyMongoError:
            pass  # the server may be gone; the tmp dir goes with it
        finally:
            client.close()
