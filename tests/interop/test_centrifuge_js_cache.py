"""centrifuge-js (unchanged, under Node) on a namespace in Centrifugo's cache recovery mode."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

from tests.helpers.squall_process import OPEN_NAMESPACE, SquallProcess, squall_factory, test_config  # noqa: F401
from tests.interop.test_centrifuge_js import centrifuge_js  # noqa: F401

KEY = "cache-test-key-0123456789abcdef"
CACHE = {"name": "cache", **OPEN_NAMESPACE, "force_recovery_mode": "cache", "auto_cache_recover": True}


def test_cache_recovery_delivers_only_the_latest(centrifuge_js: Path, squall_factory: Callable[..., SquallProcess]) -> None:
    """Subscribe and every resubscribe get only the newest publication (none when the client has it), recovered: true."""
    sp = squall_factory(test_config(api_key=KEY, namespaces=[CACHE]))
    r = subprocess.run(
        ["node", str(centrifuge_js / "cache_recovery.mjs"), sp.url, KEY, "cache:c"],
        cwd=centrifuge_js, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr + sp.logs()[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert [(p["offset"], p["data"]["n"]) for p in out["publications"]] == [(2, 2), (5, 5)]
    assert [(s["wasRecovering"], s["recovered"]) for s in out["subscribed"]] == [(True, True)] * 3
