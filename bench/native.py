"""Build and run ``bench/native_broadcast.c``, the broadcast load generator in C.

Why a second load generator: to show what a second server process adds on a
2-core machine, the load must cost a small fraction of a core. The Python
load tester spends about as much CPU per delivery as the server; this one,
reading each socket in batches (``SO_RCVLOWAT``) and only walking frame
headers, spends roughly a tenth (docs/LOADTEST.md). It measures throughput,
loss and its own CPU; latency stays the Python tester's job.

The binary is compiled with the system's ``cc`` on first use and cached under
the temp directory, named by the source's hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

SOURCE = Path(__file__).with_name("native_broadcast.c")


def build(cache: Path | None = None) -> Path:
    """The compiled generator, built once per version of its source."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("bench/native_broadcast.c needs a C compiler (cc) on PATH")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    folder = cache or Path(tempfile.gettempdir()) / "squall-bench"
    exe = folder / f"native_broadcast-{digest}"
    if not exe.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{exe.name}.{threading.get_ident()}.tmp"
        done = subprocess.run([cc, "-O2", "-Wall", "-o", str(partial), str(SOURCE)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cc failed on {SOURCE.name}:\n{done.stderr}")
        partial.replace(exe)
    return exe


@dataclass(frozen=True)
class Broadcast:
    """One run: ``subscribers`` sockets on ``channel``, one publisher at most
    ``window`` publications ahead of the slowest of them."""

    port: int
    subscribers: int = 5000
    channel: str = "bench:native"
    window: int = 64
    batch: int = 16  # frames a subscriber lets pile up before it reads (1 = read at once)
    size: int = 100  # bytes of publication data
    duration: float = 15.0  # publishing time; the measured interval is duration - warmup
    warmup: float = 3.0
    drain: float = 10.0  # longest wait for the last deliveries after publishing stops

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port), "--subscribers", str(self.subscribers), "--channel", self.channel,
            "--window", str(self.window), "--batch", str(self.batch), "--size", str(self.size),
            "--duration", str(self.duration), "--warmup", str(self.warmup), "--drain", str(self.drain),
        ]


def run(spec: Broadcast, on_mark: Callable[[str], None] | None = None, exe: Path | None = None) -> dict[str, Any]:
    """Run the generator to its end; ``on_mark`` hears "start" and "end" of the measured interval.

    The result is the generator's JSON plus ``exit_code`` (0 only with every
    subscriber ready and alive, nothing lost and no publish refused).
    """
    binary = exe or build()
    proc = subprocess.Popen([str(binary), *spec.argv()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The generator bounds itself (setup, duration, drain); this only guards a hang.
    limit = 180.0 + spec.duration + spec.drain
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    result: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("MARK "):
                if on_mark is not None:
                    on_mark(line.split()[1])
            elif line.strip():
                result = json.loads(line)
        code = proc.wait()
        stderr = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        raise RuntimeError(f"native_broadcast printed no result (exit {code}): {stderr.strip()}")
    result["exit_code"] = code
    return result
