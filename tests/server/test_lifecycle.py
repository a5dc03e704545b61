"""Starting a node: a port that is already taken is a clear error, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.helpers.squall_process import ROOT


def test_port_in_use_exits_1_with_a_clear_message() -> None:
    """`run.py serve` on a port another socket holds logs "cannot listen" with the reason and exits 1."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=str(ROOT), capture_output=True, text=True, timeout=60, check=False,
        )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out
    assert "Traceback" not in out and "Exception ignored" not in out
