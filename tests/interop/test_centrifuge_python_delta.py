"""centrifuge-python (unchanged): fossil delta and tags filters over JSON and protobuf."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler
from centrifuge.client import DeltaType
from centrifuge.filter import Filter

from tests.helpers.squall_process import OPEN_NAMESPACE, test_config
from tests.interop.test_centrifuge_js_delta import dashboard_docs

DASH = {"name": "dash", **OPEN_NAMESPACE, "allowed_delta_types": ["fossil"], "allow_tags_filter": True}


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(namespaces=[DASH])


class Got(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.data: list[Any] = []
        self.deltas: list[bool] = []
        self.subscribed = asyncio.Event()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.set()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.data.append(ctx.pub.data)
        self.deltas.append(bool(getattr(ctx.pub, "delta", False)))


async def until(cond: Any, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)


def decoded(data: Any) -> Any:
    """Protobuf clients get the JSON bytes; JSON clients the value."""
    return json.loads(data) if isinstance(data, (bytes, bytearray)) else data


@pytest.mark.gen_test
@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_python_sdk_decodes_deltas_and_filters(http_server: Any, ws_url: str, squall_app: Any, protobuf: bool) -> None:
    """centrifuge-python (JSON and protobuf) decodes 1 full + 5 fossil deltas exactly; its tags filter lets through only BTC."""
    hub = squall_app.ctx.hub
    client = Client(ws_url, timeout=5.0, use_protobuf=protobuf)
    d, t = Got(), Got()
    ds = client.new_subscription("dash:py", d, delta=DeltaType.FOSSIL)
    ts = client.new_subscription("dash:pyt", t, tags_filter=Filter.eq("ticker", "BTC"))
    await client.connect()
    await ds.subscribe()
    await ts.subscribe()
    await asyncio.wait_for(d.subscribed.wait(), 5)
    await asyncio.wait_for(t.subscribed.wait(), 5)
    assert ds._delta_negotiated is True
    docs = dashboard_docs(6)
    for doc in docs:
        await hub.publish("dash:py", doc)
    for i, ticker in enumerate(["BTC", "ETH", "BTC"]):
        await hub.publish("dash:pyt", {"i": i}, tags={"ticker": ticker})
    await until(lambda: len(d.data) == 6 and len(t.data) == 2)
    assert [decoded(x) for x in d.data] == docs
    assert d.deltas == [False] + [True] * 5
    await asyncio.sleep(0.2)
    assert [decoded(x) for x in t.data] == [{"i": 0}, {"i": 2}]
    await client.disconnect()


class Recovering(Got):
    def __init__(self) -> None:
        super().__init__()
        self.subscribes: list[tuple[bool, bool]] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribes.append((ctx.was_recovering, ctx.recovered))
        self.subscribed.set()


@pytest.mark.gen_test
async def test_delta_survives_recovery(http_server: Any, ws_url: str, squall_app: Any) -> None:
    """A delta subscriber that reconnects recovers the missed versions (full), then deltas resume; all decode exactly."""
    from channels.errors import FORCE_RECONNECT

    hub = squall_app.ctx.hub
    client = Client(ws_url, timeout=5.0, min_reconnect_delay=0.05, max_reconnect_delay=0.2)
    r = Recovering()
    sub = client.new_subscription("dash:rec", r, delta=DeltaType.FOSSIL)
    await client.connect()
    await sub.subscribe()
    await asyncio.wait_for(r.subscribed.wait(), 5)
    docs = dashboard_docs(9)
    for doc in docs[:3]:
        await hub.publish("dash:rec", doc)
    await until(lambda: len(r.data) == 3)
    r.subscribed.clear()
    for c in list(hub.clients()):
        c.disconnect(FORCE_RECONNECT)
    for doc in docs[3:6]:
        await hub.publish("dash:rec", doc)  # while the client is away
    await asyncio.wait_for(r.subscribed.wait(), 5)
    for doc in docs[6:]:
        await hub.publish("dash:rec", doc)
    await until(lambda: len(r.data) == 9)
    assert r.data == docs
    assert r.subscribes == [(False, False), (True, True)]
    # 1 full, 2 deltas; 3 recovered in full; the first live one after resubscribing full, then deltas
    assert r.deltas == [False, True, True, False, False, False, False, True, True]
    await client.disconnect()
