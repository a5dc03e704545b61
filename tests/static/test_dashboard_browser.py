"""The /dashboard page in headless Chromium while `run.py demo-feed` publishes.

The page must show values that change, over SSE (the default) and over
WebSocket, count a reconnect after the server drops it, and load nothing from
outside 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from server.settings import DEMO_CONFIG
from tests.helpers.squall_process import ROOT, SquallProcess, start_squall

pytestmark = pytest.mark.browser

KEY = "demo"  # the demo configuration's API key
FEED_SECONDS = 40  # bounded; stopped as soon as the test ends


@pytest.fixture(scope="module")
def dash_squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    """The demo configuration as shipped: metrics namespace and API key."""
    sp = start_squall(Path(tmp_path_factory.mktemp("dash")), DEMO_CONFIG.read_text())
    try:
        yield sp
    finally:
        sp.stop()


@pytest.fixture
def demo_feed(dash_squall: SquallProcess) -> Iterator[subprocess.Popen[bytes]]:
    """`run.py demo-feed` against the server for at most FEED_SECONDS."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "demo-feed", "--url", dash_squall.url, "--api-key", KEY,
         "--rate", "20", "--duration", str(FEED_SECONDS)],
        cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def _values(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        "[data-series]", "els => Object.fromEntries(els.map(e => [e.dataset.series, e.querySelector('.num').textContent]))"
    )


def _wait_values_change(page: Any, before: dict[str, str]) -> None:
    """Every series shows a number different from ``before`` (bounded by the page timeout)."""
    page.wait_for_function(
        """before => [...document.querySelectorAll('[data-series]')].every(e => {
             const t = e.querySelector('.num').textContent;
             return /^-?[0-9.]+$/.test(t) && t !== before[e.dataset.series];
           })""",
        arg=before,
    )


def _chart_drawn(page: Any, channel: str) -> bool:
    """The channel's canvas has non-transparent pixels of its line."""
    return bool(page.evaluate(
        """ch => {
             const c = document.querySelector(`[data-series="${ch}"] canvas`);
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0;
             for (let i = 3; i < d.length; i += 4) if (d[i] > 200) n++;
             return n > 100;
           }""",
        channel,
    ))


def _disconnect_anonymous(url: str, code: int) -> None:
    req = urllib.request.Request(
        url + "/api/disconnect",
        data=json.dumps({"user": "", "disconnect": {"code": code, "reason": "test"}}).encode(),
        headers={"X-API-Key": KEY},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read()) == {"result": {}}


def test_dashboard_moves_over_sse_and_websocket(dash_squall: SquallProcess, demo_feed: Any, open_page: Any) -> None:
    """Values change over SSE, survive a server-side drop (reconnects: 1), and change over WebSocket."""
    rec = open_page(dash_squall.url + "/dashboard")
    page = rec.page
    page.wait_for_selector("#conn[data-state=connected]")
    assert page.text_content("#conn-transport") == "SSE"
    channels = page.eval_on_selector_all("[data-series]", "els => els.map(e => e.dataset.series)")
    assert channels == ["metrics:cpu", "metrics:rps", "metrics:mem", "metrics:latency"]
    _wait_values_change(page, {c: "–" for c in channels})
    first = _values(page)
    _wait_values_change(page, first)
    page.wait_for_function("() => +document.querySelector('[data-series=\"metrics:cpu\"]').dataset.count > 10")
    assert _chart_drawn(page, "metrics:cpu")

    # The server drops every anonymous connection with a reconnect code: the page comes back.
    _disconnect_anonymous(dash_squall.url, 3011)
    page.wait_for_selector("#conn[data-reconnects='1'][data-state=connected]")
    _wait_values_change(page, _values(page))

    page.check("input[name=transport][value=ws]")
    page.wait_for_function("() => document.querySelector('#conn-transport').textContent === 'WebSocket'")
    page.wait_for_selector("#conn[data-state=connected]")
    _wait_values_change(page, _values(page))

    assert rec.foreign_requests() == []
    assert rec.page_errors == [] and rec.console_errors == []
    assert demo_feed.poll() is None, demo_feed.stderr.read() if demo_feed.stderr else ""


def _publish(url: str, channel: str, data: Any) -> None:
    req = urllib.request.Request(
        url + "/api/publish", data=json.dumps({"channel": channel, "data": data}).encode(), headers={"X-API-Key": KEY}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert "result" in json.loads(r.read())


def _axis(page: Any, channel: str) -> Any:
    return page.evaluate("ch => window.squallDashboard.series.get(ch).chart.axis", channel)


def test_time_axis_floor_at_zero_and_reload_keeps_the_chart(dash_squall: SquallProcess, open_page: Any) -> None:
    """Charts have a time axis, a p99 near zero gets no axis below zero, and a reload draws the last minute at
    once (restored from the previous load, then the feed goes on from its stream position)."""
    channel = "metrics:latency"
    rec = open_page(f"{dash_squall.url}/dashboard?channels={channel}")
    page = rec.page
    page.wait_for_selector("#conn[data-state=connected]")
    assert _axis(page, channel)["times"] == ["-1m", "-45s", "-30s", "-15s", "now"]
    for v in (0.0, 0.5, 0.2):
        _publish(dash_squall.url, channel, {"v": v})
    # (a latest-value channel: the subscribe may also bring the last value an earlier test's feed left)
    page.wait_for_function(f"() => document.querySelector('[data-series=\"{channel}\"] .num').textContent === '0.2'")
    page.wait_for_timeout(100)  # the next frame
    axis = _axis(page, channel)
    assert axis["lo"] == 0 and axis["hi"] > 0.5, axis  # before: below zero (an 8% margin under the lowest value)
    assert _chart_drawn(page, channel)
    shown = page.evaluate(f"() => window.squallDashboard.series.get('{channel}').chart.points.length")
    assert shown >= 3

    page.reload()  # pagehide saves the charts
    page.wait_for_selector(f'[data-series="{channel}"][data-restored="{shown}"]')
    assert page.text_content(f'[data-series="{channel}"] .num') == "0.2"
    assert _chart_drawn(page, channel)
    page.wait_for_selector("#conn[data-state=connected]")
    _publish(dash_squall.url, channel, {"v": 0.3})
    page.wait_for_function(f"() => document.querySelector('[data-series=\"{channel}\"] .num').textContent === '0.3'")
    page.wait_for_timeout(300)
    # continued from the saved position: the restored points are not delivered again
    assert page.evaluate(f"() => window.squallDashboard.series.get('{channel}').chart.points.length") == shown + 1
    assert rec.page_errors == [] and rec.console_errors == []
