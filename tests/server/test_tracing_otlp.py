"""tracing = "otlp" against a real OTLP/HTTP collector on 127.0.0.1: the spans
of an API publish and a client publish arrive at it as protobuf; a dead
collector does not break publishing."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from centrifuge import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from tornado.httpclient import AsyncHTTPClient

from channels.types import HistoryQuery
from server.app import Squall
from tests.server.test_tracing import Recorder, memory_node
from tests.helpers.waiting import until

API_KEY = "otlp-test-key"
CHANNEL = "chat:otlp"
SERVICE = "squall-otlp-test"


@dataclass(frozen=True)
class Span:
    """One received span, flattened: ids as hex, attributes as a dict."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attrs: dict[str, Any]
    service: str


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@dataclass
class Collector:
    """What the receiver got: decoded export requests and each POST's content type."""

    url: str = ""
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        with self.lock:
            reqs = list(self.requests)
        out = []
        for req in reqs:
            for rs in req.resource_spans:
                service = str(_attrs(rs.resource.attributes).get("service.name", ""))
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), _attrs(s.attributes), service))
        return out

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans() if s.name == name]


class TracesHandler(tornado.web.RequestHandler):
    """POST /v1/traces as an OTLP/HTTP collector answers it (binary protobuf)."""

    def initialize(self, collector: Collector) -> None:
        self.collector = collector

    def post(self) -> None:
        body = self.request.body
        if self.request.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest.FromString(body)
        with self.collector.lock:
            self.collector.requests.append(req)
            self.collector.content_types.append(self.request.headers.get("Content-Type", ""))
        self.set_header("Content-Type", "application/x-protobuf")
        self.finish(ExportTraceServiceResponse().SerializeToString())

    def check_xsrf_cookie(self) -> None:
        """A machine endpoint: no XSRF token."""


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A real HTTP server on 127.0.0.1 in its own thread and event loop, so the
    exporter's worker thread reaches it even while the app's loop blocks in
    the provider's shutdown."""
    col = Collector()
    started = threading.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []
    stop_box: list[asyncio.Event] = []

    async def serve() -> None:
        app = tornado.web.Application([(r"/v1/traces", TracesHandler, {"collector": col})])
        server = tornado.httpserver.HTTPServer(app)
        socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(socks)
        col.url = f"http://127.0.0.1:{socks[0].getsockname()[1]}/v1/traces"
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        stop_box.append(stop)
        started.set()
        await stop.wait()
        server.stop()
        await server.close_all_connections()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="otlp-collector", daemon=True)
    thread.start()
    assert started.wait(10), "collector did not start"
    try:
        yield col
    finally:
        loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(10)


@pytest.fixture
def fast_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch processor exports every 100 ms (default 5 s) and gives up on an export after 1 s (default 10 s)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")


def otlp_node(tmp: Path, endpoint: str) -> contextlib.AbstractAsyncContextManager[tuple[int, Squall]]:
    """A memory-engine node with tracing = "otlp" to ``endpoint``, behind a front door on a free port."""
    return memory_node(tmp, "otlp", None, api_key=API_KEY, tracing="otlp", tracing_service_name=SERVICE,
                       tracing_otlp_endpoint=endpoint)


async def api_publish(port: int, data: Any) -> dict[str, Any]:
    resp = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/api/publish", method="POST",
        headers={"X-API-Key": API_KEY}, body=json.dumps({"channel": CHANNEL, "data": data}),
    )
    out: dict[str, Any] = json.loads(resp.body)
    return out


def dead_endpoint() -> str:
    """A 127.0.0.1 URL nothing listens on (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"


def one_trace(col: Collector, root_name: str) -> dict[str, Span]:
    """The spans of the one trace rooted at ``root_name``, by name (each name once in it)."""
    root, = col.named(root_name)
    spans = [s for s in col.spans() if s.trace_id == root.trace_id]
    by_name = {s.name: s for s in spans}
    assert len(by_name) == len(spans), f"a name twice in {[s.name for s in spans]}"
    return by_name


@pytest.mark.gen_test(timeout=60)
async def test_api_and_client_publish_spans_reach_the_collector(tmp_path: Path, collector: Collector, fast_batches: None) -> None:
    """The collector decodes both publishes' spans: names, service.name, parent/child links, channel."""
    async with otlp_node(tmp_path, collector.url) as (port, sq):
        assert sq.tracer_provider is not None and sq.ctx.tracer is not None
        c = Client(f"ws://127.0.0.1:{port}/connection/websocket", timeout=5)
        rec = Recorder()
        sub = c.new_subscription(CHANNEL, rec)
        await c.connect()
        try:
            await sub.subscribe()
            await until(lambda: rec.subscribed, timeout=10, what="subscribed")
            assert (await api_publish(port, {"n": 1}))["result"]["offset"] == 1
            await sub.publish({"n": 2})
            await until(lambda: rec.data == [{"n": 1}, {"n": 2}], timeout=10, what=f"deliveries {rec.data}")
            # exported while the node runs (batches every 100 ms), not only at close
            await until(lambda: len(collector.named("squall.fanout")) == 2, timeout=10, what=f"spans {[s.name for s in collector.spans()]}")
        finally:
            await c.disconnect()
    assert collector.content_types and set(collector.content_types) == {"application/x-protobuf"}
    assert {s.service for s in collector.spans()} == {SERVICE}

    api = one_trace(collector, "squall.api.publish")
    assert set(api) == {"squall.api.publish", "squall.publish", "squall.history.append", "squall.fanout"}
    assert api["squall.api.publish"].parent_id == ""
    assert api["squall.api.publish"].attrs == {"method": "publish", "channel": CHANNEL}
    assert api["squall.publish"].parent_id == api["squall.api.publish"].span_id
    assert api["squall.history.append"].parent_id == api["squall.publish"].span_id
    assert api["squall.fanout"].parent_id == api["squall.publish"].span_id
    assert api["squall.fanout"].attrs["deliveries"] == 1 and api["squall.fanout"].attrs["offset"] == 1

    client = one_trace(collector, "squall.client.publish")
    assert set(client) == {"squall.client.publish", "squall.publish", "squall.history.append", "squall.fanout"}
    assert client["squall.client.publish"].parent_id == ""
    assert client["squall.publish"].parent_id == client["squall.client.publish"].span_id
    assert client["squall.history.append"].parent_id == client["squall.publish"].span_id
    assert client["squall.fanout"].parent_id == client["squall.publish"].span_id
    assert client["squall.fanout"].attrs["offset"] == 2
    assert api["squall.api.publish"].trace_id != client["squall.client.publish"].trace_id
    for trace in (api, client):
        assert all(s.attrs["channel"] == CHANNEL for s in trace.values())


@pytest.mark.gen_test(timeout=60)
async def test_a_dead_collector_does_not_break_publishing(tmp_path: Path, fast_batches: None, caplog: pytest.LogCaptureFixture) -> None:
    """Exports to an endpoint nobody listens on fail (logged by the exporter) while API publishes keep answering ok."""
    caplog.set_level(logging.WARNING, logger="opentelemetry.exporter.otlp")
    async with otlp_node(tmp_path, dead_endpoint()) as (port, sq):
        assert sq.ctx.tracer is not None
        assert (await api_publish(port, {"n": 1}))["result"]["offset"] == 1
        await until(lambda: "Failed to export spans batch" in caplog.text, timeout=10, what="a failed export logged")
        for n in (2, 3):
            assert (await api_publish(port, {"n": n}))["result"]["offset"] == n
        stored = await sq.ctx.hub.history(CHANNEL, HistoryQuery(limit=-1))
        assert [p.data for p in stored.publications] == [{"n": 1}, {"n": 2}, {"n": 3}]
        started = time.monotonic()
    # close flushes the last batch into the dead endpoint: bounded by the export timeout (1 s here)
    assert time.monotonic() - started < 5
