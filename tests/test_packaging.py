"""The wheel: built offline from the checkout, installed in a fresh venv, run as `squall`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers.procs import free_port, stop_process, wait_http
from tests.helpers.wsclient import connected

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
OWN = ("server", "handlers", "channels", "loadtest")
# Stand-ins for other distributions' top-level packages of the same names
# (Django Channels is `channels`): importing one of them fails loudly, so
# any installed module still importing a bare Squall name breaks the tests.
DECOY = 'raise ImportError("the foreign top-level package {name!r} was imported")\n'
HOOKS = '''"""A user's own hooks, outside Squall's checkout."""

from squall.hooks import ClientInfo, ClientSender, Hooks

SENDERS: list[ClientSender] = []  # the handle a hook keeps to push to any client


async def whoami(client: ClientInfo, data: object) -> object:
    return {"echo": data, "from": "mypkg"}


def make() -> Hooks:
    return Hooks(rpc={"whoami": whoami}, setup=SENDERS.append)
'''


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout's files (no .git, venv, caches): builds write egg-info and build/ there, not in the
    shared checkout, and no leftover of an earlier build can leak in."""
    dest = tmp_path_factory.mktemp("src") / "squall"
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "node_modules", "__pycache__", "*.egg-info", "build", "dist", ".mypy_cache", ".pytest_cache"))
    return dest


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python -m build --no-isolation: sdist, then the wheel from it, with no network."""
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = out.glob("squall-*.whl")
    return whl


@pytest.fixture(scope="module")
def env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and its dependencies, which pip may fetch)."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    r = subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return home


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory away from the checkout, with decoy packages named like Squall's."""
    decoys = tmp_path / "decoys"
    for name in OWN:
        (decoys / name).mkdir(parents=True)
        (decoys / name / "__init__.py").write_text(DECOY.format(name=name))
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "hooks.py").write_text(HOOKS)
    return tmp_path


def _env(outside: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SQUALL_")}
    e["PYTHONPATH"] = str(outside / "decoys")
    return e


def squall(env: Path, outside: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env / "bin" / "squall"), *args], capture_output=True, text=True, timeout=60, cwd=outside, env=_env(outside)
    )


def test_wheel_has_one_import_name_and_no_bare_imports(source: Path, wheel: Path) -> None:
    """The wheel installs only `squall`; no module in it imports server/handlers/channels/loadtest bare."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tops = {n.split("/")[0] for n in names}
        assert {t for t in tops if not t.endswith(".dist-info")} == {"squall"}
        for pkg in OWN:
            assert f"squall/{pkg}/__init__.py" in names
        assert "squall/static/index.html" in names and "squall/server/demo.toml" in names
        for pkg in OWN:  # every module of the checkout ships, subpackages (handlers/proto) included
            for path in (source / pkg).rglob("*.py"):
                rel = path.relative_to(source)
                if "__pycache__" not in rel.parts and rel.name != "wheel_build.py":
                    assert f"squall/{rel.as_posix()}" in names, rel
        for n in names:
            if n.endswith(".py"):
                text = z.read(n).decode()
                for pkg in OWN:
                    assert f"from {pkg}." not in text and f"from {pkg} import" not in text, n


def test_version(env: Path, outside: Path) -> None:
    """`squall --version` and `python -m squall --version` print pyproject.toml's version."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        expected = tomllib.load(f)["project"]["version"]
    r = squall(env, outside, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"squall {expected}"
    r = subprocess.run([str(env / "bin" / "python"), "-m", "squall", "--version"], capture_output=True, text=True,
                       timeout=60, cwd=outside, env=_env(outside))
    assert r.returncode == 0 and r.stdout.strip() == f"squall {expected}", r.stderr


def test_loadtest_help(env: Path, outside: Path) -> None:
    """`squall loadtest --help` lists the scenarios."""
    r = squall(env, outside, "loadtest", "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: squall loadtest" in r.stdout and "broadcast" in r.stdout


def _serve(env: Path, outside: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [str(env / "bin" / "squall"), "serve", "--port", str(port), *args],
        cwd=outside, env=_env(outside), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return proc, port


def test_serve_serves_chat_page_and_static(env: Path, outside: Path) -> None:
    """`squall serve` (demo config, its demo hooks) serves the chat page and static files from the install."""
    import urllib.request

    proc, port = _serve(env, outside)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            page = r.read().decode()
        assert "<title>Squall chat</title>" in page and "/static/chat.js" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/chat.js", timeout=5) as r:
            assert r.status == 200 and b"import" in r.read()
    finally:
        code = stop_process(proc)
    assert code == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""


def test_serve_loads_users_hooks_outside_checkout(env: Path, outside: Path) -> None:
    """`squall serve --hooks mypkg.hooks:make` imports the user's module from the working directory and runs its RPC."""
    proc, port = _serve(env, outside, "--hooks", "mypkg.hooks:make")

    async def call() -> dict[str, object]:
        client = await connected(f"ws://127.0.0.1:{port}/connection/websocket")
        try:
            return await client.call("rpc", {"method": "whoami", "data": {"n": 1}})
        finally:
            client.close()

    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        reply = asyncio.run(call())
    finally:
        stop_process(proc)
    assert reply.get("rpc") == {"data": {"echo": {"n": 1}, "from": "mypkg"}}, reply


def test_serve_names_a_missing_hooks_module(env: Path, outside: Path) -> None:
    """A hooks module that cannot be imported is one line naming the setting and the fix."""
    r = squall(env, outside, "serve", "--hooks", "nopkg.hooks:make")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "hooks" in r.stderr and "PYTHONPATH" in r.stderr


def test_pipx_install_from_the_checkout(source: Path, tmp_path: Path, outside: Path) -> None:
    """`pipx install <checkout>` (its own venv, build isolation, deps from the index) gives a working `squall`."""
    tools = tmp_path / "tools"
    venv.create(tools, with_pip=True)
    r = subprocess.run([str(tools / "bin" / "python"), "-m", "pip", "install", "-q", "pipx"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {**_env(outside), "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_MAN_DIR": str(tmp_path / "man")}
    r = subprocess.run([str(tools / "bin" / "pipx"), "install", str(source)], capture_output=True, text=True,
                       timeout=600, env={**env, "PYTHONPATH": ""}, cwd=outside)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([str(tmp_path / "bin" / "squall"), "--version"], capture_output=True, text=True,
                       timeout=60, env=env, cwd=outside)
    assert r.returncode == 0 and r.stdout.startswith("squall "), r.stderr
    r = subprocess.run([str(tmp_path / "bin" / "squall"), "checkconfig", "--offline"], capture_output=True, text=True,
                       timeout=60, env=env, cwd=outside)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r.stderr
