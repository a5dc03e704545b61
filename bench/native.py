"""Build and run the load generators in C: ``bench/native_broadcast.c``,
``bench/native_chat.c``, ``bench/native_idle.c`` and ``bench/native_publish.c``
(all on the plumbing of ``bench/native_ws.h``).

Why load generators in C: on a 2-core machine the load must cost a small
fraction of a core, or it competes with the server it measures. The Python
load tester spends about as much CPU per delivery as the server. The
broadcast generator, reading each socket in batches (``SO_RCVLOWAT``) and
only walking frame headers, spends roughly a tenth (docs/LOADTEST.md); it
measures throughput and loss, in Centrifugo's JSON form or, with
``Broadcast(format="protobuf")``, its protobuf form (``bench/formats.py``
compares the two). The chat generator reads each frame as it
lands and measures latency too, at 6-9 µs of CPU per delivery in `bench/run`'s chat.
The idle generator opens connections as fast as the server takes them and
holds them; it measures the setup rate, for which the Python tester's own
cost per connection (about the server's) was the limit.
The publish generator has unsubscribed clients publish in a closed loop (one
publish in flight per connection); it measures what client publishes reach
(``bench/redis_publish.py``'s client side).

Each binary is compiled with the system's ``cc`` on first use and cached under
the temp directory, named by the hash of its source and the shared headers.
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
from typing import Any, Callable, ClassVar, Protocol, Sequence

HERE = Path(__file__).parent
HEADERS = (HERE / "native_ws.h", HERE / "native_hist.h")


def build(cache: Path | None = None, program: str = "native_broadcast") -> Path:
    """The compiled generator ``program`` (a .c file here), built once per version of its source."""
    cc = shutil.which("cc") or shutil.which("gcc")
    source = HERE / f"{program}.c"
    if cc is None:
        raise RuntimeError(f"bench/{source.name} needs a C compiler (cc) on PATH")
    digest = hashlib.sha256(source.read_bytes() + b"".join(h.read_bytes() for h in HEADERS)).hexdigest()[:12]
    folder = cache or Path(tempfile.gettempdir()) / "squall-bench"
    exe = folder / f"{program}-{digest}"
    if not exe.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{exe.name}.{threading.get_ident()}.tmp"
        done = subprocess.run([cc, "-O2", "-Wall", "-o", str(partial), str(source)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cc failed on {source.name}:\n{done.stderr}")
        partial.replace(exe)
    return exe


SETUP_TIMEOUT = 120.0  # the broadcast and chat generators' own bound on opening their connections


class Spec(Protocol):
    program: ClassVar[str]

    @property
    def longest(self) -> float:
        """Seconds the generator takes at most, by its own bounds."""
        ...

    def argv(self) -> list[str]: ...


@dataclass(frozen=True)
class Broadcast:
    """One run: ``subscribers`` sockets on ``channel``, one publisher at most
    ``window`` publications ahead of the slowest of them."""

    program: ClassVar[str] = "native_broadcast"
    port: int
    subscribers: int = 5000
    channel: str = "bench:native"
    window: int = 64
    batch: int = 16  # frames a subscriber lets pile up before it reads (1 = read at once)
    size: int = 100  # bytes of publication data
    duration: float = 15.0  # publishing time; the measured interval is duration - warmup
    warmup: float = 3.0
    drain: float = 10.0  # longest wait for the last deliveries after publishing stops
    format: str = "json"  # or "protobuf": subprotocol centrifuge-protobuf, binary frames

    @property
    def longest(self) -> float:
        return SETUP_TIMEOUT + self.duration + self.drain

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port), "--subscribers", str(self.subscribers), "--channel", self.channel,
            "--window", str(self.window), "--batch", str(self.batch), "--size", str(self.size),
            "--duration", str(self.duration), "--warmup", str(self.warmup), "--drain", str(self.drain),
            "--format", self.format,
        ]


@dataclass(frozen=True)
class Chat:
    """One run: ``rooms`` x ``members`` sockets, each member publishing ``rate``
    times a second to its room, open-loop on a fixed schedule."""

    program: ClassVar[str] = "native_chat"
    port: int
    rooms: int = 200
    members: int = 10
    rate: float = 2.0  # publications per second per member
    namespace: str = "bench"
    size: int = 100  # bytes of publication data
    duration: float = 20.0  # publishing time; latency of the first ``warmup`` seconds is reported apart
    warmup: float = 2.0
    drain: float = 10.0

    @property
    def longest(self) -> float:
        return SETUP_TIMEOUT + self.duration + self.drain

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port), "--rooms", str(self.rooms), "--members", str(self.members),
            "--rate", str(self.rate), "--namespace", self.namespace, "--size", str(self.size),
            "--duration", str(self.duration), "--warmup", str(self.warmup), "--drain", str(self.drain),
        ]


@dataclass(frozen=True)
class Idle:
    """One run: ``connections`` sockets opened as fast as the server takes them
    (at most ``concurrency`` in setup at once), each subscribed to
    ``per_client`` channels of a pool, then held ``duration`` seconds."""

    program: ClassVar[str] = "native_idle"
    port: int
    connections: int = 10000
    per_client: int = 2
    pool: int = 0  # channels shared by all (0 = connections / 10, as the Python tester's idle)
    concurrency: int = 128
    namespace: str = "bench"
    duration: float = 10.0  # idle hold after the last connection is ready
    setup_timeout: float = 120.0
    linger: float = 0.0  # after the hold, connections stay open until run() has heard "end" (at most this long)

    @property
    def longest(self) -> float:
        return self.setup_timeout + self.duration + self.linger

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port), "--connections", str(self.connections), "--per-client", str(self.per_client),
            "--pool", str(self.pool), "--concurrency", str(self.concurrency), "--namespace", self.namespace,
            "--duration", str(self.duration), "--setup-timeout", str(self.setup_timeout), "--linger", str(self.linger),
        ]


@dataclass(frozen=True)
class Publish:
    """One run: ``connections`` unsubscribed sockets, each publishing to ``namespace:c<k mod channels>`` and
    awaiting the reply before its next, until ``publications`` replies or ``duration`` seconds."""

    program: ClassVar[str] = "native_publish"
    port: int
    connections: int = 200
    channels: int = 100
    publications: int = 40000
    namespace: str = "stream"
    duration: float = 60.0  # hard bound on the publishing; the run normally ends at ``publications``
    drain: float = 10.0  # longest wait for the replies in flight when the duration ran out

    @property
    def longest(self) -> float:
        return SETUP_TIMEOUT + self.duration + self.drain

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port), "--connections", str(self.connections), "--channels", str(self.channels),
            "--publications", str(self.publications), "--namespace", self.namespace,
            "--duration", str(self.duration), "--drain", str(self.drain),
        ]


def run(spec: Spec, on_mark: Callable[[str], None] | None = None, exe: Path | None = None,
        prefix: Sequence[str] = ()) -> dict[str, Any]:
    """Run the generator to its end; ``on_mark`` hears each ``MARK`` line's name as it comes
    ("start" and "end" of the measured interval; the idle generator's "connected" between).

    ``prefix`` goes before the command (e.g. ``taskset -c 1``).

    The generator's stdin is closed once ``on_mark("end")`` has returned: an
    idle generator with ``linger`` holds its connections until then, so what
    ``on_mark`` reads from the server at "end" is not disturbed by them closing.

    The result is the generator's JSON plus ``exit_code`` (0 only with every
    client ready and alive, nothing lost and no publish refused; the publish
    generator also needs all its publications answered).
    """
    binary = exe or build(program=spec.program)
    proc = subprocess.Popen([*prefix, str(binary), *spec.argv()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # The generator bounds itself (setup, duration, drain); this only guards a hang.
    limit = 60.0 + spec.longest
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    result: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("MARK "):
                name = line.split()[1]
                if on_mark is not None:
                    on_mark(name)
                if name == "end" and proc.stdin is not None:
                    proc.stdin.close()
            elif line.strip():
                result = json.loads(line)
        code = proc.wait()
        stderr = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        watchdog.cancel()
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        raise RuntimeError(f"{spec.program} printed no result (exit {code}): {stderr.strip()}")
    result["exit_code"] = code
    return result
