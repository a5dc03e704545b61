"""Servers for the load-tester tests: the two bench baselines and Squall,
each a real subprocess on a free 127.0.0.1 port, stopped by its PID."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from loadtest.cli import main as loadtest_main
from tests.helpers.baselines import Baseline, start_baseline
from tests.helpers.procs import stop_process
from tests.helpers.squall_process import ROOT, SquallProcess, start_squall

BENCH_CONFIG = ROOT / "bench" / "squall.toml"


@pytest.fixture(scope="module")
def asyncio_baseline() -> Iterator[Baseline]:
    b = start_baseline("bench.baseline_asyncio")
    yield b
    stop_process(b.proc)


@pytest.fixture(scope="module")
def tornado_baseline() -> Iterator[Baseline]:
    b = start_baseline("bench.baseline_tornado")
    yield b
    stop_process(b.proc)


@pytest.fixture
def dropping_baseline() -> Iterator[Baseline]:
    """A baseline that skips every 7th delivery on purpose."""
    b = start_baseline("bench.baseline_asyncio", "--drop-every", "7")
    yield b
    stop_process(b.proc)


@pytest.fixture(scope="module")
def squall_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    """Squall with bench/squall.toml (namespaces bench and stream)."""
    sp = start_squall(tmp_path_factory.mktemp("squall"), BENCH_CONFIG.read_text())
    yield sp
    sp.stop()


RunTool = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def run_tool(tmp_path: Path) -> RunTool:
    """Run the load tester in this process; returns (exit status, JSON summary)."""

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        out = tmp_path / f"result-{time.monotonic_ns()}.json"
        rc = loadtest_main([*args, "--quiet", "--ramp", "0", "--json", str(out)])
        return rc, (json.loads(out.read_text()) if out.exists() else {})

    return run
