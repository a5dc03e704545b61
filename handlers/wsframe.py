"""Server-to-client WebSocket frames (RFC 6455), built once and shared.

Tornado builds a frame per ``write_message`` call; the fan-out path builds it
once per publication and format and writes the same bytes to every socket.
The output is byte-identical to Tornado's for unmasked, uncompressed frames.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
_FIN = 0x80


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    n = len(payload)
    first = _FIN | opcode
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    body = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return frame(body, OP_CLOSE)
