"""Property-based fuzzing of the command dispatcher: a ClientSession on an in-memory wire and the real hub.

The only outcomes allowed are error replies with documented codes (never 100,
which would mean an exception reached the catch-all) or documented disconnect
codes; nothing escapes ``handle_frame``, and every example leaves the hub and
the connection counters as it found them (no state, so no memory, left behind).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Hashable

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.types import HistoryQuery
from handlers.protocol import Codec, codec_for, decode_reply_stream
from handlers.session import ClientSession
from server.app import Squall, build
from server.settings import load
from tests.helpers.fuzz import command, json_frame, msgpack_extras, msgpack_frame
from tests.helpers.squall_process import test_config, to_toml

REPLY_CODES = {101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112}
DISCONNECT_CODES = {3500, 3501, 3504, 3506, 3013}
EXAMPLES = 400


class MemoryWire:
    """A Wire that keeps what the session writes; a fake transport, not a fake backend."""

    def __init__(self, fmt: str) -> None:
        self.codec: Codec = codec_for(fmt)
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    @property
    def key(self) -> Hashable:
        return ("mem", self.codec.name)

    def frame(self, payload: bytes) -> bytes:
        return payload

    def write(self, data: bytes, conflate: str | None = None) -> None:
        self.written.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


OUTCOMES: dict[str, int] = {}


def check_output(wire: MemoryWire) -> None:
    for data in wire.written:
        for msg in decode_reply_stream(data, wire.codec.name):
            assert isinstance(msg, dict)
            if "error" in msg:
                assert msg["error"]["code"] in REPLY_CODES, msg
                key = f"error {msg['error']['code']}"
            elif "id" in msg:
                key = "ok " + next((k for k in msg if k != "id"), "?")
            else:
                key = "push"
            OUTCOMES[key] = OUTCOMES.get(key, 0) + 1
    if wire.closed is not None:
        assert wire.closed[0] in DISCONNECT_CODES, wire.closed
        key = f"disconnect {wire.closed[0]} {wire.closed[1][:25]}"
        OUTCOMES[key] = OUTCOMES.get(key, 0) + 1


def delivered_offsets(wire: MemoryWire, channel: str) -> set[int]:
    out = set()
    for data in wire.written:
        for msg in decode_reply_stream(data, wire.codec.name):
            push = msg.get("push") or {}
            if push.get("channel") == channel and "pub" in push:
                out.add(push["pub"]["offset"])
    return out


async def run_example(sq: Squall, fmt: str, frames: list[bytes], connect_first: bool) -> None:
    ctx = sq.ctx
    top = (await ctx.hub.history("chat:a", HistoryQuery(limit=0))).position
    observer_wire = MemoryWire("json")
    observer = ClientSession(ctx, observer_wire, "127.0.0.2")  # type: ignore[arg-type]
    observer.opened()
    await observer.handle_frame(b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"chat:a"}}\n'
                                b'{"id":3,"subscribe":{"channel":"live:b"}}')
    wire = MemoryWire(fmt)
    session = ClientSession(ctx, wire, "127.0.0.1")  # type: ignore[arg-type]
    session.opened()
    if connect_first:
        await session.handle_frame(orjson.dumps({"id": 4000000000, "connect": {}}) if fmt == "json"
                                   else msgpack.packb({"id": 4000000000, "connect": {}}))
    for frame in frames:
        await session.handle_frame(frame)  # must never raise
    check_output(wire)
    check_output(observer_wire)  # fan-out of whatever was published reached a JSON client intact
    assert observer_wire.closed is None
    # every publication stored in chat:a during the example reached the observer
    stored = await ctx.hub.history("chat:a", HistoryQuery(limit=-1, since=top))
    assert {p.offset for p in stored.publications} == delivered_offsets(observer_wire, "chat:a")
    await session.closed_by_peer()
    await observer.closed_by_peer()
    await ctx.hub.drain_background()
    hub = ctx.hub
    assert hub.num_clients == 0 and hub.num_channels == 0 and hub.num_subscriptions == 0
    assert ctx.limiter.total == 0 and hub.inflight == 0
    assert not hub.local_presence()


def make_squall(tmp: Path) -> Squall:
    path = tmp / "fuzz.toml"
    path.write_text(to_toml(test_config(token_hmac_secret_key="fuzz-secret-0123456789-abcdefghij")))
    return build(load(str(path), environ={}))


COUNTS = {"json": 0, "msgpack": 0}


def test_dispatcher_fuzz(tmp_path: Path) -> None:
    """Random command frames in both formats: only documented replies or disconnects, no leaks."""
    loop = asyncio.new_event_loop()
    sq = make_squall(tmp_path)
    loop.run_until_complete(sq.start())

    def frames_of(fmt: str, extra: Any, wild_share: int) -> st.SearchStrategy[tuple[str, list[list[dict[str, Any]]]]]:
        batches = st.lists(st.lists(command(extra, wild_share), min_size=1, max_size=3), min_size=1, max_size=5)
        return st.tuples(st.just(fmt), batches)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        case=st.one_of(
            frames_of("json", None, 0),  # well-formed commands, hostile values: deep in the handlers
            frames_of("msgpack", None, 0),
            frames_of("json", None, 8),  # plus malformed commands
            frames_of("msgpack", msgpack_extras, 8),  # plus binaries, ext types, binary keys
        ),
        connect_first=st.sampled_from([True] * 9 + [False]),
    )
    def run(case: tuple[str, list[list[dict[str, Any]]]], connect_first: bool) -> None:
        fmt, batches = case
        frames = []
        for cmds in batches:
            frame = json_frame(cmds) if fmt == "json" else msgpack_frame(cmds)
            if frame is not None:
                frames.append(frame)
        COUNTS[fmt] += 1
        loop.run_until_complete(asyncio.wait_for(run_example(sq, fmt, frames, connect_first), 10))

    try:
        run()
    finally:
        loop.run_until_complete(sq.close())
        loop.close()
    print(f"\nfuzz case counts (dispatcher): {COUNTS}; outcomes: {dict(sorted(OUTCOMES.items()))}")
    assert sum(COUNTS.values()) >= EXAMPLES // 2

