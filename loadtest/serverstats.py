"""Samples the server under test: CPU seconds and RSS (psutil), and its own
delivery counter, so the tool's count can be checked. The counter is read
from a JSON document (dotted key) or a Prometheus text exposition (sample
name, summed over labels), e.g. Squall's ``/metrics`` with
``squall_deliveries_total``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


class ServerSampler:
    """Reads a server process (and its children, for ``--processes N``)."""

    def __init__(self, pid: int, stats_url: str = "", stats_key: str = "deliveries") -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.stats_url = stats_url
        self.stats_key = stats_key

    def _procs(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self, with_stats: bool = False) -> dict[str, float]:
        out: dict[str, float] = {"t": time.time()}
        cpu = 0.0
        rss = 0
        seen = False
        for p in self._procs():
            try:
                ct = p.cpu_times()
                cpu += ct.user + ct.system
                rss += p.memory_info().rss
                seen = True
            except psutil.NoSuchProcess:
                continue
        if seen:
            out["cpu"] = cpu
            out["rss"] = float(rss)
        if with_stats and self.stats_url:
            value = self.fetch_deliveries()
            if value is not None:
                out["deliveries"] = value
        return out

    def fetch_deliveries(self) -> float | None:
        try:
            with urllib.request.urlopen(self.stats_url, timeout=5) as r:
                raw = r.read().decode("utf-8", "replace")
        except (OSError, urllib.error.URLError):
            return None
        try:
            value = _dig(json.loads(raw), self.stats_key)
        except ValueError:
            return prometheus_sample(raw, self.stats_key)
        return float(value) if isinstance(value, (int, float)) else None


def prometheus_sample(text: str, name: str) -> float | None:
    """The sum of a sample's values over its labels in Prometheus text, None when absent."""
    total = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    total = (total or 0.0) + float(sample.value)
    except ValueError:
        return None
    return total
