"""/metrics: counters move by exactly what scripted traffic did (scrape, act, scrape)."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from server.app import build
from server.settings import load
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(admin_password="pw")


async def scrape(port: int) -> Samples:
    r = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/metrics")
    assert r.headers["Content-Type"].startswith("text/plain")
    out: Samples = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return val(after, name, **labels) - val(before, name, **labels)


@pytest.mark.gen_test(timeout=30)
async def test_scripted_traffic_moves_counters_exactly(ws_url, http_port):
    """2 clients subscribe, one publishes 5: publications +5, deliveries +10, commands counted by method."""
    before = await scrape(http_port)
    a = await connected(ws_url)
    b = await connected(ws_url)
    for c in (a, b):
        r = await c.call("subscribe", {"channel": "live:m"})
        assert "subscribe" in r
    for i in range(5):
        r = await a.call("publish", {"channel": "live:m", "data": {"i": i}})
        assert "publish" in r
    for c in (a, b):
        for _ in range(5):
            assert (await c.next_push())["push"]["pub"]["data"]["i"] >= 0
    after = await scrape(http_port)
    assert moved(before, after, "squall_publications_total") == 5
    assert moved(before, after, "squall_deliveries_total") == 10
    assert moved(before, after, "squall_commands_total", method="connect", code="0") == 2
    assert moved(before, after, "squall_commands_total", method="subscribe", code="0") == 2
    assert moved(before, after, "squall_commands_total", method="publish", code="0") == 5
    assert moved(before, after, "squall_command_duration_seconds_count", method="publish") == 5
    assert val(after, "squall_connections") == 2
    assert val(after, "squall_subscriptions") == 2
    assert val(after, "squall_channels") == 1
    assert val(after, "squall_backend_up", backend="broker") == 1
    assert val(after, "squall_backend_up", backend="history") == 1
    assert val(after, "process_resident_memory_bytes") > 0
    a.close()
    b.close()


@pytest.mark.gen_test(timeout=30)
async def test_error_codes_and_disconnect_codes_are_counted(ws_url, http_port):
    """A refused publish counts under its error code; a forced disconnect under 3503."""
    before = await scrape(http_port)
    c = await connected(ws_url)
    r = await c.call("publish", {"channel": "nosuchns:x", "data": {}})
    assert r["error"]["code"] == 102
    after = await scrape(http_port)
    assert moved(before, after, "squall_commands_total", method="publish", code="102") == 1
    assert moved(before, after, "squall_commands_total", method="publish", code="0") == 0
    token = (await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{http_port}/admin/api/login", method="POST", body='{"password":"pw"}'
    ))
    tok = json.loads(token.body)["token"]
    await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{http_port}/admin/api/disconnect", method="POST",
        body='{"user":""}', headers={"X-Admin-Token": tok},
    )
    code, _ = await c.wait_closed()
    assert code == 3503
    final = await scrape(http_port)
    assert moved(after, final, "squall_disconnects_total", code="3503") == 1
    assert moved(after, final, "squall_disconnects_total", code="3000") == 0  # counted once, by its real code
    assert val(final, "squall_connections") == 0


@pytest.mark.gen_test(timeout=30)
async def test_recovery_outcomes_are_counted(ws_url, http_port):
    """A recoverable resubscribe counts as recovered; an unknown epoch as not recovered, with its reason."""
    before = await scrape(http_port)
    a = await connected(ws_url)
    r = await a.call("subscribe", {"channel": "chat:rec"})
    epoch = r["subscribe"]["epoch"]
    await a.call("publish", {"channel": "chat:rec", "data": 1})
    b = await connected(ws_url)
    r = await b.call("subscribe", {"channel": "chat:rec", "recover": True, "offset": 0, "epoch": epoch})
    assert r["subscribe"]["recovered"] is True
    c = await connected(ws_url)
    r = await c.call("subscribe", {"channel": "chat:rec", "recover": True, "offset": 0, "epoch": "bogus"})
    assert not r["subscribe"].get("recovered")
    after = await scrape(http_port)
    assert moved(before, after, "squall_recovery_total", result="recovered") == 1
    assert moved(before, after, "squall_recovery_total", result="not_recovered") == 1
    assert moved(before, after, "squall_recoveries_refused_total", reason="epoch") == 1
    assert moved(before, after, "squall_recoveries_refused_total", reason="hole") == 0
    for x in (a, b, c):
        x.close()


@pytest.mark.gen_test(timeout=30)
async def test_loop_lag_and_gc_pauses_are_exported(http_server, http_port):
    """The loop-lag and GC histograms are present and record samples."""
    gc.collect()
    await asyncio.sleep(0.6)  # at least one loop-lag tick (interval 0.5 s)
    s = await scrape(http_port)
    assert val(s, "squall_event_loop_lag_seconds_count") >= 1
    assert val(s, "squall_gc_pause_seconds_count", generation="2") >= 1
    assert val(s, "squall_gc_pause_max_seconds") > 0
    assert 0 <= val(s, "squall_gc_pause_cpu_max_seconds") <= val(s, "squall_gc_pause_max_seconds") + 0.002


def test_two_apps_in_one_process_have_separate_registries(tmp_path):
    """Each app has its own registry: building two does not clash, and counts stay apart."""
    settings = load(None, environ={})
    one, two = build(settings), build(settings)
    m1, m2 = one.ctx.observer, two.ctx.observer
    m1.command("publish", 0, 0.001)  # type: ignore[attr-defined]
    m1.sample()  # type: ignore[attr-defined]  # per-command counts move in at a sample (or a scrape)
    m2.sample()  # type: ignore[attr-defined]
    assert m1.registry is not m2.registry  # type: ignore[attr-defined]
    assert m1.registry.get_sample_value("squall_commands_total", {"method": "publish", "code": "0"}) == 1  # type: ignore[attr-defined]
    assert m2.registry.get_sample_value("squall_commands_total", {"method": "publish", "code": "0"}) is None  # type: ignore[attr-defined]
