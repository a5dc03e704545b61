"""Property-based fuzzing of the protocol decoders: bytes in -> Commands or ProtocolError, nothing else."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.protocol import MAX_COMMANDS_PER_FRAME, MAX_ID, METHODS, Command, ProtocolError, decode_frame
from tests.helpers.fuzz import command, deep, json_frame, msgpack_extras, msgpack_frame

FMTS = ("json", "msgpack")
COUNTS: dict[str, int] = {}


def decode_or_error(data: bytes | str, fmt: str) -> list[Command] | None:
    """The decoder's contract: a list of well-formed Commands, or ProtocolError."""
    try:
        cmds = decode_frame(data, fmt)
    except ProtocolError:
        return None
    assert 0 < len(cmds) <= MAX_COMMANDS_PER_FRAME
    for c in cmds:
        assert isinstance(c, Command)
        assert isinstance(c.id, int) and not isinstance(c.id, bool) and 0 <= c.id <= MAX_ID
        assert c.method in METHODS or c.method in ("", "?")
        assert isinstance(c.params, dict)
    return cmds


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    """After the module: print how many cases each decoder property ran (quoted in docs/SECURITY.md)."""
    yield
    print("\nfuzz case counts (decoders):", COUNTS, "total", sum(COUNTS.values()))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512), fmt=st.sampled_from(FMTS))
def test_random_bytes(data: bytes, fmt: str) -> None:
    """Arbitrary bytes (invalid UTF-8 included) decode to commands or raise ProtocolError."""
    count("random bytes")
    decode_or_error(data, fmt)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cmds=st.lists(command(), min_size=1, max_size=4))
def test_random_json_commands(cmds: list[dict[str, Any]]) -> None:
    """Command-shaped JSON with wrong types, huge numbers and odd ids decodes or is refused."""
    count("json commands")
    decode_or_error(json_frame(cmds), "json")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cmds=st.lists(command(msgpack_extras), min_size=1, max_size=4))
def test_random_msgpack_commands(cmds: list[dict[str, Any]]) -> None:
    """Command-shaped msgpack with binaries, ext types and binary keys decodes or is refused."""
    frame = msgpack_frame(cmds)
    if frame is None:
        return
    count("msgpack commands")
    decode_or_error(frame, "msgpack")


@settings(max_examples=500, deadline=None)
@given(cmds=st.lists(command(), min_size=1, max_size=3), cut=st.integers(min_value=1, max_value=64))
def test_truncated_frames(cmds: list[dict[str, Any]], cut: int) -> None:
    """A valid frame cut short anywhere is never half-decoded into a partial command."""
    count("truncated frames")
    for fmt, frame in (("json", json_frame(cmds)), ("msgpack", msgpack_frame(cmds))):
        if frame is None or cut >= len(frame):
            continue
        out = decode_or_error(frame[:-cut], fmt)
        if fmt == "msgpack":
            assert out is None or len(out) < len(cmds)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_str_frames_with_surrogates(text: str) -> None:
    """Text frames with any code points (lone surrogates too) decode or are refused."""
    count("text frames")
    decode_or_error(text, "json")


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("depth", [10, 500, 1100, 5000, 100_000])
def test_deep_nesting(fmt: str, depth: int) -> None:
    """Nesting far past any parser's stack is a ProtocolError, not a RecursionError or a crash."""
    count("deep nesting")
    out = decode_or_error(deep(depth, fmt), fmt)
    if depth <= 500:
        assert out is not None


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":1e400,"ping":{}}',
        b'{"id":18446744073709551616,"ping":{}}',
        b'{"id":1,"publish":{"channel":"chat:a","data":' + b"9" * 5000 + b"}}",
        b'{"id":1,"connect":{"token":"\xff\xfe"}}',
        b'{"id":1,"ping":{},"publish":{}}',
        b'{"id":1,"connect":[]}',
        b"[]",
        b"\n\n",
        b'{"id":1,"connect":{}}\n' * (MAX_COMMANDS_PER_FRAME + 1),
    ],
    ids=["float-overflow", "id-2^64", "huge-number", "invalid-utf8", "two-methods", "params-list",
         "array", "blank", "too-many"],
)
def test_edge_frames_are_refused(frame: bytes) -> None:
    """Known-hostile JSON frames are ProtocolErrors (or, for a huge number, a decodable float)."""
    count("edge frames")
    out = decode_or_error(frame, "json")
    if b"9" * 5000 not in frame:
        assert out is None
