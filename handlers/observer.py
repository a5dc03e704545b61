"""What the session reports for metrics; the default does nothing.

The Prometheus implementation lives in handlers/metrics.py and is plugged in
by server.app, so the protocol code never imports prometheus_client.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def command(self, method: str, code: int, seconds: float) -> None:
        """A client command finished; ``code`` is 0 on success, else the error code."""
        ...

    def disconnect(self, code: int) -> None: ...

    def connect(self, sdk: str) -> None:
        """A client connected; ``sdk`` is its bounded label (handlers.sdk.label)."""
        ...


class NullObserver:
    def command(self, method: str, code: int, seconds: float) -> None:
        return None

    def disconnect(self, code: int) -> None:
        return None

    def connect(self, sdk: str) -> None:
        return None
