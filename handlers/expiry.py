"""When tokens run out: pure functions of expiry times and the clock.

The session holds the timers; these say when they fire and what is due, so
the arithmetic is tested without a loop or a clock. Times are unix seconds;
an expiry of 0 means never.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

MAX_TTL = 365 * 24 * 3600  # a later expiry is cut to this (as Centrifugo: likely a bug, and timers overflow)


def ttl_fields(expire_at: int, now: float) -> dict[str, Any]:
    """The ``expires``/``ttl`` fields of a connect, refresh or subscribe reply."""
    if not expire_at:
        return {}
    return {"expires": True, "ttl": max(1, expire_at - int(now))}


def already_expired(expire_at: int, now: float) -> bool:
    """A token that is dead on arrival (its ``exp`` passed, or ``expire_at`` did)."""
    return bool(expire_at) and expire_at <= now


def deadline(expire_at: int, grace: float) -> float | None:
    """When a connection whose token expires at ``expire_at`` is closed (3005)
    unless it refreshes: the SDK refreshes when ``ttl`` runs out, so it gets
    ``grace`` seconds more. None when it never expires."""
    return expire_at + grace if expire_at else None


def first_deadline(expiries: Iterable[int], grace: float) -> float | None:
    """The earliest subscription deadline, for one timer over all of them."""
    times = [t for t in expiries if t]
    return min(times) + grace if times else None


def due(expiries: Mapping[str, int], now: float, grace: float) -> list[str]:
    """Channels whose subscription token expired more than ``grace`` ago."""
    limit = now - grace
    return [channel for channel, t in expiries.items() if t and t <= limit]


def server_expiry(expire_at: int, now: float) -> int | None:
    """The server API's refresh: the new expiry (0 = never), capped at
    ``MAX_TTL`` from now; None when it is already past (close with 3005)."""
    if expire_at <= 0:
        return 0
    if expire_at <= int(now):
        return None
    return min(expire_at, int(now) + MAX_TTL)
