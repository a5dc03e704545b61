"""Pre-built frames are byte-identical to what Tornado itself would send."""

from __future__ import annotations

from typing import Any

import pytest
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
