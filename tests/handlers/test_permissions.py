"""Per-namespace permissions, private and user-limited channels, and the server-API bypass."""

from __future__ import annotations

from typing import Any

import pytest

from channels.errors import PermissionDenied
from channels.namespaces import NamespaceOptions
from handlers.auth import make_token
from handlers.permissions import Action, check
from server.app import Squall
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected

SECRET = "perm-secret-0123456789-abcdefghijk"

MEMBERS = {
    "presence": True,
    "history_size": 10,
    "history_ttl": 60,
    "allow_subscribe_for_client": True,
    "allow_publish_for_subscriber": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(
        token_hmac_secret_key=SECRET,
        namespaces=[
            {"name": "closed", "presence": True, "history_size": 10, "history_ttl": 60},
            {"name": "members", **MEMBERS},
            {
                "name": "public",
                **MEMBERS,
                "allow_subscribe_for_anonymous": True,
                "allow_publish_for_anonymous": True,
                "allow_presence_for_anonymous": True,
                "allow_history_for_anonymous": True,
            },
            {
                "name": "dialog",
                **MEMBERS,
                "allow_user_limited_channels": True,
                "allow_publish_for_client": True,
                "allow_history_for_client": True,
            },
        ],
    )


async def as_user(ws_url: str, user: str) -> RawClient:
    if not user:
        return await connected(ws_url)
    return await connected(ws_url, token=make_token(SECRET, user))


def code(reply: dict[str, Any]) -> int:
    return int(reply["error"]["code"]) if "error" in reply else 0


# ------------------------------------------------------------ the rules, unit level
OPTS = NamespaceOptions(name="ns", **MEMBERS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "action,channel,user,subscribed,allowed",
    [
        (Action.SUBSCRIBE, "ns:a", "u1", False, True),
        (Action.SUBSCRIBE, "ns:a", "", False, False),  # anonymous needs allow_*_for_anonymous
        (Action.PUBLISH, "ns:a", "u1", False, False),  # subscriber-only
        (Action.PUBLISH, "ns:a", "u1", True, True),
        (Action.PRESENCE, "ns:a", "u1", True, True),
        (Action.HISTORY, "ns:a", "u1", False, False),
        (Action.SUBSCRIBE, "ns:$a", "u1", False, False),  # private: token only
        (Action.SUBSCRIBE, "ns:#u1,u2", "u1", False, False),  # user-limited needs the option
    ],
)
def test_rule_table(action: Action, channel: str, user: str, subscribed: bool, allowed: bool) -> None:
    """The permission function agrees with the documented rule for each case."""
    if allowed:
        check(action, channel, OPTS, user, subscribed)
    else:
        with pytest.raises(PermissionDenied):
            check(action, channel, OPTS, user, subscribed)


def test_user_limited_rules() -> None:
    """Only listed users pass a user-limited channel, for every action; the boundary is the last '#'."""
    opts = NamespaceOptions(name="d", allow_user_limited_channels=True, allow_publish_for_client=True)
    check(Action.SUBSCRIBE, "d:#42,43", opts, "42", False)
    check(Action.PUBLISH, "d:#42,43", opts, "43", False)
    for user in ("44", "", "4", "42,43"):
        with pytest.raises(PermissionDenied):
            check(Action.SUBSCRIBE, "d:#42,43", opts, user, False)
    with pytest.raises(PermissionDenied):
        check(Action.PUBLISH, "d:#42,43", opts, "44", False)  # publish-for-client does not open it
    with pytest.raises(PermissionDenied):
        check(Action.SUBSCRIBE, "d:a#42#44", opts, "42", False)


def test_private_channel_not_opened_by_for_client() -> None:
    """allow_publish_for_client does not let non-subscribers publish into a '$' channel."""
    opts = NamespaceOptions(name="p", allow_publish_for_client=True, allow_publish_for_subscriber=True)
    with pytest.raises(PermissionDenied):
        check(Action.PUBLISH, "p:$x", opts, "u1", False)
    check(Action.PUBLISH, "p:$x", opts, "u1", True)
    check(Action.PUBLISH, "p:x", opts, "u1", False)


# ------------------------------------------------------------ over the wire
@pytest.mark.gen_test
async def test_closed_namespace_refuses_everything(ws_url: str, squall_app: Squall) -> None:
    """A namespace with default options: subscribe, publish, presence, history are all 103."""
    c = await as_user(ws_url, "alice")
    for method, params in (
        ("subscribe", {"channel": "closed:x"}),
        ("publish", {"channel": "closed:x", "data": 1}),
        ("presence", {"channel": "closed:x"}),
        ("presence_stats", {"channel": "closed:x"}),
        ("history", {"channel": "closed:x", "limit": 5}),
    ):
        assert code(await c.call(method, params)) == 103, method
    assert squall_app.ctx.hub.num_channels == 0
    c.close()


@pytest.mark.gen_test
async def test_members_namespace_authenticated_and_subscriber_rules(ws_url: str) -> None:
    """Anonymous cannot subscribe; a user can, and may publish, see presence and history only once subscribed."""
    anon = await as_user(ws_url, "")
    assert code(await anon.call("subscribe", {"channel": "members:r"})) == 103
    u = await as_user(ws_url, "alice")
    assert code(await u.call("publish", {"channel": "members:r", "data": 1})) == 103
    assert code(await u.call("history", {"channel": "members:r"})) == 103
    assert code(await u.call("presence", {"channel": "members:r"})) == 103
    assert code(await u.call("subscribe", {"channel": "members:r"})) == 0
    assert code(await u.call("publish", {"channel": "members:r", "data": 1})) == 0
    assert code(await u.call("history", {"channel": "members:r"})) == 0
    assert code(await u.call("presence", {"channel": "members:r"})) == 0
    anon.close()
    u.close()


@pytest.mark.gen_test
async def test_anonymous_allowed_where_configured(ws_url: str) -> None:
    """With allow_*_for_anonymous an anonymous connection subscribes and publishes."""
    anon = await as_user(ws_url, "")
    assert code(await anon.call("subscribe", {"channel": "public:r"})) == 0
    assert code(await anon.call("publish", {"channel": "public:r", "data": "hi"})) == 0
    push = await anon.next_push()
    assert push["push"]["pub"]["data"] == "hi"
    anon.close()


@pytest.mark.gen_test
async def test_user_limited_channel_only_for_listed_users(ws_url: str, squall_app: Squall) -> None:
    """dialog:#42,43 is reachable by users 42 and 43 only: others get 103 for every action."""
    u42, u43, u44 = await as_user(ws_url, "42"), await as_user(ws_url, "43"), await as_user(ws_url, "44")
    anon = await as_user(ws_url, "")
    ch = "dialog:#42,43"
    assert code(await u42.call("subscribe", {"channel": ch})) == 0
    assert code(await u43.call("subscribe", {"channel": ch})) == 0
    for c in (u44, anon):
        assert code(await c.call("subscribe", {"channel": ch})) == 103
        assert code(await c.call("publish", {"channel": ch, "data": "intrude"})) == 103
        assert code(await c.call("history", {"channel": ch})) == 103
    assert code(await u43.call("publish", {"channel": ch, "data": "hi 42"})) == 0
    push = await u42.next_push()
    assert push["push"]["pub"]["data"] == "hi 42"
    hub = squall_app.ctx.hub
    assert {s.user for s in hub.clients() if hub.is_subscribed(s, ch)} == {"42", "43"}
    for c in (u42, u43, u44, anon):
        c.close()


@pytest.mark.gen_test
async def test_server_api_path_bypasses_permissions(ws_url: str, squall_app: Squall) -> None:
    """The server API's path (hub control subscribe, hub publish) reaches a closed channel."""
    c = await as_user(ws_url, "alice")
    hub = squall_app.ctx.hub
    await hub.send_control("subscribe", user="alice", channel="closed:ops")
    push = await c.next_push()
    assert push["push"]["channel"] == "closed:ops" and "subscribe" in push["push"]
    await hub.publish("closed:ops", {"from": "server"})
    push = await c.next_push()
    assert push["push"]["pub"]["data"] == {"from": "server"}
    # the client itself still may not publish there
    assert code(await c.call("publish", {"channel": "closed:ops", "data": 1})) == 103
    c.close()

