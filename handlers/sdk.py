"""The SDK a client says it is (connect ``name`` and ``version``), made safe to log and count.

Centrifugo's connect request carries them (centrifuge-js sends ``js``,
centrifuge-python ``python``, ...); anyone can send anything, so what reaches
logs is cut short and printable, and the metrics label is one of a fixed set
(an unknown or missing name counts as ``other`` / ``unknown``), so hostile
clients cannot grow the label space.
"""

from __future__ import annotations

import re

MAX_LEN = 32
_UNSAFE = re.compile(r"[^\w.+\-]")
# names official SDKs send, and the label each counts under
KNOWN = frozenset({
    "js", "centrifuge-js", "python", "centrifuge-python", "go", "centrifuge-go", "java", "centrifuge-java",
    "swift", "centrifuge-swift", "dart", "centrifuge-dart", "csharp", "centrifuge-csharp", "squall.js",
})


def clean(value: str) -> str:
    """Printable, short: what logs and the admin page show."""
    return _UNSAFE.sub("_", value[:MAX_LEN]) if value else value


def label(name: str) -> str:
    """The bounded metrics label for a connect ``name``."""
    if not name:
        return "unknown"
    return name if name in KNOWN else "other"
