"""`python run.py demo-feed` against a real server process."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request
from typing import Any

from server.demo_feed import SERIES, Signals, batch_body
from tests.helpers.squall_process import ROOT, test_config

KEY = "feed-key"


def _metrics_ns() -> dict[str, Any]:
    return {
        "name": "metrics",
        "history_size": 50,
        "history_ttl": 600,
        "latest_value": True,
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
    }


def _feed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "demo-feed", *args],
        cwd=str(ROOT), capture_output=True, text=True, timeout=60,
    )


def _history(url: str, channel: str) -> dict[str, Any]:
    req = urllib.request.Request(
        url + "/api/history", data=json.dumps({"channel": channel, "limit": 100}).encode(), headers={"X-API-Key": KEY}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        result: dict[str, Any] = json.loads(r.read())["result"]
        return result


def test_signals_stay_in_range() -> None:
    """Every series is a number in a plausible range over many samples."""
    s = Signals(rng=random.Random(1))
    for i in range(2000):
        v = s.sample(i / 20)
        assert set(v) == set(SERIES)
        assert 0 <= v["cpu"] <= 100 and v["rps"] >= 0 and 0 < v["mem"] <= 86 and v["latency"] >= 1
    body = json.loads(batch_body({"cpu": 1.0}, 5))
    assert body == {"commands": [{"publish": {"channel": "metrics:cpu", "data": {"v": 1.0, "t": 5}}}]}


def test_feed_publishes_every_series(squall_factory: Any) -> None:
    """A bounded run publishes changing values into each metrics channel and exits 0."""
    sp = squall_factory(test_config(api_key=KEY, namespaces=[_metrics_ns()]))
    r = _feed("--url", sp.url, "--api-key", KEY, "--rate", "40", "--duration", "2")
    assert r.returncode == 0, r.stderr
    for name in SERIES:
        h = _history(sp.url, f"metrics:{name}")
        values = [p["data"]["v"] for p in h["publications"]]
        assert h["offset"] >= 5 and len(set(values)) > 1


def test_feed_reports_bad_key_and_api_off(squall_factory: Any) -> None:
    """A wrong key and a server without an API both exit 1 with a message saying what to do."""
    sp = squall_factory(test_config(api_key=KEY, namespaces=[_metrics_ns()]))
    r = _feed("--url", sp.url, "--api-key", "wrong", "--duration", "5")
    assert r.returncode == 1 and "401" in r.stderr
    off = squall_factory(test_config(namespaces=[_metrics_ns()]))
    r = _feed("--url", off.url, "--api-key", "", "--duration", "5")
    assert r.returncode == 1 and "api_key" in r.stderr


def test_feed_rejects_bad_rate() -> None:
    """A rate outside (0, 1000] is a usage error (exit 2)."""
    r = _feed("--rate", "0", "--duration", "1")
    assert r.returncode == 2 and "--rate" in r.stderr
