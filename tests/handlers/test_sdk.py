"""Connect name/version: in the log line, the admin page's stats, and a bounded metrics label."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from handlers.sdk import clean, label
from tests.handlers.test_admin import PASSWORD, call, login, squall_config  # noqa: F401
from tests.helpers.wsclient import connected


def test_label_is_bounded_and_clean_is_printable() -> None:
    """Known SDK names are labels; anything else is other (or unknown when empty); logs get 32 safe chars."""
    assert label("js") == "js" and label("python") == "python"
    assert label("") == "unknown" and label("x" * 500) == "other" and label("js\n") == "other"
    assert clean("5.8.0") == "5.8.0" and clean("a b\n\x00" + "z" * 100) == "a_b__" + "z" * 27


def _count(text: str, sdk: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'squall_connects_total{{sdk="{sdk}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.gen_test
async def test_name_and_version_reach_logs_admin_and_metrics(http_server, http_port, ws_url, caplog):  # noqa: F811
    """Two clients naming themselves: the log says sdk=js/5.8.0, admin lists them, metrics count js and other."""
    metrics = f"http://127.0.0.1:{http_port}/metrics"
    before = (await AsyncHTTPClient().fetch(metrics)).body.decode()
    with caplog.at_level(logging.INFO, "squall.client"):
        a = await connected(ws_url, name="js", version="5.8.0")
        b = await connected(ws_url, name="evil\nname" * 20, version="1")
    assert "sdk=js/5.8.0" in caplog.text
    stats: Any = json.loads((await call(http_port, "/admin/api/stats", token=await login(http_port))).body)
    assert {"name": "js", "version": "5.8.0", "clients": 1} in stats["sdks"]
    assert any(s["name"].startswith("evil_name") and len(s["name"]) == 32 for s in stats["sdks"])
    after = (await AsyncHTTPClient().fetch(metrics)).body.decode()
    assert _count(after, "js") - _count(before, "js") == 1
    assert _count(after, "other") - _count(before, "other") == 1
    a.close()
    b.close()
