"""Tallied counters and histograms export exactly what direct inc/observe calls would, once flushed."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from handlers.metrics_tally import CounterTally, HistogramTally, bulk_supported

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def pair() -> tuple[CollectorRegistry, Counter, Histogram]:
    reg = CollectorRegistry()
    counter = Counter("c", "counts", ("method", "code"), registry=reg)
    hist = Histogram("h", "times", ("method",), buckets=BOUNDS, registry=reg)
    return reg, counter, hist


def exported(reg: CollectorRegistry) -> list[str]:
    """The exposition lines, without the _created timestamps (which differ between registries)."""
    return [line for line in generate_latest(reg).decode().splitlines() if "_created" not in line]


def test_flushed_tallies_equal_direct_calls() -> None:
    """Random commands, edge values on the bounds included: same text as inc/observe, and nothing before the flush."""
    direct_reg, direct_c, direct_h = pair()
    tally_reg, tally_c, tally_h = pair()
    counts, times = CounterTally(tally_c), HistogramTally(tally_h, BOUNDS)
    rng = random.Random(7)
    amounts = [0.0, 0.001, 0.01, 0.1, 1.0, 5.0] + [rng.uniform(0, 2) for _ in range(500)]
    for i, amount in enumerate(amounts):
        method, code = rng.choice(["connect", "publish", "subscribe"]), rng.choice([0, 0, 0, 103])
        direct_c.labels(method, str(code)).inc()
        direct_h.labels(method).observe(amount)
        counts.add((method, code))
        times.observe(method, amount)
    assert exported(tally_reg) != exported(direct_reg)  # nothing moved in yet
    counts.flush()
    times.flush()
    assert exported(tally_reg) == exported(direct_reg)
    counts.flush()  # a second flush adds nothing
    times.flush()
    assert exported(tally_reg) == exported(direct_reg)


def test_a_single_label_counter_takes_plain_values() -> None:
    """A disconnect code (int) or an SDK name is the label as str()."""
    reg = CollectorRegistry()
    c = Counter("d", "disconnects", ("code",), registry=reg)
    t = CounterTally(c)
    for code in (3008, 3008, 3012):
        t.add(code)
    t.flush()
    assert reg.get_sample_value("d_total", {"code": "3008"}) == 2
    assert reg.get_sample_value("d_total", {"code": "3012"}) == 1


def test_without_the_bulk_layout_observations_go_straight_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should prometheus-client change its histogram internals, each observation is an observe() at once."""
    reg, _, hist = pair()
    assert bulk_supported(hist.labels("x"), BOUNDS)
    monkeypatch.setattr("handlers.metrics_tally.bulk_supported", lambda child, bounds: False)
    times = HistogramTally(hist, BOUNDS)
    times.observe("y", 0.05)
    assert reg.get_sample_value("h_count", {"method": "y"}) == 1  # before any flush
    assert reg.get_sample_value("h_bucket", {"method": "y", "le": "0.1"}) == 1


def test_bulk_layout_is_refused_for_other_bounds() -> None:
    """A histogram whose buckets differ from the bounds given is not added to in bulk."""
    _, _, hist = pair()
    assert not bulk_supported(hist.labels("x"), (0.5, 1.0))
