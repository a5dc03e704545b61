"""Property-based fuzzing of the protobuf decoder: bytes in -> Commands or ProtocolError (3501/1009), nothing else."""

from __future__ import annotations

from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels import errors
from handlers.codec import MAX_COMMANDS_PER_FRAME, MAX_ID, Command, ProtocolError
from handlers.codec_protobuf import PROTOBUF, varint
from handlers.proto import client_pb2 as pb
from handlers.protocol import METHODS

COUNTS: dict[str, int] = {}
CODES = {errors.BAD_REQUEST, errors.MESSAGE_TOO_BIG}
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_error(frame: bytes) -> list[Command] | None:
    """The decoder's contract: well-formed Commands, or ProtocolError with a documented code."""
    try:
        cmds = PROTOBUF.decode_commands(frame)
    except ProtocolError as e:
        assert e.disconnect in CODES, e.disconnect
        return None
    assert 0 < len(cmds) <= MAX_COMMANDS_PER_FRAME
    for c in cmds:
        assert isinstance(c, Command)
        assert 0 <= c.id <= MAX_ID
        assert c.method in METHODS or c.method in ("", "?")
        assert isinstance(c.params, dict)
    return cmds


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    """After the module: print how many cases each property ran."""
    yield
    print("\nfuzz case counts (protobuf decoder):", COUNTS, "total", sum(COUNTS.values()))


# ------------------------------------------------------------------ strategies
def field(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


@st.composite
def raw_field(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One protobuf field of any number and wire type, its payload well- or ill-formed."""
    number = draw(st.one_of(st.integers(1, 20), st.integers(0, 2**29)))
    wire_type = draw(st.integers(0, 7))
    if wire_type == 0:
        payload = draw(st.one_of(st.integers(0, 2**64 - 1).map(varint), st.binary(min_size=1, max_size=11)))
    elif wire_type == 1:
        payload = draw(st.binary(min_size=0, max_size=9))
    elif wire_type == 5:
        payload = draw(st.binary(min_size=0, max_size=5))
    elif wire_type == 2:
        inner = draw(raw_message(depth + 1)) if depth < 3 and draw(st.booleans()) else draw(st.binary(max_size=20))
        length = draw(st.one_of(st.just(len(inner)), st.integers(0, 2**35)))
        payload = varint(length) + inner
    else:
        payload = b""  # groups (3, 4) and the invalid 6, 7
    return field(number, wire_type, payload)


def raw_message(depth: int = 0) -> st.SearchStrategy[bytes]:
    return st.lists(raw_field(depth), max_size=6).map(b"".join)


@st.composite
def valid_command(draw: st.DrawFn) -> bytes:
    """A well-formed Command of a random method with a few request fields set."""
    cmd = pb.Command(id=draw(st.integers(0, MAX_ID)))
    method = draw(st.sampled_from(METHODS))
    request = getattr(cmd, method)
    request.SetInParent()
    names = set(request.DESCRIPTOR.fields_by_name)
    if "channel" in names:
        request.channel = draw(st.text(max_size=10))
    if "data" in names:
        request.data = draw(st.one_of(st.binary(max_size=10), st.just(b'{"a":[1,2]}')))
    if "token" in names:
        request.token = draw(st.text(max_size=10))
    if "offset" in names:
        request.offset = draw(st.integers(0, 2**64 - 1))
    return cmd.SerializeToString()


def frame_of(messages: list[bytes]) -> bytes:
    return b"".join(varint(len(m)) + m for m in messages)


# ------------------------------------------------------------------ properties
@SETTINGS
@given(data=st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    """Arbitrary bytes decode to commands or raise ProtocolError."""
    count("random bytes")
    decode_or_error(data)


@SETTINGS
@given(messages=st.lists(raw_message(), min_size=1, max_size=5))
def test_random_fields(messages: list[bytes]) -> None:
    """Well-framed messages of arbitrary fields (any number, any wire type, nested, bad lengths) never raise anything else."""
    count("random fields")
    decode_or_error(frame_of(messages))


@SETTINGS
@given(messages=st.lists(valid_command(), min_size=1, max_size=5))
def test_valid_commands_decode(messages: list[bytes]) -> None:
    """Well-formed commands with distinct ids decode, one Command each, methods as sent."""
    count("valid commands")
    ids = [pb.Command.FromString(m).id for m in messages]
    result = decode_or_error(frame_of(messages))
    if len(set(i for i in ids if i)) == len([i for i in ids if i]):
        assert result is not None and [c.id for c in result] == ids
    else:
        assert result is None  # duplicate ids


@SETTINGS
@given(messages=st.lists(valid_command(), min_size=1, max_size=3), cut=st.integers(1, 200))
def test_truncated(messages: list[bytes], cut: int) -> None:
    """A frame cut short anywhere is a ProtocolError (3501), never a partial command list."""
    count("truncated")
    frame = frame_of(messages)
    cut = min(cut, len(frame) - 1) if len(frame) > 1 else 0
    if cut <= 0:
        return
    truncated = frame[:-cut]
    if not truncated:
        return
    try:
        PROTOBUF.decode_commands(truncated)
    except ProtocolError as e:
        assert e.disconnect == errors.BAD_REQUEST
        return
    # the cut fell exactly on a message boundary: the remaining whole messages decode
    assert truncated in {frame_of(messages[:i]) for i in range(1, len(messages))}


@SETTINGS
@given(messages=st.lists(valid_command(), min_size=1, max_size=3), pos=st.integers(0, 300), byte=st.integers(0, 255))
def test_mutated(messages: list[bytes], pos: int, byte: int) -> None:
    """One byte of a valid frame changed (a tag, so a wire type; a length; a varint) still decodes or raises ProtocolError."""
    count("mutated")
    frame = bytearray(frame_of(messages))
    frame[pos % len(frame)] = byte
    decode_or_error(bytes(frame))


@SETTINGS
@given(size=st.integers(PROTOBUF.max_message_size + 1, 2**64 - 1), rest=st.binary(max_size=30))
def test_huge_length(size: int, rest: bytes) -> None:
    """A declared length over max_message_size is 1009 (message too big), whatever follows."""
    count("huge length")
    with pytest.raises(ProtocolError) as e:
        PROTOBUF.decode_commands(varint(size) + rest)
    assert e.value.disconnect == errors.MESSAGE_TOO_BIG


@SETTINGS
@given(prefix=st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=12).map(bytes))
def test_unterminated_varint(prefix: bytes) -> None:
    """A length varint whose bytes all have the continuation bit is 3501."""
    count("bad varint")
    with pytest.raises(ProtocolError) as e:
        PROTOBUF.decode_commands(prefix)
    assert e.value.disconnect == errors.BAD_REQUEST
