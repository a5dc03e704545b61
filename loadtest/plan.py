"""Scenarios as plain data: who connects, what each connection subscribes to
and who publishes where at what rate.

A Plan is picklable (it crosses to ``--workers`` processes); connection ``i``
belongs to worker ``i % workers``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SCENARIOS = ("broadcast", "chat", "idle", "churn", "dashboard")


@dataclass(frozen=True)
class Target:
    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/connection/websocket"
    token: str = ""
    hmac_secret: str = ""
    sources: tuple[str, ...] = ()
    server_pid: int = 0
    stats_url: str = ""
    stats_key: str = "deliveries"
    publish_via: str = "ws"  # ws: publishers publish on their connection; api: POST {api_url}/publish
    api_url: str = ""
    api_key: str = ""


@dataclass(frozen=True)
class Plan:
    scenario: str
    namespace: str = "chat"
    # sizes (meaning depends on the scenario, see docs/LOADTEST.md)
    subscribers: int = 100  # broadcast
    rooms: int = 10  # chat
    members: int = 10  # chat
    connections: int = 100  # idle, churn
    clients: int = 100  # dashboard
    channels: int = 0  # idle, churn, dashboard: channel pool size (0 = scenario default)
    per_client: int = 2  # idle, dashboard: channels per connection
    rate: float = 0.0  # msgs/s: broadcast total (0 = window bound), chat per member, churn per channel, dashboard Hz
    window: int = 64  # most publishes in flight per publisher
    message_size: int = 100  # bytes of publication data
    duration: float = 10.0  # seconds of the run phase
    warmup: float = 0.0  # first seconds of the run phase: their publications' latency is reported apart
    ramp: float = 1000.0  # new connections per second over all workers (0 = as fast as allowed)
    connect_concurrency: int = 200  # handshakes in flight per worker
    connect_timeout: float = 10.0
    churn_rate: float = 5.0  # reconnects per second over all workers
    storm_at: float = -1.0  # seconds into the run for the reconnect storm (<0: none)
    drain: float = 10.0  # longest wait for deliveries after the last publish
    quiet: float = 1.0  # a drain ends after this long without a delivery
    workers: int = 1
    loop: str = "asyncio"  # event loop of each worker: asyncio or uvloop
    seed: int = 1

    # ------------------------------------------------------------ layout
    @property
    def pool(self) -> int:
        if self.channels > 0:
            return self.channels
        if self.scenario == "idle":
            return max(1, self.connections // 10)
        if self.scenario == "churn":
            return max(1, self.connections // 50)
        if self.scenario == "dashboard":
            return 20
        return 1

    @property
    def subscriber_count(self) -> int:
        """Connections that subscribe (indices 0..n-1)."""
        return {
            "broadcast": self.subscribers,
            "chat": self.rooms * self.members,
            "idle": self.connections,
            "churn": self.connections,
            "dashboard": self.clients,
        }[self.scenario]

    @property
    def total_connections(self) -> int:
        """Subscribers plus one dedicated publisher where the scenario has one."""
        extra = 1 if self.scenario in ("broadcast", "churn", "dashboard") else 0
        return self.subscriber_count + extra

    def channel(self, name: str) -> str:
        return f"{self.namespace}:{name}" if self.namespace else name

    def channels_of(self, i: int) -> tuple[str, ...]:
        if i >= self.subscriber_count:
            return ()
        s = self.scenario
        if s == "broadcast":
            return (self.channel("broadcast"),)
        if s == "chat":
            return (self.channel(f"room-{i // self.members}"),)
        if s == "churn":
            return (self.channel(f"churn-{i % self.pool}"),)
        k = min(self.per_client, self.pool)
        if s == "idle":
            return tuple(self.channel(f"idle-{(i * k + j) % self.pool}") for j in range(k))
        picks = random.Random(self.seed * 1_000_003 + i).sample(range(self.pool), k)
        return tuple(self.channel(f"dash-{c}") for c in sorted(picks))

    def publishes_of(self, i: int) -> tuple[tuple[str, ...], float]:
        """(channels, rate per channel) that connection ``i`` publishes to."""
        s = self.scenario
        if s == "chat":
            return self.channels_of(i), self.rate
        if i != self.subscriber_count:
            return (), 0.0
        if s == "broadcast":
            return (self.channel("broadcast"),), self.rate
        if s == "churn":
            return tuple(self.channel(f"churn-{c}") for c in range(self.pool)), self.rate
        if s == "dashboard":
            return tuple(self.channel(f"dash-{c}") for c in range(self.pool)), self.rate
        return (), 0.0

    def mine(self, worker: int) -> range:
        return range(worker, self.total_connections, self.workers)
