"""The command line: subcommands, help, bad config exit codes (gentoken: tests/server/test_gentoken.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )


@pytest.mark.parametrize("cmd", ["serve", "gentoken", "checkconfig", "genconfig"])
def test_each_subcommand_has_help(cmd: str) -> None:
    """Every subcommand answers --help."""
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_bad_config_exits_2_naming_key(tmp_path: Path) -> None:
    """A bad value makes checkconfig exit 2 with the key in the message."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text("ping_interval = 'soon'\n")
    r = run("checkconfig", "--config", str(cfg), "--offline")
    assert r.returncode == 2
    assert "ping_interval" in r.stderr


def test_serve_with_bad_flag_value_exits_2() -> None:
    """serve refuses a bad engine before listening."""
    r = run("--engine", "carrier-pigeon")
    assert r.returncode == 2 and "engine" in r.stderr


def test_checkconfig_ok_for_demo() -> None:
    """The embedded demo config passes checkconfig, connectivity included."""
    r = run("checkconfig")
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout


def test_checkconfig_reports_unreachable_backends() -> None:
    """checkconfig connects: an unreachable MongoDB or Redis fails with status 1, named."""
    r = run("checkconfig", "--history", "mongo", "--mongo-url", "mongodb://127.0.0.1:1")
    assert r.returncode == 1
    assert "history" in r.stderr and "engine" not in r.stderr
    r = run("checkconfig", "--engine", "redis", "--redis-url", "redis://127.0.0.1:1/0")
    assert r.returncode == 1 and "engine" in r.stderr
