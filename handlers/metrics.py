"""Prometheus metrics of one node, served at /metrics.

Every app owns its own ``CollectorRegistry`` (several apps share a process in
tests). Nothing here runs on the fan-out path: the hub's plain counters
(``hub.stats``) and gauges are copied into Prometheus metrics by a sampler
that runs once a second and right before every scrape, so a scrape is exact
for the process that serves it.

With ``--processes N`` each worker is a separate process behind one port, so
a scrape reaches one worker at random. When ``PROMETHEUS_MULTIPROC_DIR`` is
set, prometheus-client's multiprocess mode is used: every worker writes its
values to memory-mapped files in that directory and whichever worker serves
the scrape reads all of them. Counters and histograms are summed over
workers; per-worker gauges carry a ``pid`` label. See docs/OPERATIONS.md.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, Callable

import tornado.web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import multiprocess

from channels import recovery
from channels.history import HistoryStore
from channels.hub import Hub
from handlers.metrics_runtime import GcPauseMonitor, LoopLagMonitor
from handlers.metrics_tally import CounterTally, HistogramTally

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_GENERATIONS = ("0", "1", "2")  # the gc pause histogram's label values

# Client commands are fast; a publish through Redis+MongoDB takes milliseconds.
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# hub.stats field -> (metric name, help)
_HUB_COUNTERS = (
    ("publications", "squall_publications", "Publications accepted through this node (client, API and admin)."),
    ("deliveries", "squall_deliveries", "Publications written to local subscribers (one per subscriber)."),
    ("joins", "squall_joins", "Join events received for channels with local subscribers."),
    ("leaves", "squall_leaves", "Leave events received for channels with local subscribers."),
    ("gaps", "squall_stream_breaks", "Streams found broken (gap, epoch change, broker resync): subscribers told to recover."),
)


def multiprocess_enabled() -> bool:
    """Same test prometheus-client applies when it picks its value store."""
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


class _Mirror:
    """Turns an ever-growing number read elsewhere into Counter increments."""

    __slots__ = ("counter", "read", "last")

    def __init__(self, counter: Counter, read: Callable[[], float | None]) -> None:
        self.counter = counter
        self.read = read
        self.last: float = 0

    def sync(self) -> None:
        value = self.read()
        if value is None:
            return
        if value < self.last:  # the source restarted (e.g. links rebuilt)
            self.last = 0
        if value > self.last:
            self.counter.inc(value - self.last)
            self.last = value


def _attr(obj: Any, name: str) -> Callable[[], float | None]:
    """Reads an optional cumulative stat a backend may or may not expose."""

    def read() -> float | None:
        value = getattr(obj, name, None)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return read


class Metrics:
    """The node's metrics; also the session's :class:`handlers.observer.Observer`."""

    def __init__(
        self,
        hub: Hub,
        history: HistoryStore,
        *,
        multiprocess_mode: bool | None = None,
        sample_interval: float = 1.0,
        lag_interval: float = 0.5,
    ) -> None:
        self.hub = hub
        self.history = history
        self.multiprocess = multiprocess_enabled() if multiprocess_mode is None else multiprocess_mode
        self.sample_interval = sample_interval
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in mmap files, read back by
        # MultiProcessCollector; registering the metrics too would count twice.
        reg = None if self.multiprocess else self.registry
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)
        else:
            ProcessCollector(registry=self.registry)

        def gauge(name: str, doc: str, mode: str = "livesum", labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=reg, multiprocess_mode=mode)  # type: ignore[arg-type]

        self.commands = Counter(
            "squall_commands", "Client commands by method and result code (0 = ok).", ("method", "code"), registry=reg
        )
        self.command_seconds = Histogram(
            "squall_command_duration_seconds", "Time to run a client command.", ("method",),
            buckets=COMMAND_BUCKETS, registry=reg,
        )
        self.disconnects = Counter(
            "squall_disconnects", "Connections closed by the server, by disconnect code "
            "(3008 slow consumer, 3012 no pong, 3001 shutdown...).", ("code",), registry=reg,
        )
        self.connects = Counter(
            "squall_connects", "Connections established, by the SDK the client names (a fixed set, else other/unknown).",
            ("sdk",), registry=reg,
        )
        # per-event metrics, counted as plain numbers and moved in by sample()
        self._command_counts = CounterTally(self.commands)
        self._command_times = HistogramTally(self.command_seconds, COMMAND_BUCKETS)
        self._disconnect_counts = CounterTally(self.disconnects)
        self._connect_counts = CounterTally(self.connects)
        self.recovery = Counter(
            "squall_recovery", "Subscribe-with-recovery outcomes.", ("result",), registry=reg
        )
        self.connections = gauge("squall_connections", "Connected clients.")
        self.users = gauge("squall_users", "Distinct users connected.")
        self.subscriptions = gauge("squall_subscriptions", "Client subscriptions.")
        self.channels = gauge("squall_channels", "Channels with at least one local subscriber.")
        self.nodes = gauge("squall_nodes", "Nodes this node currently sees (itself included).", "livemax")
        self.backend_up = gauge(
            "squall_backend_up", "1 when the backend is reachable.", "liveall", ("backend",)
        )
        self.loop_lag = Histogram(
            "squall_event_loop_lag_seconds", "How late a periodic timer fires on the event loop.",
            buckets=LAG_BUCKETS, registry=reg,
        )
        self.loop_lag_last = gauge("squall_event_loop_lag_last_seconds", "Most recent loop lag sample.", "liveall")
        self.gc_pause = Histogram(
            "squall_gc_pause_seconds", "Duration of each garbage collection.", ("generation",),
            buckets=GC_BUCKETS, registry=reg,
        )
        self.gc_pause_max = gauge("squall_gc_pause_max_seconds", "Longest garbage collection since start.", "liveall")
        self.gc_cpu_max = gauge(
            "squall_gc_pause_cpu_max_seconds",
            "Most CPU time one garbage collection took since start (its pause without time the OS gave elsewhere).",
            "liveall",
        )
        self._mirrors = [
            _Mirror(Counter(name, doc, registry=reg), _attr(hub.stats, field)) for field, name, doc in _HUB_COUNTERS
        ]
        refused = Counter(
            "squall_recoveries_refused", "Recoveries answered recovered:false, by reason.", ("reason",), registry=reg
        )
        self._mirrors += [
            _Mirror(refused.labels(why), functools.partial(hub.stats.not_recovered_by.get, why, 0)) for why in recovery.REASONS
        ]
        self._mirrors += [
            _Mirror(self.recovery.labels("recovered"), _attr(hub.stats, "recovered")),
            _Mirror(self.recovery.labels("not_recovered"), _attr(hub.stats, "not_recovered")),
            _Mirror(
                Counter("squall_subscribes_ahead", "Subscribers that joined at a position the live flow had not reached yet (they skip what they read).", registry=reg),
                _attr(hub.stats, "ahead_joins"),
            ),
            _Mirror(
                Counter("squall_history_persist_fills", "Offsets a history read took from the Redis persist log because the durable store lacked them.", registry=reg),
                _attr(hub.broker, "persist_fills"),
            ),
            # Exposed by the Redis broker and the MongoDB store; absent in memory ones.
            _Mirror(
                Counter("squall_broker_reconnects", "Broker pub/sub reconnections.", registry=reg),
                _attr(hub.broker, "reconnects"),
            ),
            _Mirror(
                Counter("squall_history_batches", "History write batches (insert_many) completed.", registry=reg),
                _attr(history, "batches"),
            ),
            _Mirror(
                Counter("squall_history_batch_items", "Publications written in those batches (batch size = items / batches).", registry=reg),
                _attr(history, "batch_items"),
            ),
            _Mirror(
                Counter("squall_history_write_seconds", "Time spent writing history batches.", registry=reg),
                _attr(history, "write_seconds"),
            ),
            _Mirror(
                Counter("squall_broker_publishes", "Publishes through the broker (latency = seconds / publishes).", registry=reg),
                _attr(hub.broker, "publish_count"),
            ),
            _Mirror(
                Counter("squall_broker_publish_seconds", "Time spent in broker publishes, storage included.", registry=reg),
                _attr(hub.broker, "publish_seconds"),
            ),
            _Mirror(
                Counter("squall_broker_lag_messages", "Publications received from pub/sub with a timestamp.", registry=reg),
                _attr(hub.broker, "lag_count"),
            ),
            _Mirror(
                Counter("squall_broker_lag_seconds", "Publication time to arrival on this node, summed (pub/sub lag).", registry=reg),
                _attr(hub.broker, "lag_seconds"),
            ),
        ]
        self._process: Any = None
        if self.multiprocess:
            import psutil

            self._process = psutil.Process()
            self.rss = gauge("squall_process_resident_memory_bytes", "Resident memory of this worker.", "liveall")
            self.cpu = gauge("squall_process_cpu_seconds", "CPU time (user+system) of this worker.", "liveall")
            self.fds = gauge("squall_process_open_fds", "Open file descriptors of this worker.", "liveall")
        self._gc_max = 0.0
        self._gc_cpu_max = 0.0
        self._gc_times = HistogramTally(self.gc_pause, GC_BUCKETS)  # one per collection: hundreds a second under load
        self._lag = LoopLagMonitor(self._on_lag, lag_interval)
        self._gc = GcPauseMonitor(self._on_gc)
        self._sampler: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ Observer
    def command(self, method: str, code: int, seconds: float) -> None:
        self._command_counts.add((method, code))
        self._command_times.observe(method, seconds)

    def disconnect(self, code: int) -> None:
        self._disconnect_counts.add(code)

    def connect(self, sdk: str) -> None:
        self._connect_counts.add(sdk)  # sdk is a bounded label (handlers.sdk.label)

    # ------------------------------------------------------------ probes
    def _on_lag(self, lag: float) -> None:
        self.loop_lag.observe(lag)
        self.loop_lag_last.set(lag)

    def _on_gc(self, generation: int, seconds: float, cpu: float) -> None:
        self._gc_times.observe(_GENERATIONS[generation] if 0 <= generation < 3 else str(generation), seconds)
        if seconds > self._gc_max:
            self._gc_max = seconds
            self.gc_pause_max.set(seconds)
        if cpu > self._gc_cpu_max:
            self._gc_cpu_max = cpu
            self.gc_cpu_max.set(cpu)

    # ------------------------------------------------------------ sampling
    def sample(self) -> None:
        """Copy the hub's counters and gauges into the metrics (cheap: no I/O)."""
        hub = self.hub
        for m in self._mirrors:
            m.sync()
        self._flush_tallies()
        self.connections.set(hub.num_clients)
        self.users.set(hub.num_users)
        self.subscriptions.set(hub.num_subscriptions)
        self.channels.set(hub.num_channels)
        self.nodes.set(len(hub.nodes()))
        self.backend_up.labels("broker").set(1 if hub.broker.healthy() else 0)
        self.backend_up.labels("presence").set(1 if hub.presence_manager.healthy() else 0)
        self.backend_up.labels("history").set(1 if self.history.healthy() else 0)
        if self._process is not None:
            with self._process.oneshot():
                self.rss.set(self._process.memory_info().rss)
                t = self._process.cpu_times()
                self.cpu.set(t.user + t.system)
                self.fds.set(self._process.num_fds())

    def _flush_tallies(self) -> None:
        for tally in (self._command_counts, self._command_times, self._disconnect_counts, self._connect_counts,
                      self._gc_times):
            tally.flush()

    def render(self) -> bytes:
        self.sample()
        return generate_latest(self.registry)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval)
            self.sample()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._lag.start()
        self._gc.start()
        self.sample()
        if self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample_loop())

    async def close(self) -> None:
        self._lag.stop()
        self._gc.stop()
        task, self._sampler = self._sampler, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._flush_tallies()  # what was counted since the last sample
        if self.multiprocess:
            # Drops this pid's live* gauge files; counters stay summed in.
            multiprocess.mark_process_dead(os.getpid())


class MetricsHandler(tornado.web.RequestHandler):
    """/metrics in Prometheus text format."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.metrics.render())
