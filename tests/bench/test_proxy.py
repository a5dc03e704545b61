"""bench/proxy.py's bookkeeping: the configs it runs and the table it writes."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from bench import proxy


def test_configs_differ_only_by_the_proxy() -> None:
    """Without a backend: anonymous connects; with one: connect and publish proxied (publish in the default namespace)."""
    none = tomllib.loads(proxy.squall_toml(None))
    with_proxy = tomllib.loads(proxy.squall_toml("http://127.0.0.1:1"))
    assert none["allow_anonymous_connect_without_token"] and "proxy_connect_endpoint" not in none
    assert with_proxy["proxy_connect_endpoint"] == "http://127.0.0.1:1/connect"
    assert with_proxy["channel"]["proxy_publish"] and not none["channel"].get("proxy_publish")


def test_markdown_ratios_and_doc_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's last column is proxy / none; --write-doc replaces only what is between the markers."""
    args = argparse.Namespace(connects=10, concurrency=2, publishes=5, inflight=1)
    none = {"connect": {"per_s": 1000.0, "failed": 0}, "publish": {"p50_ms": 0.5, "p99_ms": 1.0}}
    prox = {"connect": {"per_s": 500.0, "failed": 1}, "publish": {"p50_ms": 1.0, "p99_ms": 4.0}}
    body = proxy.markdown(none, prox, args)
    assert "| connects/s | 1000 | 500 | 0.50 |" in body and "| publish p99 (ms) | 1.00 | 4.00 | 4.00 |" in body
    assert "Failed connects: 1." in body
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text(f"before\n{proxy.BEGIN}\nold\n{proxy.END}\nafter\n")
    monkeypatch.setattr(proxy, "DOC", doc)
    proxy.write_doc(body)
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith(f"{proxy.END}\nafter\n") and "old" not in text and body in text
