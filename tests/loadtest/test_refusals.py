"""The load tester explains refusals in one line each, and --publish-via api publishes as a backend does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from loadtest.explain import explain
from loadtest.report import html_report, table
from loadtest.summary import check_thresholds
from tests.helpers.squall_process import ROOT, SquallProcess, start_squall
from tests.loadtest.conftest import RunTool

API_KEY = "refusals-test-key-0123456789abcdef"
# Squall's own defaults for the limits, a namespace clients may not publish to
# (as on a real deployment, where a backend publishes), and one they may.
CONFIG = f'''
allow_anonymous_connect_without_token = true
api_key = "{API_KEY}"
log_level = "warning"

[[namespaces]]
name = "feed"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true

[[namespaces]]
name = "open"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
'''


@pytest.fixture(scope="module")
def squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    sp = start_squall(tmp_path_factory.mktemp("squall"), CONFIG)
    yield sp
    sp.stop()


@pytest.fixture
def limited(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SquallProcess]:
    """Squall with the extra limits the test passes (indirect parametrization)."""
    extra = "\n".join(f"{k} = {v}" for k, v in request.param.items())
    sp = start_squall(tmp_path, extra + "\n" + CONFIG)
    yield sp
    sp.stop()


@pytest.mark.parametrize(
    "errors, disconnects, words",
    [
        ({"publish:103": 5}, {}, ["allow_publish_for", "--publish-via api"]),
        ({"subscribe:103": 5}, {}, ["allow_subscribe_for_client"]),
        ({"publish:111": 5}, {}, ["client_command_rate_limit", "--publish-via api"]),
        ({}, {"3013": 2}, ["client_command_rate_limit"]),
        ({}, {"3504": 2}, ["client_connection_limit", "client_user_connection_limit"]),
        ({"connect:http-503": 7}, {}, ["client_connection_rate_limit", "--ramp"]),
        ({"publish:-2": 4}, {}, ["disconnect"]),
        ({"connect:102": 1}, {}, ["--namespace"]),
    ],
)
def test_each_refusal_code_gets_one_line_with_the_fix(errors: dict[str, int], disconnects: dict[str, int], words: list[str]) -> None:
    """Every code the issue names maps to one line saying what it means and which setting or flag to change."""
    ((label, line),) = explain(errors, disconnects)
    assert str(next(iter({**errors, **disconnects}.values()))) in label
    assert "\n" not in line
    for w in words:
        assert w in line


def test_unknown_codes_are_not_explained() -> None:
    """A code the tool does not know gets no invented explanation."""
    assert explain({"publish:999": 1}, {"4999": 1}) == []


@pytest.mark.slow
def test_publish_refused_on_a_backend_only_namespace_then_api_publishes(squall: SquallProcess, run_tool: RunTool) -> None:
    """Client publishes to a subscribe-only namespace are 103, explained; --publish-via api delivers them all."""
    url = ["--url", squall.ws_url, "--namespace", "feed"]
    rc, s = run_tool("broadcast", *url, "--subscribers", "20", "--rate", "50", "--duration", "1")
    assert rc == 1 and s["errors"].get("publish:103", 0) > 0 and s["published"] == 0
    labels = [label for label, _ in s["explanations"]]
    assert any(label.startswith("publish:103") for label in labels)
    assert "--publish-via api" in table(s)
    page = html_report(s, check_thresholds(s, "0", 0))  # a failed run's page: the verdict, no empty latency section
    assert 'class="verdict fail">FAIL' in page and "errors " in page and "--publish-via api" in page
    assert "no latency to show" in page and "End-to-end latency per second" not in page
    rc, s = run_tool("broadcast", *url, "--subscribers", "20", "--rate", "50", "--duration", "1",
                     "--publish-via", "api", "--api-key", API_KEY)
    assert rc == 0, s["errors"]
    assert s["published"] >= 40 and s["loss"] == 0 and s["deliveries"] == s["published"] * 20
    assert s["out_of_order"] == 0 and s["explanations"] == []


@pytest.mark.slow
def test_api_publish_with_a_wrong_key_is_explained(squall: SquallProcess, run_tool: RunTool) -> None:
    """A wrong --api-key is publish:http-401, explained as the API refusing the key."""
    rc, s = run_tool("broadcast", "--url", squall.ws_url, "--namespace", "feed", "--subscribers", "2",
                     "--rate", "20", "--duration", "0.5", "--publish-via", "api", "--api-key", "wrong")
    assert rc == 1 and s["errors"].get("publish:http-401", 0) > 0
    assert any("api_key" in text for _, text in s["explanations"])


@pytest.mark.slow
@pytest.mark.parametrize("limited", [{"client_command_rate_limit": 20, "client_command_burst": 5}], indirect=True)
def test_command_rate_limit_refusals_are_explained(limited: SquallProcess, run_tool: RunTool) -> None:
    """Publishing faster than the command rate limit gives 111 and 3013, each explained naming the limit."""
    rc, s = run_tool("broadcast", "--url", limited.ws_url, "--namespace", "open", "--subscribers", "5",
                     "--rate", "0", "--duration", "1", "--drain", "2")
    assert rc == 1
    assert s["errors"].get("publish:111", 0) > 0 or s["disconnects"].get("3013", 0) > 0, s["errors"]
    texts = " ".join(text for _, text in s["explanations"])
    assert "client_command_rate_limit" in texts


@pytest.mark.slow
@pytest.mark.parametrize("limited", [{"client_connection_rate_limit": 5}], indirect=True)
def test_connection_rate_limit_503_is_counted_and_explained(limited: SquallProcess, run_tool: RunTool) -> None:
    """WebSocket upgrades refused with HTTP 503 are connect:http-503 (the run goes on), explained naming --ramp."""
    rc, s = run_tool("idle", "--url", limited.ws_url, "--namespace", "open", "--connections", "40", "--duration", "0.5")
    assert rc == 1 and s["errors"].get("connect:http-503", 0) > 0 and s["connects"] > 0
    texts = " ".join(text for _, text in s["explanations"])
    assert "client_connection_rate_limit" in texts and "--ramp" in texts


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_gives_a_partial_summary_not_a_traceback(squall: SquallProcess, workers: str, tmp_path: Path) -> None:
    """SIGINT to the tool's process group (Ctrl-C) mid-run prints the partial table, INTERRUPTED, exit 130."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "loadtest", "broadcast", "--url", squall.ws_url, "--namespace", "open",
         "--subscribers", "10", "--rate", "20", "--duration", "60", "--workers", workers, "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        time.sleep(3.0)  # connected and publishing
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "INTERRUPTED" in out and "Ctrl-C in the run phase" in out
    assert "deliveries" in out and "interrupted in the run phase" in err


@pytest.mark.slow
@pytest.mark.parametrize("limited", [{"client_connection_limit": 5}], indirect=True)
def test_connection_limit_3504_is_explained(limited: SquallProcess, run_tool: RunTool) -> None:
    """Connections over client_connection_limit end with 3504, explained naming the limits to raise."""
    rc, s = run_tool("idle", "--url", limited.ws_url, "--namespace", "open", "--connections", "12", "--duration", "0.5")
    assert rc == 1
    refused = s["disconnects"].get("3504", 0) + sum(v for k, v in s["errors"].items() if k.endswith(":3504"))
    assert refused >= 7, (s["errors"], s["disconnects"])
    texts = " ".join(text for _, text in s["explanations"])
    assert "client_connection_limit" in texts
