"""The bench baseline servers as real subprocesses on free 127.0.0.1 ports, stopped by PID."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

from tests.helpers.procs import free_port, stop_process, wait_http
from tests.helpers.squall_process import ROOT


@dataclass
class Baseline:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stats"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.stats_url, timeout=5) as r:
            data: dict[str, int] = json.loads(r.read())
            return data


def start_baseline(module: str, *extra: str) -> Baseline:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *extra],
        cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    b = Baseline(port, proc)
    try:
        wait_http(b.stats_url, 15, proc)
    except (RuntimeError, TimeoutError) as e:
        stop_process(proc)
        raise RuntimeError(f"{module} did not start: {e}") from None
    return b
