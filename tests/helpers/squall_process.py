"""Start Squall for tests: in-process (fast) or as a real subprocess.

The subprocess form runs ``run.py serve`` exactly as a user would, on a free
127.0.0.1 port, and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from handlers.front_door import FrontDoor
from server.app import Squall, build
from server.lifecycle import front_door
from server.settings import Settings, load
from tests.helpers.procs import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[2]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def to_toml(config: Mapping[str, Any]) -> str:
    """Enough TOML for Squall configs: scalars, [channel], [[namespaces]]."""
    lines: list[str] = []
    for k, v in config.items():
        if k not in ("channel", "namespaces"):
            lines.append(f"{k} = {_toml_value(v)}")
    lines.append("[channel]")
    for k, v in dict(config.get("channel", {})).items():
        lines.append(f"{k} = {_toml_value(v)}")
    for ns in config.get("namespaces", ()):
        lines.append("[[namespaces]]")
        for k, v in ns.items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


OPEN_NAMESPACE: dict[str, Any] = {
    "presence": True,
    "join_leave": True,
    "history_size": 100,
    "history_ttl": 300,
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_client": True,
    "allow_publish_for_anonymous": True,
    "allow_presence_for_client": True,
    "allow_presence_for_anonymous": True,
    "allow_history_for_client": True,
    "allow_history_for_anonymous": True,
}


def test_config(**overrides: Any) -> dict[str, Any]:
    """A permissive config: anonymous clients, namespaces chat (history) and live (none)."""
    cfg: dict[str, Any] = {
        "allow_anonymous_connect_without_token": True,
        "ping_interval": 25,
        # tests drive bursts from single connections; limit tests set their own
        "client_connection_rate_limit": 0,
        "client_command_rate_limit": 0,
        "namespaces": [
            {"name": "chat", **OPEN_NAMESPACE},
            {"name": "live", **{k: v for k, v in OPEN_NAMESPACE.items() if k not in ("history_size", "history_ttl", "force_recovery")}},
        ],
    }
    cfg.update(overrides)
    return cfg


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@dataclass
class SquallProcess:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        return stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def start_squall(
    workdir: Path,
    config: Mapping[str, Any] | str | None = None,
    *,
    port: int | None = None,
    args: list[str] | tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> SquallProcess:
    """Run ``python run.py serve`` with ``config`` (dict, TOML text, or None = demo).

    Without a fixed ``port`` a free one is picked; should another socket take
    it before Squall binds, Squall is started again on a new one (twice at most).
    """
    for _ in range(2 if port is None else 0):
        try:
            return _start_squall(workdir, config, port=port, args=args, env=env, wait=wait)
        except PortTaken:
            continue
    return _start_squall(workdir, config, port=port, args=args, env=env, wait=wait)


class PortTaken(RuntimeError):
    """The picked port was bound by someone else first."""


def _start_squall(
    workdir: Path,
    config: Mapping[str, Any] | str | None,
    *,
    port: int | None,
    args: list[str] | tuple[str, ...],
    env: Mapping[str, str] | None,
    wait: bool,
) -> SquallProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    n = len(list(workdir.glob("squall-*.log")))
    log_path = workdir / f"squall-{port}-{n}.log"
    config_path = workdir / f"squall-{port}-{n}.toml"
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)]
    if config is not None:
        config_path.write_text(config if isinstance(config, str) else to_toml(config))
        cmd += ["--config", str(config_path)]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SQUALL_")}
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=full_env)
    sp = SquallProcess(port, proc, log_path, config_path, cmd)
    if wait:
        try:
            wait_http(sp.url + "/health", proc=proc)
        except (RuntimeError, TimeoutError) as e:
            sp.stop(signal.SIGKILL)
            logs = sp.logs()
            kind = PortTaken if "Address already in use" in logs else RuntimeError
            raise kind(f"squall did not start: {e}\n{logs}") from None
    return sp


@pytest.fixture
def squall_factory(tmp_path: Path) -> Iterator[Any]:
    """Factory starting Squall subprocesses; all are stopped (by PID) after the test."""
    started: list[SquallProcess] = []

    def factory(config: Mapping[str, Any] | str | None = None, **kw: Any) -> SquallProcess:
        sp = start_squall(tmp_path / "squall", config, **kw)
        started.append(sp)
        return sp

    yield factory
    for sp in started:
        sp.stop(signal.SIGKILL if not sp.alive() else signal.SIGTERM, timeout=10)


@pytest.fixture
def squall_process(squall_factory: Any) -> SquallProcess:
    """One Squall subprocess with the permissive test config."""
    sp: SquallProcess = squall_factory(test_config())
    return sp


# ---------------------------------------------------------------- in-process
@pytest.fixture
def squall_config() -> dict[str, Any]:
    """Override in a test module to change the in-process server's config."""
    return test_config()


@pytest.fixture
def squall_settings(squall_config: dict[str, Any], tmp_path: Path) -> Settings:
    path = tmp_path / "squall.toml"
    path.write_text(to_toml(squall_config))
    return load(str(path), environ={})


@pytest.fixture
def squall_app(io_loop: Any, squall_settings: Settings) -> Iterator[Squall]:
    """An in-process Squall on pytest-tornado's loop (use with http_server)."""
    sq = build(squall_settings)
    io_loop.run_sync(sq.start)
    yield sq
    io_loop.run_sync(sq.close)


@pytest.fixture
def app(squall_app: Squall) -> Any:
    return squall_app.app


def serve_door(io_loop: Any, port: Any, squall_app: Squall, lean_api: bool = True) -> Iterator[FrontDoor]:
    """Serve ``squall_app`` on pytest-tornado's port as run.py serves it: through the front door."""

    async def make() -> FrontDoor:
        door = front_door(squall_app, lean_api=lean_api)
        door.add_sockets([port[0]])
        return door

    door: FrontDoor = io_loop.run_sync(make)
    yield door
    door.stop()
    io_loop.run_sync(door.close_all_connections, timeout=10)


@pytest.fixture
def http_server(io_loop: Any, _unused_port: Any, squall_app: Squall) -> Iterator[FrontDoor]:
    """pytest-tornado's fixture, but served as run.py serves: through the front door."""
    yield from serve_door(io_loop, _unused_port, squall_app)


@pytest.fixture
def ws_url(http_server: Any, http_port: int) -> str:
    return f"ws://127.0.0.1:{http_port}/connection/websocket"
