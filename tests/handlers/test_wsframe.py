"""Pre-built frames are byte-identical to what Tornado itself would send."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tornado.websocket import WebSocketProtocol13

from handlers import wsframe


class _Capture:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def tornado_frame(payload: bytes, opcode: int) -> bytes:
    """Frame built by Tornado's own server-side writer (no mask, no compression)."""
    proto: Any = WebSocketProtocol13.__new__(WebSocketProtocol13)
    proto.mask_outgoing = False
    proto._compressor = None
    proto._wire_bytes_out = 0
    proto._message_bytes_out = 0
    proto.stream = _Capture()
    proto._write_frame(True, opcode, payload)
    return bytes(proto.stream.data)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
@pytest.mark.parametrize("opcode", [wsframe.OP_TEXT, wsframe.OP_BINARY])
def test_frames_match_tornado(size: int, opcode: int) -> None:
    """Every length class (7-bit, 16-bit, 64-bit) matches Tornado byte for byte."""
    payload = bytes(i % 251 for i in range(size))
    assert wsframe.frame(payload, opcode) == tornado_frame(payload, opcode)


def test_close_frame_carries_code_and_reason() -> None:
    """A close frame holds the 2-byte code then the UTF-8 reason."""
    f = wsframe.close_frame(3008, "slow")
    assert f == bytes([0x88, 6]) + (3008).to_bytes(2, "big") + b"slow"


# ---------------------------------------------------------------- client frames in


def client_frame(payload: bytes, opcode: int = wsframe.OP_TEXT, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04", rsv: int = 0) -> bytes:
    """A masked frame as a client sends it (built independently of the parser)."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n <= 0xFFFF:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def violation(data: bytes, max_size: int = 1 << 20) -> int:
    with pytest.raises(wsframe.Violation) as e:
        wsframe.FrameParser(max_size).feed(data)
    return e.value.code


def test_accept_key_matches_rfc6455_example() -> None:
    """The handshake answer for RFC 6455's sample key is the RFC's."""
    assert wsframe.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_parser_reads_text_and_binary_of_every_length_class(size: int) -> None:
    """Masked text and binary frames of each length encoding come out unmasked and whole."""
    text = ("é" * size).encode()[: size - size % 2]
    blob = bytes(i % 256 for i in range(size))
    p = wsframe.FrameParser(1 << 20)
    out = p.feed(client_frame(text) + client_frame(blob, wsframe.OP_BINARY))
    assert out == [(wsframe.OP_TEXT, text.decode()), (wsframe.OP_BINARY, blob)]


def test_parser_reassembles_fragments_with_control_frames_between() -> None:
    """A fragmented message with a ping inside comes out as the ping, then the whole message."""
    p = wsframe.FrameParser(1000)
    data = (
        client_frame(b"hel", wsframe.OP_TEXT, fin=False)
        + client_frame(b"hi", wsframe.OP_PING)
        + client_frame(b"lo ", wsframe.OP_CONT, fin=False)
        + client_frame(b"world", wsframe.OP_CONT)
    )
    assert p.feed(data) == [(wsframe.OP_PING, b"hi"), (wsframe.OP_TEXT, "hello world")]
    assert p.feed(client_frame(b"next")) == [(wsframe.OP_TEXT, "next")]


def test_unmasked_client_frame_is_1002() -> None:
    """A client frame without the mask bit is a protocol error (1002)."""
    assert violation(wsframe.frame(b"hi")) == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_reserved_bits_are_1002(rsv: int) -> None:
    """Any RSV bit without a negotiated extension is 1002."""
    assert violation(client_frame(b"x", rsv=rsv)) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xF])
def test_reserved_opcodes_are_1002(opcode: int) -> None:
    """Reserved data and control opcodes are 1002."""
    assert violation(client_frame(b"x", opcode)) == 1002


def test_bad_control_frames_are_1002() -> None:
    """A fragmented or over-125-byte control frame is 1002."""
    assert violation(client_frame(b"x", wsframe.OP_PING, fin=False)) == 1002
    assert violation(client_frame(b"x" * 126, wsframe.OP_PING)) == 1002


def test_fragmentation_errors_are_1002() -> None:
    """A continuation with no message, or a new message inside a fragmented one, is 1002."""
    assert violation(client_frame(b"x", wsframe.OP_CONT)) == 1002
    assert violation(client_frame(b"a", fin=False) + client_frame(b"b")) == 1002


def test_oversized_message_is_1009_from_the_header_alone() -> None:
    """A frame over the limit is refused as soon as its length is known, before its payload."""
    assert violation(client_frame(b"x" * 2000)[:8], max_size=1000) == 1009
    p = wsframe.FrameParser(1000)
    assert p.feed(client_frame(b"x" * 1000)) == [(wsframe.OP_TEXT, "x" * 1000)]


def test_oversized_fragmented_message_is_1009() -> None:
    """Fragments are counted together against the limit."""
    data = client_frame(b"x" * 600, fin=False) + client_frame(b"x" * 600, wsframe.OP_CONT)
    assert violation(data, max_size=1000) == 1009


def test_invalid_utf8_text_is_1007() -> None:
    """A text message that is not UTF-8 is 1007, also when split inside a character."""
    assert violation(client_frame(b"\xff\xfe")) == 1007
    euro = "€".encode()
    p = wsframe.FrameParser(100)
    out = p.feed(client_frame(euro[:1], fin=False) + client_frame(euro[1:], wsframe.OP_CONT))
    assert out == [(wsframe.OP_TEXT, "€")]


def test_close_payload_parsing() -> None:
    """Close bodies: empty (no code), code+reason, and the malformed ones."""
    assert wsframe.parse_close(b"") == (None, "")
    assert wsframe.parse_close((1000).to_bytes(2, "big") + b"bye") == (1000, "bye")
    assert wsframe.parse_close((4001).to_bytes(2, "big")) == (4001, "")
    for bad, code in [(b"\x03", 1002), ((1005).to_bytes(2, "big"), 1002), ((999).to_bytes(2, "big"), 1002),
                      ((1000).to_bytes(2, "big") + b"\xff", 1007)]:
        with pytest.raises(wsframe.Violation) as e:
            wsframe.parse_close(bad)
        assert e.value.code == code


def test_close_frame_without_code_is_empty() -> None:
    """close_frame(None) is the bare close frame Tornado echoes for a code-less close."""
    assert wsframe.close_frame(None) == bytes([0x88, 0])


_messages = st.lists(
    st.one_of(
        st.tuples(st.just(wsframe.OP_TEXT), st.text(max_size=300).map(lambda s: s.encode())),
        st.tuples(st.just(wsframe.OP_BINARY), st.binary(max_size=70_000 // 8)),
        st.tuples(st.just(wsframe.OP_PING), st.binary(max_size=125)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(messages=_messages, cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=20),
       fragment=st.integers(min_value=1, max_value=400), mask=st.binary(min_size=4, max_size=4))
def test_any_split_of_the_stream_gives_the_same_messages(
    messages: list[tuple[int, bytes]], cuts: list[int], fragment: int, mask: bytes
) -> None:
    """However the byte stream is cut into feed() chunks, the same messages come out in order."""
    stream = b""
    for op, payload in messages:
        if op == wsframe.OP_PING or len(payload) <= fragment:
            stream += client_frame(payload, op, mask=mask)
        else:  # data messages longer than `fragment` are sent in fragments
            pieces = [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
            for k, piece in enumerate(pieces):
                stream += client_frame(piece, op if k == 0 else wsframe.OP_CONT, fin=k == len(pieces) - 1, mask=mask)
    expected = [(op, p.decode() if op == wsframe.OP_TEXT else p) for op, p in messages]
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    parser = wsframe.FrameParser(1 << 20)
    got: list[tuple[int, bytes | str]] = []
    for a, b in zip(points, points[1:]):
        got += parser.feed(stream[a:b])
    assert got == expected
    # and byte by byte for short streams
    if len(stream) < 2000:
        parser = wsframe.FrameParser(1 << 20)
        got = []
        for i in range(len(stream)):
            got += parser.feed(stream[i : i + 1])
        assert got == expected
