"""Token refresh through the official centrifuge-python SDK's get_token callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectingContext,
    DisconnectedContext,
    PublicationContext,
    SubscribingContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from handlers.auth import make_token
from server.app import Squall
from tests.helpers.squall_process import OPEN_NAMESPACE, test_config
from tests.helpers.waiting import until

SECRET = "sdk-secret-0123456789-abcdefghijkl"
TTL = 2  # seconds each token lives


@pytest.fixture
def squall_config() -> dict[str, Any]:
    private_ns = {"name": "private", "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True}
    return test_config(
        allow_anonymous_connect_without_token=False,
        token_hmac_secret_key=SECRET,
        # The reply's ttl is whole seconds (it may overstate the time left by up to 1 s) and
        # the SDK refreshes exactly ttl later, so a grace of 1 s would race the expiry timer.
        client_expired_close_delay=2,
        client_expired_sub_close_delay=2,
        namespaces=[{"name": "chat", **OPEN_NAMESPACE}, private_ns],
    )


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.disconnects: list[int] = []

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnects.append(ctx.code)

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        if ctx.code != 0:  # 0 is connect() itself; others (e.g. 3005 expired) are drops the SDK hides
            self.disconnects.append(ctx.code)


class SubEvents(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: list[Any] = []
        self.unsubscribes: list[int] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.pubs.append(ctx.pub.data)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribes.append(ctx.code)

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        if ctx.code != 0:  # 0 is subscribe() itself; others (e.g. 2501 expired) are hidden resubscribes
            self.unsubscribes.append(ctx.code)


@pytest.mark.gen_test(timeout=30)
async def test_sdk_refreshes_connection_and_subscription_tokens(ws_url: str, squall_app: Squall) -> None:
    """Short-lived tokens refreshed by get_token keep the SDK connected and subscribed past several expiries."""
    conn_tokens: list[str] = []
    sub_tokens: list[str] = []

    async def get_token() -> str:
        conn_tokens.append(make_token(SECRET, "alice", ttl=TTL))
        return conn_tokens[-1]

    async def get_sub_token(channel: str) -> str:
        sub_tokens.append(make_token(SECRET, "alice", ttl=TTL, channel=channel))
        return sub_tokens[-1]

    ev, sev = Events(), SubEvents()
    c = Client(ws_url, events=ev, get_token=get_token, min_reconnect_delay=0.05, timeout=5)
    await c.connect()
    sub = c.new_subscription("private:$vault", sev, get_token=get_sub_token)
    await sub.subscribe()
    # past two token lifetimes plus the grace: only refreshes keep us in
    await until(lambda: len(conn_tokens) >= 3 and len(sub_tokens) >= 3, timeout=15)
    await sub.publish("after refreshes")
    await until(lambda: sev.pubs == ["after refreshes"], timeout=10)
    assert ev.disconnects == [] and sev.unsubscribes == []
    assert squall_app.ctx.hub.num_clients == 1
    await c.disconnect()
