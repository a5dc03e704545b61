"""The codec seam: what every wire format of the client protocol offers.

One object per format, in its own module: :mod:`handlers.codec_json`,
:mod:`handlers.codec_msgpack`, :mod:`handlers.codec_protobuf`. All are pure:
bytes in, commands out; replies and pushes in, bytes out. Look one up with
:func:`handlers.protocol.codec_for`; nothing else branches on a format name.

Replies and pushes are given in the protocol's *map form*, Centrifugo's JSON
object model (``{"id": 1, "subscribe": {...}}``, ``{"push": {"channel": c,
"pub": {...}}}``), whose payloads (``data``, ``info``) are JSON values; every
codec turns that into its own bytes. Each encoded message is complete for its
format (a protobuf one carries its varint length), so a transport may write
several into one frame by concatenating them (JSON: joined by ``\\n``).

Errors::

    ProtocolError          a frame cannot be understood: disconnect with .disconnect
                           (3501 bad request; 1009 for a declared length over the limit)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from channels import errors
from channels.errors import DisconnectCode, SquallError

MAX_ID = 2**32 - 1
MAX_COMMANDS_PER_FRAME = 100
MAX_MESSAGE_SIZE = 65536  # server.settings' max_message_size default: a declared length over it is 1009


class ProtocolError(Exception):
    """The frame cannot be understood: the connection must end with ``disconnect``."""

    def __init__(self, message: str, disconnect: DisconnectCode = errors.BAD_REQUEST) -> None:
        self.disconnect = disconnect
        super().__init__(message)


@dataclass(slots=True)
class Command:
    """One decoded command in map form.

    ``method`` is "" for an empty command (a pong) and "?" for a command with
    an id but no known method (answered 104, not a disconnect). ``params`` are
    the request's fields by their client.proto names, payloads as JSON values.
    """

    id: int
    method: str
    params: dict[str, Any]


class Codec(Protocol):
    """One wire format. Instances are immutable and shared by every connection."""

    name: str  # "json", "msgpack", "protobuf": part of a transport's wire_key
    binary: bool  # binary WebSocket frames (a text frame is then 3506, and vice versa)
    subprotocol: str | None  # the Sec-WebSocket-Protocol that selects it, if any
    ping: bytes  # the server's ping: an empty reply

    def decode_commands(self, frame: bytes | str) -> list[Command]:
        """One incoming WebSocket message -> its commands, or raise ProtocolError."""
        ...

    def encode(self, obj: dict[str, Any]) -> bytes:
        """One reply or push given in map form -> its bytes."""
        ...

    def reply(self, cid: int, method: str, result: dict[str, Any]) -> bytes: ...

    def error(self, cid: int, err: SquallError) -> bytes: ...

    def push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        """A channel push (pub, join, leave, unsubscribe, subscribe, message).

        The hub calls this once per publication per distinct wire_key and
        writes the same bytes to every subscriber sharing that key."""
        ...

    def connection_push(self, kind: str, body: dict[str, Any]) -> bytes:
        """A push about the connection itself (disconnect, refresh, connect, message): no channel."""
        ...

    def disconnect_push(self, code: int, reason: str) -> bytes: ...

    def decode_replies(self, data: bytes) -> list[dict[str, Any]]:
        """The client side: replies and pushes -> map form (tests, the load tester)."""
        ...


def check_frame(commands: Iterable[Command]) -> list[Command]:
    """The rules every format shares: 1..MAX_COMMANDS_PER_FRAME commands with distinct ids."""
    out: list[Command] = []
    ids: set[int] = set()
    for cmd in commands:
        if cmd.id:
            if cmd.id in ids:
                raise ProtocolError("duplicate command id")
            ids.add(cmd.id)
        out.append(cmd)
        if len(out) > MAX_COMMANDS_PER_FRAME:
            raise ProtocolError("too many commands in one frame")
    if not out:
        raise ProtocolError("empty frame")
    return out
