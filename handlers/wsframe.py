"""RFC 6455 framing, pure: bytes in, frames out; never touches a socket.

Server-to-client frames are built once per publication and format and the same
bytes are written to every socket; they are byte-identical to Tornado's for
unmasked, uncompressed frames. :class:`FrameParser` is the incremental reader
of client frames used by the lean WebSocket path (:mod:`handlers.ws_conn`).
"""

from __future__ import annotations

import base64
import hashlib
import struct

from tornado.util import _websocket_mask  # tornado.speedups' C unmasking when built

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_FIN = 0x80
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# close codes a peer may send (RFC 6455 7.4.1; 1004-1006 and 1015 are reserved)
_PEER_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

Frame = tuple[int, "bytes | str"]


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


def close_frame(code: int | None, reason: str = "") -> bytes:
    """A close frame; ``code`` None gives the empty body (no status)."""
    if code is None:
        return frame(b"", OP_CLOSE)
    body = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return frame(body, OP_CLOSE)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


class Violation(Exception):
    """The peer broke RFC 6455; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a peer's close frame; code None when it sent none."""
    if not payload:
        return None, ""
    if len(payload) < 2:
        raise Violation(1002, "bad close frame")
    code = struct.unpack("!H", payload[:2])[0]
    if code not in _PEER_CLOSE_CODES and not 3000 <= code <= 4999:
        raise Violation(1002, "bad close code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Violation(1007, "close reason not UTF-8") from None
    return code, reason


class FrameParser:
    """Incremental reader of client frames: ``feed`` returns whole messages.

    Text messages come out as ``str`` (UTF-8 checked), binary as ``bytes``,
    control frames (close, ping, pong) as ``bytes``, all in arrival order;
    fragments are reassembled. Every breach of RFC 6455 raises
    :class:`Violation` with the close code to send (1002, 1007, 1009).
    Input is kept as a list of chunks until enough bytes for the next step
    arrived, so a large frame trickling in is joined once, not per chunk.
    """

    __slots__ = ("_max", "_chunks", "_have", "_need", "_msg_op", "_parts", "_msg_len")

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._chunks: list[bytes] | None = None  # made on demand: most sockets sit idle
        self._have = 0
        self._need = 2
        self._msg_op = OP_CONT  # opcode of the fragmented message under way
        self._parts: list[bytes] | None = None
        self._msg_len = 0

    def feed(self, data: bytes) -> list[Frame]:
        chunks = self._chunks
        if chunks is None:
            buf = data
        else:
            chunks.append(data)
            if self._have + len(data) < self._need:
                self._have += len(data)
                return []
            buf = b"".join(chunks)
        out: list[Frame] = []
        if len(buf) >= self._need:
            pos = self._parse(buf, out)
        else:
            pos = 0
        rest = len(buf) - pos
        self._chunks = [buf[pos:]] if rest else None
        self._have = rest
        return out

    def _parse(self, buf: bytes, out: list[Frame]) -> int:
        """Consume every complete frame of ``buf``; return where the rest starts."""
        n = len(buf)
        pos = 0
        while True:
            if n - pos < 2:
                self._need = 2
                return pos
            b1 = buf[pos]
            b2 = buf[pos + 1]
            if b1 & 0x70:
                raise Violation(1002, "reserved bits set")
            if not b2 & 0x80:
                raise Violation(1002, "unmasked client frame")
            op = b1 & 0x0F
            fin = b1 & _FIN
            length = b2 & 0x7F
            head = pos + 2
            if length == 126:
                head += 2
                if n < head:
                    self._need = head - pos
                    return pos
                length = int.from_bytes(buf[pos + 2 : head], "big")
            elif length == 127:
                head += 8
                if n < head:
                    self._need = head - pos
                    return pos
                length = int.from_bytes(buf[pos + 2 : head], "big")
                if length >> 63:
                    raise Violation(1002, "bad frame length")
            if op >= OP_CLOSE:
                if op > OP_PONG:
                    raise Violation(1002, "reserved opcode")
                if not fin or length > 125:
                    raise Violation(1002, "bad control frame")
            elif op > OP_BINARY:
                raise Violation(1002, "reserved opcode")
            elif op == OP_CONT:
                if self._msg_op == OP_CONT:
                    raise Violation(1002, "continuation without a message")
            elif self._msg_op != OP_CONT:
                raise Violation(1002, "new message inside a fragmented one")
            if op < OP_CLOSE and self._msg_len + length > self._max:
                raise Violation(1009, "message too big")
            end = head + 4 + length
            if n < end:
                self._need = end - pos
                return pos
            payload = _websocket_mask(buf[head : head + 4], buf[head + 4 : end]) if length else b""
            pos = end
            if op >= OP_CLOSE:
                out.append((op, payload))
            elif fin and op != OP_CONT:
                out.append(_message(op, payload))
            elif not fin:
                if op != OP_CONT:
                    self._msg_op = op
                    self._parts = []
                assert self._parts is not None
                self._parts.append(payload)
                self._msg_len += length
            else:  # the last fragment
                assert self._parts is not None
                self._parts.append(payload)
                whole = b"".join(self._parts)
                op, self._msg_op, self._parts, self._msg_len = self._msg_op, OP_CONT, None, 0
                out.append(_message(op, whole))


def _message(op: int, payload: bytes) -> Frame:
    if op == OP_TEXT:
        try:
            return op, payload.decode("utf-8")
        except UnicodeDecodeError:
            raise Violation(1007, "text message not UTF-8") from None
    return op, payload
