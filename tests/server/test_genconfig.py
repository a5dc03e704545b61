"""`run.py genconfig` writes a commented starter config that checkconfig accepts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from server.settings import Settings, describe, load
from tests.helpers.squall_process import ROOT


def run_py(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}  # no SQUALL_* variables leak in
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_genconfig_output_passes_checkconfig(tmp_path: Path):
    """The generated file passes `checkconfig --offline` and the connecting `checkconfig`."""
    path = tmp_path / "squall.toml"
    r = run_py("genconfig", "--output", str(path))
    assert r.returncode == 0, r.stderr
    for extra in (["--offline"], []):
        r = run_py("checkconfig", "--config", str(path), *extra)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("configuration ok")


def test_checkconfig_warns_that_the_starter_config_admits_no_client(tmp_path: Path):
    """genconfig's file has no anonymous connect and no token key: checkconfig passes but says no client can connect."""
    path = tmp_path / "squall.toml"
    assert run_py("genconfig", "--output", str(path)).returncode == 0
    r = run_py("checkconfig", "--config", str(path), "--offline")
    assert r.returncode == 0
    assert "warning: no client can connect" in r.stderr and "token_hmac_secret_key" in r.stderr
    r = run_py("checkconfig", "--config", str(path), "--offline", "--set", "allow_anonymous_connect_without_token=true")
    assert r.returncode == 0 and "no client can connect" not in r.stderr


def test_genconfig_documents_every_setting_with_its_default(tmp_path: Path):
    """Uncommenting every `# key = value` line gives exactly the defaults."""
    r = run_py("genconfig")
    assert r.returncode == 0
    text = r.stdout
    names = {name for name, _, _ in describe()} - {"channel", "namespaces"}
    for name in names:
        assert re.search(rf"^# {name} = ", text, re.M), name
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.M)
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    loaded = load(str(path), environ={})
    defaults = Settings()
    for name in names:
        assert getattr(loaded, name) == getattr(defaults, name), name
    assert [ns["name"] for ns in loaded.namespaces] == ["chat"]


def test_deploy_sample_config_passes_offline_check():
    """deploy/squall.toml (used by docker-compose) is a valid configuration."""
    r = run_py("checkconfig", "--offline", "--config", str(ROOT / "deploy" / "squall.toml"))
    assert r.returncode == 0, r.stderr
    assert "engine=redis, history=mongo" in r.stdout
