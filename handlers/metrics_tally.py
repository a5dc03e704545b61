"""Per-event metrics kept as plain numbers between samples.

prometheus-client takes a lock for every ``Counter.inc`` and for every
histogram observation (the sum and a bucket), about 2.5 µs per client
command; py-spy put that at 5-8% of the server's CPU on the connect and
publish paths, where it runs once per command. Here an event costs a dict
lookup, a bisect and a few additions. :meth:`flush` moves the totals into the
real metrics; :class:`handlers.metrics.Metrics` calls it from its sampler
(once a second) and right before every scrape, as it does for the hub's
counters, so what a scrape shows is still exact. Multiprocess mode is
unaffected: the flush goes through the same metric objects, whose values
live in the mmap files there.

A histogram has no public call that adds many observations at once, so the
flush adds to its sum and bucket values directly (``_sum``, ``_buckets``,
``_upper_bounds``: prometheus-client's layout since 0.4). Should a release
change that layout, :func:`bulk_supported` is false and every observation
goes through ``observe`` at once, as before; the test of this module
compares both ways' exported text.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


def bulk_supported(child: Any, bounds: tuple[float, ...]) -> bool:
    """Whether ``child`` (a labelled Histogram) has the value layout :class:`HistogramTally` adds to."""
    upper = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    return (
        isinstance(upper, list) and tuple(upper) == (*bounds, float("inf"))
        and isinstance(buckets, list) and len(buckets) == len(upper)
        and all(callable(getattr(v, "inc", None)) for v in (total, *buckets))
    )


class CounterTally:
    """Increments of a labelled Counter, by label value (a tuple for several labels; str() of each is the label)."""

    __slots__ = ("_counter", "_counts", "_children")

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._counts: dict[Any, int] = {}
        self._children: dict[Any, Any] = {}  # labels() costs a lock and a dict build per call

    def add(self, label: Any) -> None:
        counts = self._counts
        counts[label] = counts.get(label, 0) + 1

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for label, n in counts.items():
            child = self._children.get(label)
            if child is None:
                values = label if isinstance(label, tuple) else (label,)
                child = self._children[label] = self._counter.labels(*(str(v) for v in values))
            child.inc(n)


class _Buckets:
    __slots__ = ("child", "counts", "sum", "bulk")

    def __init__(self, child: Any, n: int, bulk: bool) -> None:
        self.child = child
        self.counts = [0] * n
        self.sum = 0.0
        self.bulk = bulk


class HistogramTally:
    """Observations of a Histogram with one label, kept per label value."""

    __slots__ = ("_histogram", "_bounds", "_by_label")

    def __init__(self, histogram: Any, bounds: tuple[float, ...]) -> None:
        self._histogram = histogram
        self._bounds = (*bounds, float("inf"))
        self._by_label: dict[str, _Buckets] = {}

    def observe(self, label: str, amount: float) -> None:
        b = self._by_label.get(label)
        if b is None:
            child = self._histogram.labels(label)
            b = self._by_label[label] = _Buckets(child, len(self._bounds), bulk_supported(child, self._bounds[:-1]))
        if not b.bulk:
            b.child.observe(amount)
            return
        b.sum += amount
        b.counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount, as observe picks

    def flush(self) -> None:
        for b in self._by_label.values():
            if not b.bulk or not any(b.counts):
                continue
            counts, total = b.counts, b.sum
            b.counts, b.sum = [0] * len(counts), 0.0
            b.child._sum.inc(total)
            for value, n in zip(b.child._buckets, counts):
                if n:
                    value.inc(n)
