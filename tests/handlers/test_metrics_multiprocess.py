"""With --processes 2 and PROMETHEUS_MULTIPROC_DIR, any worker's /metrics covers every worker."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


@pytest.mark.gen_test(timeout=90)
async def test_every_worker_is_exported(squall_factory, redis_server, tmp_path: Path):  # noqa: F811
    """Per-worker gauges carry both pids; connections sum over the workers."""
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    sp = squall_factory(
        test_config(engine="redis", redis_urls=[redis_server.url], processes=2),
        env={"PROMETHEUS_MULTIPROC_DIR": str(mp_dir)},
    )
    pids: set[str] = set()
    for _ in range(100):
        pids = {labels["pid"] for name, labels, _ in scrape(sp.url) if name == "squall_process_resident_memory_bytes"}
        if len(pids) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(pids) == 2
    clients = [await connected(sp.ws_url) for _ in range(6)]
    total = 0.0
    for _ in range(60):
        total = sum(v for name, _, v in scrape(sp.url) if name == "squall_connections")
        if total == 6:
            break
        await asyncio.sleep(0.1)
    assert total == 6
    connects = sum(
        v for name, labels, v in scrape(sp.url)
        if name == "squall_commands_total" and labels == {"method": "connect", "code": "0"}
    )
    assert connects == 6
    for c in clients:
        c.close()
