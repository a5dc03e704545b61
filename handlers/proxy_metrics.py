"""Prometheus counters of the proxy and of lifecycle events, read from their plain stats.

A custom collector (not Counters updated on the hot path): it reads
:class:`handlers.proxy.ProxyStats` and :class:`channels.events.EventStats`
when /metrics is scraped. Registered by server/app.py on the node's registry.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from channels.events import EventStats
from handlers.proxy import DURATION_BUCKETS, Proxy


class ProxyEventCollector:
    def __init__(self, proxy: Proxy | None, events: EventStats | None) -> None:
        self.proxy = proxy
        self.events = events

    def collect(self) -> Iterator[Metric]:
        if self.events is not None:
            e = self.events
            for name, value, doc in (
                ("squall_events_queued", e.queued, "Lifecycle events accepted by the outbox."),
                ("squall_events_sent", e.sent, "Lifecycle events delivered to every sink."),
                ("squall_events_retried", e.retried, "Lifecycle event deliveries tried again (per event)."),
                ("squall_events_failed", e.failed, "Lifecycle events given up (events_max_attempts) or dropped."),
            ):
                yield CounterMetricFamily(name, doc, value=value)
        if self.proxy is not None:
            s = self.proxy.stats
            calls = CounterMetricFamily("squall_proxy_calls", "Proxy calls by event.", labels=["event"])
            failures = CounterMetricFamily(
                "squall_proxy_failures", "Proxy calls answered 100: backend down, slow, bad answer, or too many outstanding.",
                labels=["event"],
            )
            for event in s.calls:
                calls.add_metric([event], s.calls[event])
                failures.add_metric([event], s.failures[event])
            yield calls
            yield failures
            yield CounterMetricFamily(
                "squall_proxy_refused_inflight", "Proxy calls refused at once because proxy_max_inflight were outstanding.",
                value=s.refused_inflight,
            )
            yield GaugeMetricFamily("squall_proxy_inflight", "Proxy calls outstanding now.", value=self.proxy.inflight)
            hist = HistogramMetricFamily(
                "squall_proxy_call_duration_seconds", "Proxy call durations by event (failures included).", labels=["event"]
            )
            for event, counts in s.durations.items():
                cumulative, buckets = 0, []
                for bound, n in zip((*map(str, DURATION_BUCKETS), "+Inf"), counts):
                    cumulative += n
                    buckets.append((bound, cumulative))
                hist.add_metric([event], buckets, s.duration_sum[event])
            yield hist
