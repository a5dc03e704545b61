"""OpenTelemetry tracing, off unless the server's assembly builds a tracer.

Lives in channels/ so that both channels/ and handlers/ can reach it without
importing upward. There is no process-wide tracer: server/app.py builds one
:class:`Tracer` (or None, off) and hands it to what traces (hub, broker,
handler context), so two apps in one process trace independently. Off, hot
paths test their ``tracer`` once per publication and create nothing;
:func:`span` hands back one shared, stateless ``nullcontext``. On, spans nest
through OpenTelemetry's context (contextvars), and :meth:`Tracer.traceparent`
/ :meth:`Tracer.remote_parent` carry the W3C trace context across the broker
to other nodes (docs/OPERATIONS.md, "Tracing").
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, ContextManager, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

MODES = ("off", "otlp", "console")
_PROPAGATOR = TraceContextTextMapPropagator()
OFF: ContextManager[Any] = contextlib.nullcontext()  # stateless: entering it changes nothing


class Tracer:
    """Squall's spans over one OpenTelemetry tracer."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def span(self, name: str, attrs: Mapping[str, Any], headers: Any = None) -> ContextManager[trace.Span]:
        """A span, child of the current one, or of the W3C ``traceparent`` in
        ``headers`` (an incoming HTTP request) when that is given and valid."""
        parent = _PROPAGATOR.extract(headers) if headers is not None else None
        return self._tracer.start_as_current_span(name, context=parent, attributes=dict(attrs))

    def traceparent(self) -> str | None:
        """The current span as a W3C ``traceparent`` value, or None outside a span."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @contextlib.contextmanager
    def remote_parent(self, traceparent: str) -> Iterator[None]:
        """Spans started inside are children of another node's span."""
        token = otel_context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))
        try:
            yield
        finally:
            otel_context.detach(token)


def span(tracer: Tracer | None, name: str, **attrs: Any) -> ContextManager[Any]:
    """A span of ``tracer``; with None (off) the shared no-op context, so
    call sites off the hot paths need no ``if`` of their own."""
    if tracer is None:
        return OFF
    return tracer.span(name, attrs)


def provider(mode: str, service_name: str, endpoint: str = "", exporter: Any = None) -> Any:
    """An SDK TracerProvider for ``mode`` (``otlp`` needs the ``otlp`` extra),
    or None for ``off``; ``exporter`` overrides the mode's (tests pass an
    in-memory one, exported synchronously)."""
    if mode == "off" and exporter is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        tp.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        tp.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    elif mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            raise RuntimeError(
                "\"otlp\" needs the OTLP exporter: pip install 'squall[otlp]' (or opentelemetry-exporter-otlp-proto-http)"
            ) from e
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()))
    else:
        raise ValueError(f"tracing: unknown mode {mode!r}; one of {', '.join(MODES)}")
    return tp


def tracer_of(tp: Any) -> Tracer | None:
    """The Squall tracer over provider ``tp``; None (off) for None."""
    return None if tp is None else Tracer(tp.get_tracer("squall"))
