"""Logging set-up: text for people, JSON lines for machines.

Tokens and secrets are never passed to the logger by Squall's code. As a
second line of defence both formats redact anything shaped like a JWT (in
the message, extras and tracebacks) and the JSON format drops extras whose
name mentions a token, secret, password or key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# header.payload.signature, each base64url; JWT headers always start with '{"' -> 'eyJ'.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_SECRET_NAMES = ("token", "secret", "password", "api_key", "apikey", "authorization")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Replace JWT-shaped substrings; cheap when there are none."""
    if "eyJ" not in text:
        return text
    return _JWT.sub(REDACTED, text)


def _secret_name(key: str) -> bool:
    k = key.lower()
    return any(word in k for word in _SECRET_NAMES)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key in _RESERVED or key.startswith("_") or _secret_name(key):
                continue
            out[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(out, default=str))


class RepeatFilter(logging.Filter):
    """One line for a warning that repeats, then a summary at growing intervals.

    A backend down (Redis refusing every reconnect) would otherwise log a line
    per retry, forever. The first warning of its kind passes; the same warning
    again (same logger, level and text, decimals such as "retry in 0.42s"
    ignored) is counted, and passes again only once ``first_window`` seconds
    have gone by, marked "(repeated N times in the last T s)"; each window is
    twice the last, up to ``max_window``. A kind quiet for ``max_window`` starts
    over. Below WARNING nothing is held back.
    """

    def __init__(self, first_window: float = 10.0, max_window: float = 300.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.first_window = first_window
        self.max_window = max_window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [last passed, window, held, last seen]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, _DECIMAL.sub("#", record.getMessage()))
        now = self.clock()
        state = self._seen.get(key)
        if state is None or now - state[3] > self.max_window:
            if len(self._seen) > 1000:  # many distinct warnings: forget the old ones
                self._seen.clear()
            self._seen[key] = [now, self.first_window, 0, now]
            return True
        passed, window, held, _ = state
        state[3] = now
        if now - passed < window:
            state[2] = held + 1
            return False
        if held:
            record.msg = f"{record.getMessage()} (repeated {int(held)} times in the last {now - passed:.0f}s)"
            record.args = ()
            record.repeated = int(held)
        state[:3] = [now, min(self.max_window, window * 2), 0]
        return True


_DECIMAL = re.compile(r"\d+\.\d+")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tornado's access log is one line per HTTP request: keep it at warning
    # unless debugging, so connection events stay readable.
    logging.getLogger("tornado.access").setLevel("DEBUG" if level == "debug" else "WARNING")
    # Where the server listens is said even at log_level = warning (only
    # "error" hides it): an operator should never have to guess the port.
    logging.getLogger(START_LOGGER).setLevel("INFO" if level != "error" else "ERROR")


START_LOGGER = "squall.start"
