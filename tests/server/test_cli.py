"""server/cli.py through run.py: one-line errors that name the fix, help text, warnings of Squall's own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tests.helpers.procs import free_port, stop_process, wait_http
from tests.helpers.wsclient import connected

ROOT = Path(__file__).resolve().parents[2]


def run_py(*args: str, env: dict[str, str] | None = None, python: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin"}  # no SQUALL_* variables leak in
    return subprocess.run(
        [*(python or [sys.executable]), str(ROOT / "run.py"), *args], cwd=ROOT, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--engine", "redis", "--redis-url", "http://127.0.0.1:6379"], ["redis_urls", "redis://"]),
        (["--history", "mongo", "--mongo-url", "mongo://127.0.0.1"], ["mongo_url", "mongodb://"]),
        (["--config", "."], ["config", "is a directory"]),
        (["--redis-url", "redis://127.0.0.1:6390/0"], ["--redis-url", "--engine redis"]),
        (["--mongo-url", "mongodb://127.0.0.1:27018"], ["--mongo-url", "--history mongo"]),
        (["--set", "pign_interval=3"], ["did you mean 'ping_interval'"]),
    ],
)
@pytest.mark.parametrize("command", ["serve", "checkconfig"])
def test_bad_settings_are_one_line_exit_2(command: str, args: list[str], words: list[str]) -> None:
    """serve and checkconfig refuse bad URLs, a directory as --config, an ignored URL, a typo: one line, status 2."""
    r = run_py(command, *args)
    assert r.returncode == 2
    line = one_line(r)
    for w in words:
        assert w in line


def test_env_number_error_names_key() -> None:
    """SQUALL_PORT=abc: the message names port and the value, not int()'s wording."""
    r = run_py("checkconfig", "--offline", env={"SQUALL_PORT": "abc"})
    assert r.returncode == 2 and "port: expected a whole number, got 'abc'" in one_line(r)


def test_misspelt_env_variable_warns_and_goes_on() -> None:
    """A SQUALL_* variable that is no setting is a warning with a suggestion; the command still runs."""
    r = run_py("checkconfig", "--offline", env={"SQUALL_PROT": "9000"})
    assert r.returncode == 0 and "configuration ok" in r.stdout
    assert "warning: SQUALL_PROT" in one_line(r) and "SQUALL_PORT" in r.stderr


def test_gentoken_help_lists_only_its_own_flags() -> None:
    """gentoken --help has its token flags, --config and --set, and none of the server's."""
    r = run_py("gentoken", "--help")
    assert r.returncode == 0
    for own in ("--user", "--secret", "--config", "--set"):
        assert own in r.stdout
    for server_flag in ("--port", "--engine", "--redis-url", "--log-level", "--processes"):
        assert server_flag not in r.stdout


def test_serve_help_shows_defaults() -> None:
    """serve --help gives each common flag's default."""
    r = run_py("serve", "--help")
    text = " ".join(r.stdout.split())
    for expected in ("(default: 8000)", "(default: 127.0.0.1)", "(default: memory)", "(default: redis://127.0.0.1:6379/0)"):
        assert expected in text


def test_dockerfile_default_command_names_the_api_key_fix() -> None:
    """The image's CMD (serve on 0.0.0.0 with the demo config) exits 2 saying --api-key / SQUALL_API_KEY; with the key it passes."""
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    args = json.loads(cmd[4:])
    r = run_py(*args)
    assert r.returncode == 2
    line = one_line(r)
    assert "--api-key" in line and "SQUALL_API_KEY" in line
    checked = [a if a != "serve" else "checkconfig" for a in args] + ["--offline"]
    assert run_py(*checked, env={"SQUALL_API_KEY": "k" * 32}).returncode == 0


def test_gentoken_short_secret_is_squalls_one_line_warning() -> None:
    """A short --secret gives Squall's warning, not PyJWT's InsecureKeyLengthWarning with a site-packages path."""
    r = run_py("gentoken", "--user", "u", "--secret", "short")
    assert r.returncode == 0 and r.stdout.count(".") == 2
    line = one_line(r)
    assert "--secret is 5 bytes" in line and "InsecureKeyLength" not in line and "site-packages" not in line


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the test's own jwt.encode
def test_serve_at_warning_level_says_where_it_listens_and_warns_once_for_short_key(tmp_path: Path) -> None:
    """log_level=warning still prints the listening line; a short HMAC key is one warning, PyJWT's never appears."""
    port = free_port()
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port), "--log-level", "warning",
             "--set", "token_hmac_secret_key=short", "--set", "allow_anonymous_connect_without_token=false"],
            cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=err,
        )
    token = jwt.encode({"sub": "alice"}, "short", algorithm="HS256")

    async def connect() -> dict[str, object]:
        c = await connected(f"ws://127.0.0.1:{port}/connection/websocket", token=token)
        c.close()
        return c.last_connect

    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        reply = asyncio.run(connect())
    finally:
        code = stop_process(proc)
    text = log.read_text()
    assert code == 0, text
    assert reply["connect"]["client"]  # type: ignore[index]
    assert re.search(rf"squall listening on http://127\.0\.0\.1:{port}/", text), text
    assert text.count("token_hmac_secret_key is 5 bytes") == 1
    assert "InsecureKeyLength" not in text and "site-packages" not in text


def test_run_py_with_a_python_lacking_dependencies_names_the_fix() -> None:
    """`python3 run.py --help` without Squall's dependencies (no site-packages) is one line naming .ci/setup and .venv."""
    r = run_py("--help", python=[sys.executable, "-S"])
    assert r.returncode == 1
    line = one_line(r)
    assert "bash .ci/setup" in line and ".venv/bin/python run.py" in line
    assert os.path.basename(sys.executable) in line or sys.executable in line


def test_hooks_from_the_working_directory_cannot_shadow_squalls_packages(tmp_path: Path) -> None:
    """--hooks finds mypkg in the working directory; `channels/`, `handlers/`, `server/` there do not replace Squall's."""
    for name in ("channels", "handlers", "server"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the working directory shadowed {name}')\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "hooks.py").write_text("from handlers.hooks import Hooks\n\n\ndef make() -> Hooks:\n    return Hooks()\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "checkconfig", "--hooks", "mypkg.hooks:make"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout
    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "checkconfig", "--hooks", "mypkg.nothing:make"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and "mypkg.nothing" in one_line(r)
