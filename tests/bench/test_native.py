"""The C load generators count exactly: every delivery and connection against Squall, loss and refusals when they happen."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from bench import native, suite
from loadtest.serverstats import prometheus_sample
from tests.helpers.baselines import start_baseline
from tests.helpers.procs import stop_process
from tests.helpers.squall_process import ROOT, SquallProcess, start_squall


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broadcast generator compiled into this test run's own folder."""
    return native.build(tmp_path_factory.mktemp("native"))


@pytest.fixture(scope="module")
def chat_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chat generator compiled into this test run's own folder."""
    return native.build(tmp_path_factory.mktemp("native_chat"), program="native_chat")


@pytest.fixture(scope="module")
def idle_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The idle generator compiled into this test run's own folder."""
    return native.build(tmp_path_factory.mktemp("native_idle"), program="native_idle")


@pytest.fixture(scope="module")
def publish_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The publish generator compiled into this test run's own folder."""
    return native.build(tmp_path_factory.mktemp("native_publish"), program="native_publish")


@pytest.fixture(scope="module")
def squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    """Squall with bench/squall.toml (open namespace "bench")."""
    sp = start_squall(tmp_path_factory.mktemp("squall"), (ROOT / "bench" / "squall.toml").read_text())
    yield sp
    sp.stop()


def short(port: int, *, subscribers: int = 40, batch: int = 1, channel: str = "bench:native",
          drain: float = 5.0, format: str = "json") -> native.Broadcast:
    return native.Broadcast(port=port, subscribers=subscribers, channel=channel, window=8, batch=batch,
                            duration=1.5, warmup=0.5, drain=drain, format=format)


@pytest.mark.parametrize("batch", [1, 4])
def test_every_publication_reaches_every_subscriber(exe: Path, squall: SquallProcess, batch: int) -> None:
    """Each subscriber gets each acknowledged publication once; batched reads (SO_RCVLOWAT) lose nothing."""
    marks: list[str] = []
    r = native.run(short(squall.port, batch=batch, channel=f"bench:n{batch}"), marks.append, exe)
    assert r["exit_code"] == 0, r
    assert marks == ["start", "end"]
    assert r["ready"] == r["live"] == 40
    assert r["published"] > 8 and r["acked"] == r["published"]
    assert r["deliveries"] == r["expected"] == r["published"] * 40
    assert r["loss"] == 0 and r["extra"] == 0 and r["closes"] == 0
    assert 0 < r["measured_deliveries"] <= r["deliveries"]
    assert r["deliveries_per_s"] == pytest.approx(r["measured_deliveries"] / r["measured_seconds"], rel=1e-3)


def test_loss_is_counted_and_fails_the_run(exe: Path) -> None:
    """A server that skips every 7th delivery: the run reports the missing ones and exits non-zero."""
    b = start_baseline("bench.baseline_asyncio", "--drop-every", "7")
    try:
        r = native.run(short(b.port, subscribers=14, drain=1.0), None, exe)
    finally:
        stop_process(b.proc)
    assert r["exit_code"] == 1
    assert r["published"] > 0
    assert r["loss"] == r["expected"] - r["deliveries"] > 0


def test_refused_subscriptions_fail_the_run(exe: Path, squall: SquallProcess) -> None:
    """Subscribing to an unknown namespace is refused: nobody is ready, nothing is published, exit non-zero."""
    r = native.run(short(squall.port, subscribers=5, channel="nowhere:x"), None, exe)
    assert r["exit_code"] == 1
    assert r["reply_errors"] == 5
    assert r["ready"] == 0 and r["published"] == 0


def server_deliveries(sp: SquallProcess) -> float:
    with urllib.request.urlopen(f"{sp.url}/metrics", timeout=5) as resp:
        return prometheus_sample(resp.read().decode(), "squall_deliveries_total") or 0.0


@pytest.mark.parametrize("batch", [1, 4])
def test_protobuf_mode_every_publication_reaches_every_subscriber(exe: Path, squall: SquallProcess, batch: int) -> None:
    """--format protobuf (subprotocol centrifuge-protobuf, binary frames): every acknowledged publication reaches
    every subscriber once, counted from the protobuf pushes."""
    before = server_deliveries(squall)
    r = native.run(short(squall.port, batch=batch, channel=f"bench:pb{batch}", format="protobuf"), None, exe)
    assert r["exit_code"] == 0, r
    assert r["format"] == "protobuf" and r["handshake_failures"] == 0
    assert r["ready"] == r["live"] == 40
    assert r["published"] > 8 and r["acked"] == r["published"] and r["publish_errors"] == 0
    assert r["deliveries"] == r["expected"] == r["published"] * 40
    assert r["loss"] == 0 and r["extra"] == 0 and r["closes"] == 0
    assert server_deliveries(squall) - before >= r["deliveries"]  # the server counted them too


def test_protobuf_mode_counts_refusals(exe: Path, squall: SquallProcess) -> None:
    """Protobuf error replies are read as errors: a refused subscribe fails the run."""
    r = native.run(short(squall.port, subscribers=5, channel="nowhere:x", format="protobuf"), None, exe)
    assert r["exit_code"] == 1
    assert r["reply_errors"] == 5 and r["handshake_failures"] == 0
    assert r["ready"] == 0 and r["published"] == 0


def test_protobuf_mode_needs_the_answered_subprotocol(exe: Path) -> None:
    """A server that does not answer centrifuge-protobuf (the asyncio baseline, JSON only) is a handshake failure."""
    b = start_baseline("bench.baseline_asyncio")
    try:
        r = native.run(short(b.port, subscribers=5, drain=1.0, format="protobuf"), None, exe)
    finally:
        stop_process(b.proc)
    assert r["exit_code"] == 1
    assert r["handshake_failures"] == 6 and r["ready"] == 0  # the publisher too


def test_build_names_the_binary_by_source_hash(tmp_path: Path) -> None:
    """A second build reuses the first binary; the name carries the source's hash."""
    first = native.build(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert first.name.startswith("native_broadcast-") and len(first.name) == len("native_broadcast-") + 12
    chat = native.build(tmp_path, program="native_chat")
    assert chat.name.startswith("native_chat-") and chat != first


def short_chat(port: int, *, rooms: int = 6, members: int = 5, namespace: str = "bench") -> native.Chat:
    return native.Chat(port=port, rooms=rooms, members=members, rate=10, namespace=namespace, duration=1.5,
                       warmup=0.5, drain=3.0)


def test_chat_every_member_gets_its_room_once_with_latency(chat_exe: Path, squall: SquallProcess) -> None:
    """Each member gets every publication of its own room (its own included) once; each one is timed."""
    marks: list[str] = []
    r = native.run(short_chat(squall.port), marks.append, chat_exe)
    assert r["exit_code"] == 0, r
    assert marks == ["start", "end"]
    assert r["ready"] == r["live"] == r["connections"] == 30
    # 30 members at 10/s for 1.5 s: at most 450 publications, each to the 5 members of one room
    assert 100 <= r["published"] <= 450 and r["acked"] == r["published"]
    assert r["deliveries"] == r["expected"] == r["published"] * 5
    assert r["loss"] == 0 and r["gaps"] == 0 and r["extra"] == 0 and r["closes"] == 0
    lat, warm = r["latency_ms"], r["latency_warmup_ms"]
    assert lat["count"] + warm["count"] == r["deliveries"]
    assert lat["count"] > 0 and warm["count"] > 0  # split by send time at the warm-up's end
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_chat_counts_loss_against_a_dropping_server(chat_exe: Path) -> None:
    """A server that skips every 7th delivery: the gaps are counted as loss and the run exits non-zero."""
    b = start_baseline("bench.baseline_asyncio", "--drop-every", "7")
    try:
        r = native.run(native.Chat(port=b.port, rooms=3, members=4, rate=10, duration=1.5, warmup=0.5, drain=1.0),
                       None, chat_exe)
    finally:
        stop_process(b.proc)
    assert r["exit_code"] == 1
    assert r["published"] > 0 and r["gaps"] > 0
    assert r["loss"] == r["expected"] - r["deliveries"] > 0
    # about one delivery in seven is missing
    assert 0.08 < r["loss"] / r["expected"] < 0.2


def test_chat_refused_subscriptions_fail_the_run(chat_exe: Path, squall: SquallProcess) -> None:
    """Rooms in an unknown namespace are refused: nobody publishes, the run exits non-zero."""
    r = native.run(short_chat(squall.port, rooms=2, members=3, namespace="nowhere"), None, chat_exe)
    assert r["exit_code"] == 1
    assert r["reply_errors"] == 6
    assert r["ready"] == 0 and r["published"] == 0


def squall_gauges(port: int, want: dict[str, float], timeout: float = 5.0) -> dict[str, float | None]:
    """Squall's own gauges from /metrics, polled until they equal ``want`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        got = {name: prometheus_sample(text, name) for name in want}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_idle_opens_every_connection_with_its_subscriptions(idle_exe: Path, squall: SquallProcess) -> None:
    """60 connections through 8 setup slots: all ready, each in 2 channels of a pool of 7 (Squall's gauges agree)."""
    marks: list[str] = []
    seen: dict[str, float | None] = {}

    def on_mark(name: str) -> None:
        marks.append(name)
        if name == "connected":  # the hold keeps every connection open while Squall is asked
            seen.update(squall_gauges(squall.port, {"squall_connections": 60, "squall_subscriptions": 120,
                                                    "squall_channels": 7}))

    spec = native.Idle(port=squall.port, connections=60, per_client=2, pool=7, concurrency=8, duration=1.0)
    r = native.run(spec, on_mark, idle_exe)
    assert r["exit_code"] == 0, r
    assert marks == ["start", "connected", "end"]
    assert seen == {"squall_connections": 60, "squall_subscriptions": 120, "squall_channels": 7}
    assert r["ready"] == r["live"] == 60 and r["closes"] == 0
    assert r["reply_errors"] == r["connect_failures"] == r["handshake_failures"] == 0
    assert r["connect_rate"] == pytest.approx(60 / r["connect_seconds"], rel=0.01)
    assert r["connect_time_ms"]["count"] == 60
    assert 0 < r["connect_time_ms"]["p50"] <= r["connect_time_ms"]["max"]
    assert r["hold_seconds"] >= 1.0


def test_idle_answers_pings_through_the_hold(idle_exe: Path, tmp_path: Path) -> None:
    """Against a Squall pinging every second with a 1 s pong timeout, nobody is dropped for a missed pong (3012)."""
    config = (ROOT / "bench" / "squall.toml").read_text().replace("ping_interval = 25", "ping_interval = 1\npong_timeout = 1")
    sp = start_squall(tmp_path, config)
    try:
        r = native.run(native.Idle(port=sp.port, connections=20, duration=3.5), None, idle_exe)
    finally:
        sp.stop()
    assert r["exit_code"] == 0, r
    assert r["live"] == 20 and r["closes"] == 0
    assert r["pings"] >= 20 * 2  # at least two rounds each in 3.5 s


def test_idle_lingers_until_the_caller_has_read_the_end(idle_exe: Path, squall: SquallProcess) -> None:
    """With linger, every connection is still open a second after "end" (run() has not closed stdin yet); then it goes."""
    seen: dict[str, float | None] = {}

    def on_mark(name: str) -> None:
        if name == "end":
            time.sleep(1.0)  # without linger the generator has exited and its sockets are closed by now
            seen.update(squall_gauges(squall.port, {"squall_connections": 30}))

    spec = native.Idle(port=squall.port, connections=30, per_client=1, duration=0.2, linger=20.0)
    t0 = time.monotonic()
    r = native.run(spec, on_mark, idle_exe)
    assert time.monotonic() - t0 < 15.0  # stdin closed after "end": it did not linger the whole 20 s
    assert r["exit_code"] == 0, r
    assert seen == {"squall_connections": 30}
    assert suite.wait_disconnected(squall.port, 10.0) is not None


def test_idle_refused_subscriptions_fail_the_run(idle_exe: Path, squall: SquallProcess) -> None:
    """Channels in an unknown namespace are refused: each connection counts one error and closes, exit non-zero."""
    r = native.run(native.Idle(port=squall.port, connections=10, namespace="nowhere", duration=0.2), None, idle_exe)
    assert r["exit_code"] == 1
    assert r["reply_errors"] == 10
    assert r["ready"] == r["live"] == 0


@pytest.mark.parametrize("argv", [["--port", "1", "--bogus", "2"], ["--port", "1", "--connections"], []])
def test_bad_flags_print_usage_and_exit_2(idle_exe: Path, argv: list[str]) -> None:
    """An unknown flag, a flag without its value, or no --port: usage on stderr, exit 2, no connection tried."""
    done = subprocess.run([str(idle_exe), *argv], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "usage:" in done.stderr or "need --port" in done.stderr
    assert done.stdout == ""


def server_publications(sp: SquallProcess) -> float:
    with urllib.request.urlopen(f"{sp.url}/metrics", timeout=5) as resp:
        return prometheus_sample(resp.read().decode(), "squall_publications_total") or 0.0


def test_publish_closed_loops_get_every_reply(publish_exe: Path, squall: SquallProcess) -> None:
    """20 closed loops make exactly 300 publishes, each answered ok with its own id; Squall counted 300 publications."""
    before = server_publications(squall)
    marks: list[str] = []
    spec = native.Publish(port=squall.port, connections=20, channels=7, publications=300, duration=20.0, drain=2.0)
    r = native.run(spec, marks.append, publish_exe)
    assert r["exit_code"] == 0, r
    assert marks == ["start", "end"]
    assert r["ready"] == r["live"] == 20 and r["closes"] == 0
    assert r["sent"] == r["ok"] == r["acked"] == r["measured_ok"] == r["measured_replies"] == 300
    assert r["errors"] == r["wrong_ids"] == r["lost"] == r["extra"] == r["in_flight"] == 0
    assert r["rate"] == pytest.approx(300 / r["seconds"], rel=1e-3)
    assert server_publications(squall) - before == 300


def test_publish_refusals_are_counted_and_fail_the_run(publish_exe: Path, squall: SquallProcess) -> None:
    """Publishing into an unknown namespace: every reply is an error (still one per publish), none ok, exit non-zero."""
    spec = native.Publish(port=squall.port, connections=5, channels=2, publications=40, namespace="nowhere",
                          duration=10.0, drain=2.0)
    r = native.run(spec, None, publish_exe)
    assert r["exit_code"] == 1
    assert r["sent"] == r["errors"] == 40
    assert r["ok"] == 0 and r["wrong_ids"] == 0 and r["in_flight"] == 0
