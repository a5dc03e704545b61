"""OpenTelemetry tracing: spans of an API publish across two Redis-engine nodes, per-app tracers, and nothing when off."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import msgpack
import pytest
import redis.asyncio as aioredis
import tornado.netutil
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tornado.httpclient import AsyncHTTPClient

from channels import redis_envelope as envelope
from channels import tracing
from channels.types import Publication
from handlers.hooks import Hooks
from server.app import Squall, build
from server.lifecycle import front_door
from server.settings import ConfigError, load
from tests.helpers.backend_app import Backend, backend  # noqa: F401
from tests.helpers.mongo_server import SecantusFactory, SecantusServer, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory, redis_server  # noqa: F401
from tests.helpers.squall_process import test_config, to_toml
from tests.helpers.waiting import until

pytestmark = [pytest.mark.redis, pytest.mark.mongo]

API_KEY = "tracing-test-key"
CHANNEL = "chat:traced"


@dataclass
class MemoryTracing:
    """A tracer to pass to build() and the spans it finished (what tracing = "console" would print)."""

    tracer: tracing.Tracer
    exporter: InMemorySpanExporter

    def get_finished_spans(self) -> Any:
        return self.exporter.get_finished_spans()


@contextlib.contextmanager
def memory_tracing(service_name: str = "squall-test") -> Iterator[MemoryTracing]:
    mem = InMemorySpanExporter()
    tp = tracing.provider("off", service_name, exporter=mem)
    tracer = tracing.tracer_of(tp)
    assert tracer is not None
    try:
        yield MemoryTracing(tracer, mem)
    finally:
        tp.shutdown()


@pytest.fixture
def exporter() -> Iterator[MemoryTracing]:
    """One in-memory tracer; the test hands it to the apps it builds."""
    with memory_tracing() as mt:
        yield mt


def settings_for(tmp: Path, name: str, redis_url: str, mongo_url: str, **extra: Any) -> Any:
    cfg = test_config(
        engine="redis", redis_urls=[redis_url], history="mongo", mongo_url=mongo_url,
        mongo_database="tracing", api_key=API_KEY, **extra,
    )
    path = tmp / f"{name}.toml"
    path.write_text(to_toml(cfg))
    return load(str(path), environ={})


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.data: list[Any] = []
        self.subscribed = False

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.data.append(ctx.pub.data)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed = True


@contextlib.asynccontextmanager
async def two_nodes(tmp: Path, redis_url: str, mongo_url: str, tracer: tracing.Tracer | None) -> AsyncIterator[tuple[int, int, list[Squall]]]:
    """Nodes A and B in this process, each behind its own front door on a free port, both tracing with ``tracer``."""
    nodes, doors, ports = [], [], []
    try:
        for name in ("a", "b"):
            sq = build(settings_for(tmp, name, redis_url, mongo_url), tracer=tracer)
            await sq.start()
            nodes.append(sq)
            door = front_door(sq)
            socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
            door.add_sockets(socks)
            doors.append(door)
            ports.append(socks[0].getsockname()[1])
        yield ports[0], ports[1], nodes
    finally:
        for door in doors:
            door.stop()
            await door.close_all_connections()
        for sq in nodes:
            await sq.close()


async def publish_via_api(port: int, data: Any, headers: dict[str, str] | None = None, channel: str = CHANNEL) -> dict[str, Any]:
    resp = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/api/publish", method="POST",
        headers={"X-API-Key": API_KEY, **(headers or {})}, body=json.dumps({"channel": channel, "data": data}),
    )
    out: dict[str, Any] = json.loads(resp.body)
    return out


async def envelopes(redis_url: str, into: list[tuple[Publication, str | None]]) -> None:
    """Every publication envelope on the Redis server, as another node reads it."""
    r = aioredis.from_url(redis_url)
    ps = r.pubsub()
    await ps.psubscribe("*")
    try:
        async for msg in ps.listen():
            if msg["type"] != "pmessage":
                continue
            try:
                env = envelope.unpack(msg["data"])
            except envelope.BadEnvelope:
                continue
            if env.kind == envelope.PUBLICATION:
                into.append(envelope.traced_publication(env))
    finally:
        await ps.aclose()
        await r.aclose()


async def publish_and_receive(
    tmp: Path, redis_url: str, mongo_url: str, tracer: tracing.Tracer | None, headers: dict[str, str] | None = None
) -> tuple[list[tuple[Publication, str | None]], list[Squall]]:
    """A subscriber on B; an API publish on A; returns the envelopes seen on Redis and the (closed) nodes."""
    seen: list[tuple[Publication, str | None]] = []
    sniffer = asyncio.ensure_future(envelopes(redis_url, seen))
    try:
        async with two_nodes(tmp, redis_url, mongo_url, tracer) as (port_a, port_b, nodes):
            c = Client(f"ws://127.0.0.1:{port_b}/connection/websocket", timeout=5)
            rec = Recorder()
            sub = c.new_subscription(CHANNEL, rec)
            await c.connect()
            await sub.subscribe()
            await until(lambda: rec.subscribed, timeout=10, what="subscribed on B")
            try:
                assert "result" in await publish_via_api(port_a, {"n": 1}, headers)
                await until(lambda: rec.data == [{"n": 1}] and len(seen) >= 1, timeout=10, what=f"delivery {rec.data} and envelope {seen}")
            finally:
                await c.disconnect()
    finally:
        sniffer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sniffer
    return seen, nodes


@pytest.mark.gen_test(timeout=60)
async def test_api_publish_on_a_is_one_trace_through_b(
    tmp_path: Path, redis_server: RedisServer, secantus_factory: SecantusFactory, exporter: MemoryTracing  # noqa: F811
) -> None:
    """API span, publish span, durable write span and B's fan-out span share A's trace id."""
    mongo = secantus_factory()
    seen, _ = await publish_and_receive(tmp_path, redis_server.url, mongo.url, exporter.tracer)
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    api, = by_name["squall.api.publish"]
    publish, = by_name["squall.publish"]
    write, = by_name["squall.history.write"]
    trace_id = api.context.trace_id
    assert api.parent is None and api.attributes["channel"] == CHANNEL
    assert publish.parent.span_id == api.context.span_id and publish.context.trace_id == trace_id
    assert write.parent.span_id == publish.context.span_id and write.attributes["offset"] == 1
    # only B has a subscriber: one fan-out span, on B, child of A's publish span
    fan, = by_name["squall.fanout"]
    node_a, node_b = (str(s.attributes["node"]) for s in (publish, fan))
    assert node_a != node_b
    assert fan.context.trace_id == trace_id and fan.parent.span_id == publish.context.span_id
    assert fan.parent.is_remote and fan.attributes["deliveries"] == 1 and fan.attributes["offset"] == 1
    # the envelope carried the publish span's context
    (pub, tp), = seen
    assert pub.data == {"n": 1}
    assert tp is not None and tp.split("-")[:3] == ["00", f"{trace_id:032x}", f"{publish.context.span_id:016x}"]


@pytest.mark.gen_test(timeout=60)
async def test_api_request_continues_the_callers_traceparent(
    tmp_path: Path, redis_server: RedisServer, secantus_factory: SecantusFactory, exporter: MemoryTracing  # noqa: F811
) -> None:
    """A traceparent header on the API request makes the API span its child."""
    mongo = secantus_factory()
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await publish_and_receive(tmp_path, redis_server.url, mongo.url, exporter.tracer, {"traceparent": caller})
    api, = (s for s in exporter.get_finished_spans() if s.name == "squall.api.publish")
    assert f"{api.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{api.parent.span_id:016x}" == "b7ad6b7169203331"
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {api.context.trace_id}


@pytest.mark.gen_test(timeout=60)
async def test_tracing_off_builds_no_tracer_and_envelopes_carry_no_trace(
    tmp_path: Path, redis_server: RedisServer, secantus_factory: SecantusFactory  # noqa: F811
) -> None:
    """Off (the default): no tracer in hub, broker or context, and the publication envelope has no tp field."""
    mongo = secantus_factory()
    caller = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    seen, nodes = await publish_and_receive(tmp_path, redis_server.url, mongo.url, None, caller)
    for sq in nodes:
        assert sq.tracer_provider is None and sq.ctx.tracer is None and sq.ctx.hub.tracer is None
        assert sq.backends.broker._tracer is None  # type: ignore[attr-defined]
    (pub, tp), = seen
    assert pub.data == {"n": 1} and tp is None
    assert tracing.span(None, "squall.publish", channel="x") is tracing.span(None, "squall.fanout") is tracing.OFF  # the shared no-op


@pytest.mark.gen_test(timeout=30)
async def test_console_mode_hands_one_tracer_to_hub_broker_and_context(tmp_path: Path, capsys: Any) -> None:
    """tracing = "console" in settings: build makes one tracer and passes it to the hub, broker and handler context."""
    path = tmp_path / "s.toml"
    path.write_text(to_toml(test_config(tracing="console", tracing_service_name="svc-x")))
    sq = build(load(str(path), environ={}))
    await sq.start()
    try:
        tracer = sq.ctx.tracer
        assert tracer is not None and sq.tracer_provider is not None
        assert sq.ctx.hub.tracer is tracer and sq.backends.broker._tracer is tracer  # type: ignore[attr-defined]
        with tracing.span(tracer, "squall.probe", channel="c"):
            pass
    finally:
        await sq.close()
    out = capsys.readouterr().out
    assert '"name": "squall.probe"' in out and "svc-x" in out


def test_unknown_tracing_mode_is_a_config_error(tmp_path: Path) -> None:
    """tracing must be off, otlp or console."""
    path = tmp_path / "s.toml"
    path.write_text(to_toml(test_config(tracing="jaeger")))
    with pytest.raises(ConfigError, match="tracing"):
        load(str(path), environ={})


def test_old_readers_ignore_the_trace_field() -> None:
    """An envelope with tp unpacks as five fields and its record reads as a plain publication."""
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    raw = envelope.pack("n1", envelope.PUBLICATION, envelope.record_payload(Publication(data={"a": 1}), tp))
    node, kind, offset, epoch, payload = msgpack.unpackb(raw, raw=True)  # what an older node does
    old = Publication.from_record(msgpack.unpackb(payload, raw=False))
    assert old.data == {"a": 1} and kind == b"p"
    assert envelope.traced_publication(envelope.unpack(raw)) == (envelope.publication(envelope.unpack(raw)), tp)
    plain = envelope.pack("n1", envelope.PUBLICATION, envelope.record_payload(Publication(data={"a": 1})))
    assert envelope.TRACEPARENT not in msgpack.unpackb(msgpack.unpackb(plain, raw=True)[4], raw=False)
    assert envelope.traced_publication(envelope.unpack(plain))[1] is None


@pytest.mark.gen_test(timeout=60)
async def test_client_publish_spans_proxy_hook_append_and_fanout(
    tmp_path: Path, backend: Backend, exporter: MemoryTracing  # noqa: F811
) -> None:
    """Memory engine: a client publish through the publish proxy and an on_publish hook is one trace."""
    seen_by_hook: list[Any] = []

    async def on_publish(info: Any, channel: str, data: Any) -> Any:
        seen_by_hook.append(data)
        return data

    cfg = test_config(proxy_publish_endpoint=backend.url("/publish"))
    cfg["namespaces"] = [{**ns, "proxy_publish": True} if ns["name"] == "chat" else ns for ns in cfg["namespaces"]]
    path = tmp_path / "m.toml"
    path.write_text(to_toml(cfg))
    sq = build(load(str(path), environ={}), Hooks(on_publish=on_publish), tracer=exporter.tracer)
    await sq.start()
    door = front_door(sq)
    socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
    door.add_sockets(socks)
    c = Client(f"ws://127.0.0.1:{socks[0].getsockname()[1]}/connection/websocket", timeout=5)
    try:
        rec = Recorder()
        sub = c.new_subscription(CHANNEL, rec)
        await c.connect()
        await sub.subscribe()
        await until(lambda: rec.subscribed, timeout=10, what="subscribed")
        await sub.publish({"n": 2})
        await until(lambda: rec.data == [{"n": 2}], timeout=10, what="delivery")
    finally:
        await c.disconnect()
        door.stop()
        await door.close_all_connections()
        await sq.close()
    assert seen_by_hook == [{"n": 2}] and len(backend.got("/publish")) == 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["squall.client.publish"]
    assert root.parent is None and root.attributes["channel"] == CHANNEL
    for name, parent in (("squall.proxy", "squall.client.publish"), ("squall.hook", "squall.client.publish"),
                         ("squall.publish", "squall.client.publish"), ("squall.history.append", "squall.publish"),
                         ("squall.fanout", "squall.publish")):
        assert spans[name].parent.span_id == spans[parent].context.span_id, name
        assert spans[name].context.trace_id == root.context.trace_id
    assert spans["squall.proxy"].attributes["event"] == "publish"
    assert spans["squall.hook"].attributes["hook"] == "on_publish"
    assert spans["squall.fanout"].attributes["deliveries"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_otlp_mode_builds_or_names_the_missing_extra(tmp_path: Path) -> None:
    """tracing = "otlp": a tracer when the exporter is installed, else a ConfigError naming the extra."""
    path = tmp_path / "o.toml"
    path.write_text(to_toml(test_config(tracing="otlp", tracing_otlp_endpoint="http://127.0.0.1:9/v1/traces")))
    settings = load(str(path), environ={})
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"tracing: .*squall\[otlp\]"):
            build(settings)
        return
    sq = build(settings)
    await sq.start()
    assert sq.ctx.tracer is not None and sq.ctx.hub.tracer is sq.ctx.tracer
    await sq.close()


@contextlib.asynccontextmanager
async def memory_node(
    tmp: Path, name: str, tracer: tracing.Tracer | None, api_key: str = API_KEY, **config: Any
) -> AsyncIterator[tuple[int, Squall]]:
    """A memory-engine node with the server API (more settings in ``config``), behind a front door on a free port."""
    path = tmp / f"{name}.toml"
    path.write_text(to_toml(test_config(api_key=api_key, **config)))
    sq = build(load(str(path), environ={}), tracer=tracer)
    await sq.start()
    door = front_door(sq)
    socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
    door.add_sockets(socks)
    try:
        yield socks[0].getsockname()[1], sq
    finally:
        door.stop()
        await door.close_all_connections()
        await sq.close()


@pytest.mark.gen_test(timeout=30)
async def test_two_apps_in_one_process_trace_independently(tmp_path: Path) -> None:
    """Each app's spans go to its own tracer only; an app built with tracing off makes none."""
    with memory_tracing("svc-x") as x, memory_tracing("svc-y") as y:
        async with memory_node(tmp_path, "x", x.tracer) as (port_x, _), memory_node(tmp_path, "y", y.tracer) as (port_y, _), \
                memory_node(tmp_path, "z", None) as (port_z, off):
            for port, channel in ((port_x, "chat:x"), (port_y, "chat:y"), (port_z, "chat:z")):
                assert "result" in await publish_via_api(port, {"to": channel}, channel=channel)
            assert off.ctx.tracer is None
        for mt, service, channel in ((x, "svc-x", "chat:x"), (y, "svc-y", "chat:y")):
            spans = mt.get_finished_spans()
            assert {s.name for s in spans} == {"squall.api.publish", "squall.publish", "squall.history.append"}
            assert {s.attributes["channel"] for s in spans} == {channel}
            assert {s.resource.attributes["service.name"] for s in spans} == {service}
