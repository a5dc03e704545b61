"""The official centrifuge-js SDK (from npm, under Node) against Squall, unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.squall_process import SquallProcess, squall_factory, test_config  # noqa: F401

JS = Path(__file__).with_name("js")


@pytest.fixture(scope="module")
def centrifuge_js() -> Path:
    """centrifuge-js and ws installed from npm into tests/interop/js (once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (JS / "node_modules" / "centrifuge").is_dir():
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS, capture_output=True, text=True, timeout=300,
        )
        if r.returncode != 0:
            pytest.fail(f"npm install failed: {r.stderr[-2000:]}")
    return JS


def test_centrifuge_js_publish_subscribe_presence_history(centrifuge_js: Path, squall_factory) -> None:
    """centrifuge-js connects, publishes, receives in order, reads presence and history."""
    sp: SquallProcess = squall_factory(test_config())
    r = subprocess.run(
        ["node", str(centrifuge_js / "client.mjs"), sp.ws_url, "chat:js"],
        cwd=centrifuge_js, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["connected"] and out["errors"] == []
    assert [p["offset"] for p in out["publications"]] == [1, 2, 3]
    assert [p["data"] for p in out["publications"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert out["presence"] == 1
    assert out["history"] == [1, 2, 3]
