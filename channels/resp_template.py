"""A Redis command packed once, with a few argument positions left open.

``hiredis.pack_command`` costs about 3 µs for the 19 arguments of a publish
script call, 5% of a publication's server CPU, though only the publication,
its epoch and one flag change from call to call on a channel. A template
packs the fixed arguments into RESP once, as one bytes %-format;
:meth:`CommandTemplate.fill` formats the open ones into it (about 1.4 µs
with the caller's conversions, timeit). The bytes are those
``hiredis.pack_command`` makes for the whole command (tests compare them).
"""

from __future__ import annotations

from typing import Sequence

OPEN = object()  # marks an argument given at each call


def arg_bytes(value: bytes | str | int) -> bytes:
    """An argument as hiredis sends it (str as UTF-8, int in decimal)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    raise TypeError(f"a Redis argument must be bytes, str or int, not {type(value).__name__}")


def bulk(value: bytes | str | int) -> bytes:
    """One RESP bulk string."""
    data = arg_bytes(value)
    return b"$%d\r\n%s\r\n" % (len(data), data)


class CommandTemplate:
    """``command`` with :data:`OPEN` at the positions each call gives."""

    __slots__ = ("_format", "_open")

    def __init__(self, command: Sequence[object]) -> None:
        parts: list[bytes] = []
        run = [b"*%d\r\n" % len(command)]
        for arg in command:
            if arg is OPEN:
                parts.append(b"".join(run))
                run = []
            else:
                run.append(bulk(arg))  # type: ignore[arg-type]  # bulk checks the type
        parts.append(b"".join(run))
        # One bytes %-format for the whole command: one C call per fill.
        self._format = b"$%d\r\n%s\r\n".join(p.replace(b"%", b"%%") for p in parts)
        self._open = len(parts) - 1

    def fill(self, *values: bytes) -> bytes:
        """The whole command's RESP, ``values`` (bytes: the caller converts) at the open positions in order."""
        if len(values) != self._open:
            raise ValueError(f"this command has {self._open} open arguments, not {len(values)}")
        args: list[object] = []
        for value in values:
            if value.__class__ is not bytes:
                raise TypeError(f"an open argument must be bytes, not {type(value).__name__}")
            args += (len(value), value)
        return self._format % tuple(args)
