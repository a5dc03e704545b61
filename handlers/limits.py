"""Connection counting and token buckets for the limits in Settings."""

from __future__ import annotations

import random
import time
from collections import Counter

from channels import errors


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; take() is False when empty."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class ConnectionLimiter:
    """Counts live connections per user and per IP on this node."""

    def __init__(self, total: int = 0, per_user: int = 0, per_ip: int = 0, rate: float = 0.0) -> None:
        self.total_limit = total
        self.per_user = per_user
        self.per_ip = per_ip
        self.total = 0
        self._users: Counter[str] = Counter()
        self._ips: Counter[str] = Counter()
        self._rate = TokenBucket(rate, max(1.0, rate)) if rate > 0 else None
        self.closing = False

    def admit_socket(self) -> bool:
        """New-connection rate limit, checked before the WebSocket upgrade."""
        if self.closing:
            return False
        return self._rate is None or self._rate.take()

    def retry_after(self) -> int:
        """Seconds for a refused handshake's Retry-After, jittered (1-3 s) so
        a refused crowd does not come back in lockstep."""
        return random.randint(1, 3)

    def stop_admitting(self) -> None:
        """Shutdown: new sockets and connect commands are refused with 3001."""
        self.closing = True

    def open_ip(self, ip: str) -> None:
        if self.closing:
            raise errors.Disconnect(errors.SHUTDOWN)
        if self.total_limit and self.total >= self.total_limit:
            raise errors.Disconnect(errors.CONNECTION_LIMIT, "too many connections")
        if self.per_ip and self._ips[ip] >= self.per_ip:
            raise errors.Disconnect(errors.CONNECTION_LIMIT, "too many connections from this address")
        self.total += 1
        self._ips[ip] += 1

    def close_ip(self, ip: str) -> None:
        self.total -= 1
        self._ips[ip] -= 1
        if self._ips[ip] <= 0:
            del self._ips[ip]

    def open_user(self, user: str) -> None:
        if self.closing:
            raise errors.Disconnect(errors.SHUTDOWN)
        if user and self.per_user and self._users[user] >= self.per_user:
            raise errors.Disconnect(errors.CONNECTION_LIMIT, "too many connections for this user")
        self._users[user] += 1

    def close_user(self, user: str) -> None:
        self._users[user] -= 1
        if self._users[user] <= 0:
            del self._users[user]
