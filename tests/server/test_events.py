"""Lifecycle events under the memory engine, delivered to a real webhook
receiver and to the in-process hook (in-process Squall, centrifuge-python)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from centrifuge import Client

from channels.events_delivery import backoff
from handlers.hooks import Hooks
from server.app import Squall, build
from server.settings import Settings, load
from tests.helpers.backend_app import Answer, Backend, backend  # noqa: F401
from tests.helpers.squall_process import test_config, to_toml
from tests.helpers.waiting import until

SECRET = "s3cret-for-webhook-signatures-0123456789"
ALL = ["channel_occupied", "channel_vacated", "join", "leave", "connect", "disconnect", "publication"]


@pytest.fixture
def hook_events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def squall_settings(backend: Backend, tmp_path: Path) -> Settings:
    cfg = test_config(events_webhook_url=backend.url("/events"), events_webhook_secret=SECRET, events_types=ALL,
                      events_retry_min_delay=0.05, events_retry_max_delay=0.2, events_webhook_timeout=0.5)
    path = tmp_path / "squall.toml"
    path.write_text(to_toml(cfg))
    return load(str(path), environ={})


@pytest.fixture
def squall_app(io_loop: Any, squall_settings: Settings, hook_events: list[dict[str, Any]]) -> Any:
    async def on_event(e: dict[str, Any]) -> None:
        hook_events.append(e)

    sq = build(squall_settings, hooks=Hooks(on_event=on_event))
    io_loop.run_sync(sq.start)
    yield sq
    io_loop.run_sync(sq.close)


def received(b: Backend) -> list[dict[str, Any]]:
    return [e for r in b.got("/events") if r.body for e in r.body["events"]]


def verify(r: Any) -> bool:
    ts, sig = r.headers["X-Squall-Timestamp"], r.headers["X-Squall-Signature"]
    want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + r.raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, want)


@pytest.mark.gen_test(timeout=30)
async def test_lifecycle_events_reach_webhook_signed_and_hook(ws_url: str, backend: Backend, squall_app: Squall, hook_events: list[dict[str, Any]]) -> None:
    """connect, occupied, join, publication, leave, vacated, disconnect (its code) reach the webhook (HMAC-signed) and the hook."""
    c = Client(ws_url, timeout=5)
    await c.connect()
    sub = c.new_subscription("chat:ev")
    await sub.subscribe()
    await sub.publish({"n": 1})
    await sub.unsubscribe()
    await c.disconnect()
    await until(lambda: "disconnect" in [e["type"] for e in received(backend)], timeout=10)
    events = received(backend)
    kinds = [e["type"] for e in events]
    assert kinds == ["connect", "channel_occupied", "join", "publication", "leave", "channel_vacated", "disconnect"]
    assert len({e["id"] for e in events}) == len(events)
    assert all(verify(r) for r in backend.got("/events"))
    by = {e["type"]: e for e in events}
    assert by["publication"]["channel"] == "chat:ev" and by["publication"]["data"] == {"n": 1} and by["publication"]["offset"] == 1
    assert by["disconnect"]["code"] == 3000 and by["connect"]["client"] == by["disconnect"]["client"]
    assert by["join"]["info"]["client"] == by["connect"]["client"]
    await until(lambda: len(hook_events) == len(events))
    assert [e["id"] for e in hook_events] == [e["id"] for e in events]


@pytest.mark.gen_test(timeout=60)
async def test_webhook_errors_are_retried_with_the_same_ids(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A receiver answering 503 gets the same batch again (same ids) until it takes it; the counters say so."""
    state = {"fail": 3}

    def answer(body: Any) -> Answer:
        if state["fail"] > 0:
            state["fail"] -= 1
            return Answer({"error": "down"}, status=503)
        return Answer({})

    backend.answer("/events", answer)
    await squall_app.ctx.hub.publish("chat:retry", {"x": 1})
    await until(lambda: any(e["type"] == "publication" for e in received(backend)) and state["fail"] == 0, timeout=10)
    await until(lambda: len(backend.got("/events")) >= 4, timeout=10)
    bodies = [r.body["events"] for r in backend.got("/events")]
    assert all([e["id"] for e in b] == [e["id"] for e in bodies[0]] for b in bodies[:4])
    stats = squall_app.ctx.events.stats  # type: ignore[union-attr]
    await until(lambda: stats.sent >= 1)
    assert stats.retried >= 3 and stats.queued >= 1 and stats.failed == 0


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Delays double from the minimum, stop at the cap, and keep 50-100 % of it."""
    assert backoff(1, 0.2, 10.0, rnd=lambda: 1.0) == pytest.approx(0.2)
    assert backoff(3, 0.2, 10.0, rnd=lambda: 1.0) == pytest.approx(0.8)
    assert backoff(30, 0.2, 10.0, rnd=lambda: 1.0) == pytest.approx(10.0)
    assert backoff(30, 0.2, 10.0, rnd=lambda: 0.0) == pytest.approx(5.0)


@pytest.mark.gen_test(timeout=30)
async def test_server_disconnect_code_in_event_and_hook(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A server-side disconnect (3503) is the disconnect event's code and the on_disconnect hook's."""
    from channels import errors

    c = Client(ws_url, timeout=5)
    await c.connect()
    await until(lambda: squall_app.ctx.hub.num_clients == 1)
    [s] = squall_app.ctx.hub.clients()
    squall_app.ctx.hub.disconnect_user(s.user, errors.FORCE_NO_RECONNECT)
    await until(lambda: any(e["type"] == "disconnect" for e in received(backend)), timeout=10)
    [d] = [e for e in received(backend) if e["type"] == "disconnect"]
    assert d["code"] == 3503 and d["client"] == s.client_id
    await c.disconnect()


@pytest.mark.gen_test(timeout=30)
async def test_metrics_count_queued_sent_retried_failed(http_port: int, http_server: Any, backend: Backend, squall_app: Squall) -> None:
    """/metrics has squall_events_{queued,sent,retried,failed}_total with the delivery's numbers."""
    from tornado.httpclient import AsyncHTTPClient

    await squall_app.ctx.hub.publish("chat:m", {"x": 1})
    await until(lambda: squall_app.ctx.events.stats.sent >= 1, timeout=10)  # type: ignore[union-attr]
    text = (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/metrics")).body.decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("squall_events_")}
    assert values["squall_events_queued_total"] >= 1 and values["squall_events_sent_total"] >= 1
    assert values["squall_events_retried_total"] == 0 and values["squall_events_failed_total"] == 0


class Transitions:
    """A HubEvents recorder: what the hub reports, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def occupied(self, channel: str) -> None:
        self.seen.append(("occupied", channel))

    def vacated(self, channel: str) -> None:
        self.seen.append(("vacated", channel))

    def join(self, channel: str, info: Any) -> None:
        self.seen.append(("join", info.client))

    def leave(self, channel: str, info: Any) -> None:
        self.seen.append(("leave", info.client))

    def publication(self, channel: str, pub: Any, pos: Any) -> None:
        self.seen.append(("publication", channel))

    def heartbeat(self, ttl: float) -> None:
        pass


@pytest.mark.gen_test
async def test_hub_reports_occupancy_of_subscribers_not_observers() -> None:
    """An observer (the admin UI's watch) neither occupies nor vacates a channel; the first and last subscriber do."""
    from channels.types import ClientInfo
    from tests.channels.test_hub import FakeSub, make_hub

    hub = make_hub()
    rec = Transitions()
    hub.events = rec
    await hub.start()
    try:
        watcher, a, b = FakeSub("w"), FakeSub("a"), FakeSub("b")
        opts = hub.namespaces.lookup("h:x")
        await hub.subscribe(watcher, "h:x", opts, ClientInfo("w"), observe=True)
        assert rec.seen == []
        await hub.subscribe(a, "h:x", opts, ClientInfo("a"))
        await hub.subscribe(b, "h:x", opts, ClientInfo("b"))
        await hub.unsubscribe(a, "h:x", ClientInfo("a"))
        await hub.unsubscribe(b, "h:x", ClientInfo("b"))
        await hub.unsubscribe(watcher, "h:x", ClientInfo("w"))
        assert rec.seen == [("occupied", "h:x"), ("join", "a"), ("join", "b"), ("leave", "a"), ("leave", "b"), ("vacated", "h:x")]
    finally:
        await hub.close()


@pytest.mark.gen_test(timeout=30)
async def test_slow_receiver_times_out_and_gets_the_batch_again(ws_url: str, backend: Backend, squall_app: Squall) -> None:
    """A receiver slower than events_webhook_timeout: the POST is abandoned and the same events come again."""
    calls: list[int] = []

    def answer(body: Any) -> Answer:
        calls.append(1)
        return Answer({}, delay=2.0 if len(calls) == 1 else 0.0)

    backend.answer("/events", answer)
    await squall_app.ctx.hub.publish("chat:slow", {"x": 1})
    await until(lambda: len(backend.got("/events")) >= 2, timeout=10)
    first, second = backend.got("/events")[:2]
    assert [e["id"] for e in first.body["events"]] == [e["id"] for e in second.body["events"]]
    stats = squall_app.ctx.events.stats  # type: ignore[union-attr]
    await until(lambda: stats.sent >= 1)
    assert stats.retried >= 1
