"""The bench baseline servers as real subprocesses on free 127.0.0.1 ports, stopped by PID."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.helpers.squall_process import ROOT, free_port


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
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{module} exited with {proc.returncode}")
        try:
            b.stats()
            return b
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{module} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
