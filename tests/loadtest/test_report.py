"""The HTML report is self-contained and the table names every measure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest.cli import main
from tests.helpers.baselines import Baseline


def test_html_report_is_self_contained(asyncio_baseline: Baseline, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Charts are inline SVG and the page references nothing on the network."""
    html_path = tmp_path / "r.html"
    rc = main(["broadcast", "--subscribers", "50", "--duration", "1.2", "--url", asyncio_baseline.ws_url,
               "--ramp", "0", "--quiet", "--html", str(html_path)])
    assert rc == 0
    page = html_path.read_text()
    assert page.count("<svg") >= 3 and "<polyline" in page
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+", page)) - {"http://www.w3.org"}
    assert urls == set()
    table = capsys.readouterr().out
    for label in ("deliveries/s", "latency ms", "loss", "duplicates", "out of order", "errors", "disconnects"):
        assert label in table


@pytest.mark.parametrize("top", [0.3, 1, 7, 9.99, 42, 1100, 200_000, 3_456_789])
def test_axis_ticks_are_round_and_cover_the_data(top: float) -> None:
    """Ticks start at 0, step by 1, 2 or 5 x 10^n, and the last one reaches the largest value."""
    from loadtest.report import nice_ticks

    ticks = nice_ticks(top)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and ticks[-1] >= top and ticks[-2] < top and 2 <= len(ticks) <= 6
    mantissa = step / 10 ** __import__("math").floor(__import__("math").log10(step))
    assert round(mantissa, 6) in (1, 2, 5)


def test_html_report_has_verdict_date_version_and_only_this_scenarios_settings(
    asyncio_baseline: Baseline, tmp_path: Path
) -> None:
    """A passing run's page says PASS, when it ran and the tool's version; counts are not shown as ms; publishes get their own chart."""
    html_path = tmp_path / "r.html"
    rc = main(["broadcast", "--subscribers", "20", "--duration", "1", "--rate", "50", "--url", asyncio_baseline.ws_url,
               "--ramp", "0", "--quiet", "--html", str(html_path)])
    assert rc == 0
    page = html_path.read_text()
    assert 'class="verdict pass">PASS' in page
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, load tester \d+\.\d+", page)
    assert re.search(r"<th>count</th><td>[\d,]+ samples</td>", page) and not re.search(r"count</th><td>[\d.]+ ms", page)
    assert "Publishes per second" in page and "Deliveries per second" in page
    settings = page.split("Settings of this scenario")[1]
    assert "&quot;subscribers&quot;" in settings and "&quot;rooms" not in settings and "&quot;churn_rate" not in settings
