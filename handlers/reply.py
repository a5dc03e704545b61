"""What a command function returns to the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(slots=True)
class Reply:
    """A result plus pushes that must reach the client right after it
    (publications recovered or buffered while subscribing)."""

    result: dict[str, Any]
    after: list[bytes] = field(default_factory=list)


# a plain result, a result with pushes after it, or None for no reply (send)
Result = Union[dict[str, Any], Reply, None]
