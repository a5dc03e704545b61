"""Node-to-node control messages: one msgpack map with an ``op``, sent to
every node through the broker, handled by whoever registered that op.

Upper layers register their ops at start-up (disconnect a user everywhere,
forward an emulation request, a node's heartbeat...); a malformed message or a
failing handler is logged and dropped, never raised into the broker.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import msgpack

log = logging.getLogger("squall.hub")

ControlHandler = Callable[[dict[str, Any]], None]


class ControlBus:
    def __init__(self) -> None:
        self._handlers: dict[str, ControlHandler] = {}

    def register(self, op: str, handler: ControlHandler) -> None:
        self._handlers[op] = handler

    @staticmethod
    def pack(op: str, payload: dict[str, Any]) -> bytes:
        out: bytes = msgpack.packb({**payload, "op": op}, use_bin_type=True)
        return out

    def dispatch(self, data: bytes) -> None:
        try:
            msg = msgpack.unpackb(data, raw=False)
            handler = self._handlers.get(msg.get("op", ""))
        except (ValueError, TypeError, AttributeError, msgpack.UnpackException):
            log.warning("dropping malformed control message")
            return
        if handler is not None:
            try:
                handler(msg)
            except Exception:
                log.exception("control handler %s failed", msg.get("op"))
