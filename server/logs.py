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


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
