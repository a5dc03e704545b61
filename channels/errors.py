"""Errors that travel to clients, with Centrifugo's codes.

Two families, both carrying a numeric code the client understands::

    SquallError                     reply error: {"code", "message", "temporary"}
    ├── InternalError      100      temporary
    ├── Unauthorized       101
    ├── UnknownChannel     102
    ├── PermissionDenied   103
    ├── MethodNotFound     104
    ├── AlreadySubscribed  105
    ├── LimitExceeded      106
    ├── BadRequest         107
    ├── NotAvailable       108
    ├── TokenExpired       109
    ├── Expired            110
    ├── TooManyRequests    111      temporary
    ├── UnrecoverablePosition 112
    └── BackendUnavailable 100      temporary (broker or history store down)

    Disconnect                      closes the connection with a code and reason;
                                    codes 3000-3499 and 4000-4499 mean "reconnect",
                                    3500-3999 and 4500-4999 mean "do not".

A reply error leaves the connection open; a :class:`Disconnect` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass


class SquallError(Exception):
    """A reply error sent to the client in ``error``."""

    code: int = 100
    message: str = "internal server error"
    temporary: bool = False

    def __init__(self, message: str | None = None, *, temporary: bool | None = None) -> None:
        if message is not None:
            self.message = message
        if temporary is not None:
            self.temporary = temporary
        super().__init__(f"{self.code}: {self.message}")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.temporary:
            out["temporary"] = True
        return out


class InternalError(SquallError):
    code, message, temporary = 100, "internal server error", True


class Unauthorized(SquallError):
    code, message = 101, "unauthorized"


class UnknownChannel(SquallError):
    code, message = 102, "unknown channel"


class PermissionDenied(SquallError):
    code, message = 103, "permission denied"


class MethodNotFound(SquallError):
    code, message = 104, "method not found"


class AlreadySubscribed(SquallError):
    code, message = 105, "already subscribed"


class LimitExceeded(SquallError):
    code, message = 106, "limit exceeded"


class BadRequest(SquallError):
    code, message = 107, "bad request"


class NotAvailable(SquallError):
    code, message = 108, "not available"


class TokenExpired(SquallError):
    code, message = 109, "token expired"


class Expired(SquallError):
    code, message = 110, "expired"


class TooManyRequests(SquallError):
    code, message, temporary = 111, "too many requests", True


class UnrecoverablePosition(SquallError):
    code, message = 112, "unrecoverable position"


class BackendUnavailable(SquallError):
    """A backend (broker, presence, history store) cannot serve right now."""

    code, message, temporary = 100, "backend unavailable", True


@dataclass(frozen=True, slots=True)
class DisconnectCode:
    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        c = self.code
        return c < 3500 or c >= 5000 or 4000 <= c < 4500


class Disconnect(Exception):
    """Raised anywhere below a transport to end the connection with a code."""

    def __init__(self, dc: DisconnectCode, reason: str | None = None) -> None:
        self.code = dc.code
        self.reason = reason or dc.reason
        self.reconnect = dc.reconnect
        super().__init__(f"disconnect {self.code}: {self.reason}")


# Centrifugo's built-in disconnect codes.
CONNECTION_CLOSED = DisconnectCode(3000, "connection closed")
SHUTDOWN = DisconnectCode(3001, "shutdown")
SERVER_ERROR = DisconnectCode(3004, "internal server error")
EXPIRED = DisconnectCode(3005, "connection expired")
SUB_EXPIRED = DisconnectCode(3006, "subscription expired")
SLOW = DisconnectCode(3008, "slow")
WRITE_ERROR = DisconnectCode(3009, "write error")
INSUFFICIENT_STATE = DisconnectCode(3010, "insufficient state")
FORCE_RECONNECT = DisconnectCode(3011, "force reconnect")
NO_PONG = DisconnectCode(3012, "no pong")
TOO_MANY_REQUESTS = DisconnectCode(3013, "too many requests")  # Squall: rate limits
INVALID_TOKEN = DisconnectCode(3500, "invalid token")
BAD_REQUEST = DisconnectCode(3501, "bad request")
STALE = DisconnectCode(3502, "stale")
FORCE_NO_RECONNECT = DisconnectCode(3503, "force disconnect")
CONNECTION_LIMIT = DisconnectCode(3504, "connection limit")
CHANNEL_LIMIT = DisconnectCode(3505, "channel limit")
INAPPROPRIATE_PROTOCOL = DisconnectCode(3506, "inappropriate protocol")
PERMISSION_DENIED = DisconnectCode(3507, "permission denied")
NOT_AVAILABLE = DisconnectCode(3508, "not available")
TOO_MANY_ERRORS = DisconnectCode(3509, "too many errors")
# A frame over the size limit is closed by the WebSocket layer with 1009
# ("message too big"), as RFC 6455 prescribes.
MESSAGE_TOO_BIG = DisconnectCode(1009, "message too big")
