"""Per-worker bookkeeping of deliveries: latency, loss, duplicates, order.

Every published message carries ``{"s": seq, "t": send µs, "p": publisher}``
in its data. Each (connection, channel, publisher) stream expects seq 1, 2,
3...; a seq below the next expected one is out of order when it fills a gap
seen earlier, a duplicate otherwise. Loss is computed globally afterwards:
acknowledged publishes x subscribers of the channel, minus unique deliveries.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest.protocol import Conn

LATENCY_MAX_US = 120_000_000


def new_histogram() -> HdrHistogram:
    """Microseconds from 1 µs to 2 minutes at 3 significant digits."""
    return HdrHistogram(1, LATENCY_MAX_US, 3)


class Tracker:
    """Counts what one worker's connections see; implements PushSink."""

    def __init__(self, track_positions: bool = False) -> None:
        self.track_positions = track_positions
        self.latency = new_histogram()  # publications sent from measure_from_us on
        self.warmup = new_histogram()  # publications sent before it
        self.interval = new_histogram()
        self.warmup_interval = new_histogram()
        self.measure_from_us = 0  # wall clock (µs), like the "t" a publication carries
        self.connect_time = new_histogram()
        self.deliveries = 0  # unique publications delivered to a subscriber
        self.received = 0  # every publication push, duplicates included
        self.duplicates = 0
        self.out_of_order = 0
        self.recovered_deliveries = 0
        self.foreign = 0  # publications not made by this tool
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.recovered = 0
        self.not_recovered = 0
        self.errors: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.published: Counter[str] = Counter()  # channel -> acknowledged publishes
        self.subscribers: Counter[str] = Counter()  # channel -> subscriptions made

    # ---------------------------------------------------------------- PushSink
    def on_pub(self, conn: Conn, channel: str, pub: dict[str, Any], now_us: int, recovered: bool = False) -> None:
        data = pub.get("data")
        try:
            seq = data["s"]  # type: ignore[index]
            sent = data["t"]  # type: ignore[index]
            key = (channel, data["p"])  # type: ignore[index]
        except (TypeError, KeyError):
            self.foreign += 1
            return
        self.received += 1
        if self.track_positions:
            off = pub.get("offset")
            if off:
                conn.offsets[channel] = off
        st = conn.streams.get(key)
        if st is None:
            st = conn.streams[key] = [1, None]
        expect = st[0]
        if seq == expect:
            st[0] = expect + 1
        elif seq > expect:
            missing = st[1]
            if missing is None:
                missing = st[1] = set()
            missing.update(range(expect, seq))
            st[0] = seq + 1
        else:
            missing = st[1]
            if missing and seq in missing:
                missing.discard(seq)
                self.out_of_order += 1
            else:
                self.duplicates += 1
                return
        self.deliveries += 1
        if recovered:
            self.recovered_deliveries += 1
            return
        lat = now_us - sent
        hist = self.interval if sent >= self.measure_from_us else self.warmup_interval
        hist.record_value(1 if lat < 1 else (LATENCY_MAX_US if lat > LATENCY_MAX_US else lat))

    def on_disconnect(self, conn: Conn, code: int, reason: str) -> None:
        self.disconnects[str(code)] += 1

    # ---------------------------------------------------------------- ticks
    def take_interval(self) -> str:
        """Encoded latency histogram of the interval since the last call (warm-up included)."""
        self._fold()
        enc = self.interval.encode()
        self.interval.reset()
        return enc.decode() if isinstance(enc, bytes) else str(enc)

    def _fold(self) -> None:
        """Move the interval's samples into the run's totals; warm-up ones stay visible in ``interval``."""
        self.latency.add(self.interval)
        if self.warmup_interval.get_total_count():
            self.warmup.add(self.warmup_interval)
            self.interval.add(self.warmup_interval)
            self.warmup_interval.reset()

    def error(self, what: str, code: int | str) -> None:
        self.errors[f"{what}:{code}"] += 1

    def result(self) -> dict[str, Any]:
        """Everything the aggregator needs, JSON/pickle-safe."""
        self._fold()
        self.interval.reset()
        enc = self.latency.encode()
        wenc = self.warmup.encode()
        cenc = self.connect_time.encode()
        return {
            "latency": enc.decode() if isinstance(enc, bytes) else str(enc),
            "latency_warmup": wenc.decode() if isinstance(wenc, bytes) else str(wenc),
            "connect_time": cenc.decode() if isinstance(cenc, bytes) else str(cenc),
            "deliveries": self.deliveries,
            "received": self.received,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "recovered_deliveries": self.recovered_deliveries,
            "foreign": self.foreign,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "recovered": self.recovered,
            "not_recovered": self.not_recovered,
            "errors": dict(self.errors),
            "disconnects": dict(self.disconnects),
            "published": dict(self.published),
            "subscribers": dict(self.subscribers),
        }
