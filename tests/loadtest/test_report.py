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
