"""centrifuge-js (unchanged, under Node): fossil delta subscriptions and publication tags filters."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.helpers.squall_process import OPEN_NAMESPACE, SquallProcess, squall_factory, test_config  # noqa: F401
from tests.interop.test_centrifuge_js import centrifuge_js  # noqa: F401

KEY = "delta-test-key-0123456789abcdef"
DASH = {"name": "dash", **OPEN_NAMESPACE, "allowed_delta_types": ["fossil"], "allow_tags_filter": True}


def dashboard_docs(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """A ~5 KB object, each next version with ~1% of its fields changed."""
    rnd = random.Random(seed)
    doc = {f"metric_{i:03d}": {"value": rnd.randint(0, 10**6), "unit": "ms", "ok": True} for i in range(100)}
    docs = []
    for _ in range(n):
        docs.append(json.loads(json.dumps(doc)))
        doc[f"metric_{rnd.randrange(100):03d}"]["value"] = rnd.randint(0, 10**6)
    return docs


def run(js: Path, sp: SquallProcess, transport: str, docs: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(docs))
    r = subprocess.run(
        ["node", str(js / "delta_tags.mjs"), transport, sp.url, KEY, "dash:d", "dash:t", str(path)],
        cwd=js, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr + sp.logs()[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("transport", ["websocket", "http_stream", "sse"])
def test_delta_and_tags_filter(centrifuge_js: Path, squall_factory: Callable[..., SquallProcess], tmp_path: Path, transport: str) -> None:
    """Deltas decode to exactly what was published, in fewer bytes; the filter lets only matching tags through."""
    sp = squall_factory(test_config(api_key=KEY, namespaces=[DASH]))
    docs = dashboard_docs(6)
    out = run(centrifuge_js, sp, transport, docs, tmp_path)
    assert out["errors"] == []
    assert out["negotiated"] is True
    assert out["delta"] == docs
    stats = out["stats"]
    assert stats["numFullPayloads"] == 1 and stats["numDeltaPayloads"] == 5
    assert stats["bytesReceived"] < stats["bytesDecoded"] * 0.3
    # BTC, or price > 100.5 (numeric): the 1st, 3rd and 5th
    assert [m["data"]["i"] for m in out["tags"]] == [0, 2, 4]
    assert out["tags"][0]["tags"] == {"ticker": "BTC", "price": "1"}


def test_delta_not_allowed_in_namespace_means_full_payloads(
    centrifuge_js: Path, squall_factory: Callable[..., SquallProcess], tmp_path: Path
) -> None:
    """Without allowed_delta_types the reply says no delta and the client gets full payloads (filter allowed)."""
    ns = {**DASH}
    del ns["allowed_delta_types"]
    sp = squall_factory(test_config(api_key=KEY, namespaces=[ns]))
    docs = dashboard_docs(3)
    out = run(centrifuge_js, sp, "websocket", docs, tmp_path)
    assert out["errors"] == [] and out["negotiated"] is False
    assert out["delta"] == docs
    assert out["stats"]["numDeltaPayloads"] == 0
