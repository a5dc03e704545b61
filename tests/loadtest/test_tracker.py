"""Loss, duplicate and order bookkeeping, fed by hand."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest.protocol import Conn
from loadtest.tracker import Tracker, new_histogram


def decode(encoded: str) -> HdrHistogram:
    h = new_histogram()
    h.decode_and_add(encoded)
    return h


def pub(seq: int, publisher: str = "p1") -> dict[str, Any]:
    return {"data": {"s": seq, "t": 1_000, "p": publisher}, "offset": seq}


def test_in_order_duplicate_and_late() -> None:
    """1,2,4,3,3 counts 4 unique, one out of order (3 filled a gap), one duplicate."""
    tr = Tracker()
    conn = Conn(0, tr)
    for seq in (1, 2, 4, 3, 3):
        tr.on_pub(conn, "c", pub(seq), now_us=2_000)
    assert (tr.deliveries, tr.out_of_order, tr.duplicates, tr.received) == (4, 1, 1, 5)
    tr.take_interval()
    assert tr.latency.get_total_count() == 4
    assert tr.latency.get_max_value() >= 1_000


def test_streams_are_per_publisher_and_channel() -> None:
    """The same seq from two publishers, or on two channels, is no duplicate."""
    tr = Tracker()
    conn = Conn(0, tr)
    tr.on_pub(conn, "c", pub(1, "a"), 0)
    tr.on_pub(conn, "c", pub(1, "b"), 0)
    tr.on_pub(conn, "d", pub(1, "a"), 0)
    assert (tr.deliveries, tr.duplicates) == (3, 0)


def test_foreign_and_recovered_publications() -> None:
    """Data not made by the tool is counted apart; recovered ones count but skip latency."""
    tr = Tracker(track_positions=True)
    conn = Conn(0, tr)
    tr.on_pub(conn, "c", {"data": {"text": "hi"}}, 0)
    tr.on_pub(conn, "c", pub(1), 5_000, recovered=True)
    assert (tr.foreign, tr.deliveries, tr.recovered_deliveries) == (1, 1, 1)
    assert conn.offsets["c"] == 1
    tr.take_interval()
    assert tr.latency.get_total_count() == 0


def test_warmup_latency_is_kept_apart() -> None:
    """Publications sent before measure_from_us go to the warm-up histogram; the timeline still sees both."""
    tr = Tracker()
    conn = Conn(0, tr)
    tr.measure_from_us = 10_000
    tr.on_pub(conn, "c", {"data": {"s": 1, "t": 9_000, "p": "a"}}, now_us=59_000)  # 50 ms, warm-up
    tr.on_pub(conn, "c", {"data": {"s": 2, "t": 10_000, "p": "a"}}, now_us=12_000)  # 2 ms, measured
    tr.on_pub(conn, "c", {"data": {"s": 3, "t": 11_000, "p": "a"}}, now_us=14_000)  # 3 ms, measured
    interval = decode(tr.take_interval())
    assert interval.get_total_count() == 3
    assert (tr.latency.get_total_count(), tr.warmup.get_total_count()) == (2, 1)
    assert tr.latency.get_max_value() < 4_000 < 49_000 < tr.warmup.get_max_value()
    out = tr.result()
    assert decode(out["latency"]).get_total_count() == 2
    assert decode(out["latency_warmup"]).get_total_count() == 1
