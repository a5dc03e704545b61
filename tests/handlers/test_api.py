"""The server API through the official `cent` client (and raw HTTP for the edges).

Every test runs on both HTTP paths: the front door's lean keep-alive path
(handlers.api_conn, the default) and Tornado's ``ApiHandler``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    ChannelsRequest,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import Disconnect as CentDisconnect
from cent.dto import StreamPosition as CentPosition
from cent.exceptions import CentApiResponseError, CentUnauthorizedError
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from handlers.auth import make_token
from tests.helpers.squall_process import serve_door, test_config
from tests.helpers.wsclient import RawClient, connected

KEY = "test-api-key"
SECRET = "test-secret-long-enough-for-hs256-keys!"


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(api_key=KEY, token_hmac_secret_key=SECRET)


@pytest.fixture(params=[True, False], ids=["lean", "tornado"])
def http_server(request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, squall_app: Any) -> Any:
    for door in serve_door(io_loop, _unused_port, squall_app, lean_api=request.param):
        yield door
        # every test makes API calls: on the lean variant they must have taken the lean path
        assert (door.api_connections > 0) == request.param, door.api_connections


@pytest.fixture
def api_url(http_server: Any, http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}/api"


async def _cent(api_url: str, key: str = KEY) -> AsyncClient:
    return AsyncClient(api_url, key, timeout=5)


async def _raw(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, method="POST", body=body, headers=headers or {}, raise_error=False)


async def _user(ws_url: str, user: str) -> RawClient:
    return await connected(ws_url, token=make_token(SECRET, user))


async def _push_of(c: RawClient, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """Next push of ``kind`` (pub, subscribe, ...), skipping others."""
    for _ in range(50):
        push = (await c.next_push(timeout))["push"]
        if kind in push:
            return push
    raise AssertionError(f"no {kind} push")


@pytest.mark.gen_test
async def test_publish_returns_position_and_reaches_subscribers(api_url, ws_url):
    """publish answers {offset, epoch} on a history channel and the subscriber gets it."""
    c = await _user(ws_url, "alice")
    sub = await c.call("subscribe", {"channel": "chat:api"})
    async with await _cent(api_url) as api:
        res = await api.publish(PublishRequest(channel="chat:api", data={"n": 1}, tags={"k": "v"}))
        assert res.offset == 1 and res.epoch == sub["subscribe"]["epoch"]
        res2 = await api.publish(PublishRequest(channel="chat:api", data={"n": 2}))
        assert res2.offset == 2
    p1 = await _push_of(c, "pub")
    p2 = await _push_of(c, "pub")
    assert (p1["pub"]["data"], p1["pub"]["offset"], p1["pub"]["tags"]) == ({"n": 1}, 1, {"k": "v"})
    assert (p2["pub"]["data"], p2["pub"]["offset"]) == ({"n": 2}, 2)
    c.close()


@pytest.mark.gen_test
async def test_publish_without_history_and_bypassing_permissions(api_url, ws_url):
    """A channel without history gives an empty result; namespaces closed to clients accept API publishes."""
    async with await _cent(api_url) as api:
        res = await api.publish(PublishRequest(channel="live:x", data="hi"))
        assert res.offset == 0 and res.epoch == ""
        # channels without a namespace are closed to clients in the test config
        res = await api.publish(PublishRequest(channel="plain", data=[1, 2]))
        assert res.offset == 0


@pytest.mark.gen_test
async def test_publish_errors_unknown_namespace_and_bad_channel(api_url):
    """Unknown namespace is 102, an invalid channel name 107, missing data 107."""
    async with await _cent(api_url) as api:
        with pytest.raises(CentApiResponseError) as e:
            await api.publish(PublishRequest(channel="nosuch:x", data=1))
        assert e.value.code == 102
        with pytest.raises(CentApiResponseError) as e:
            await api.publish(PublishRequest(channel="chat:has space", data=1))
        assert e.value.code == 107
    r = await _raw(api_url + "/publish", b'{"channel": "chat:a"}', {"X-API-Key": KEY})
    assert r.code == 200 and orjson.loads(r.body)["error"]["code"] == 107


@pytest.mark.gen_test
async def test_publish_idempotency_key_publishes_once(api_url):
    """Two publishes with one idempotency_key store one publication."""
    async with await _cent(api_url) as api:
        a = await api.publish(PublishRequest(channel="chat:idem", data=1, idempotency_key="k1"))
        b = await api.publish(PublishRequest(channel="chat:idem", data=1, idempotency_key="k1"))
        assert a.offset == b.offset == 1
        h = await api.history(HistoryRequest(channel="chat:idem", limit=10))
        assert [p.data for p in h.publications] == [1]


@pytest.mark.gen_test
async def test_broadcast_answers_per_channel(api_url):
    """broadcast publishes to each channel and reports each result or error."""
    async with await _cent(api_url) as api:
        res = await api.broadcast(BroadcastRequest(channels=["chat:b1", "chat:b2", "nosuch:x"], data={"v": 1}))
    assert [r.result.offset if r.result else None for r in res.responses] == [1, 1, None]
    assert res.responses[2].error is not None and res.responses[2].error.code == 102


@pytest.mark.gen_test
async def test_subscribe_unsubscribe_user_server_side(api_url, ws_url):
    """subscribe/unsubscribe act on every connection of the user, with pushes."""
    bobs = [await _user(ws_url, "bob"), await _user(ws_url, "bob")]
    other = await _user(ws_url, "carol")
    async with await _cent(api_url) as api:
        await api.subscribe(SubscribeRequest(user="bob", channel="chat:srv"))
        for c in bobs:
            push = await _push_of(c, "subscribe")
            assert push["channel"] == "chat:srv"
        r = await other.call("presence_stats", {"channel": "chat:srv"})
        assert r["presence_stats"] == {"num_clients": 2, "num_users": 1}
        await api.publish(PublishRequest(channel="chat:srv", data="x"))
        for c in bobs:
            assert (await _push_of(c, "pub"))["pub"]["data"] == "x"
        await api.unsubscribe(UnsubscribeRequest(user="bob", channel="chat:srv"))
        for c in bobs:
            push = await _push_of(c, "unsubscribe")
            assert push["channel"] == "chat:srv"
        with pytest.raises(CentApiResponseError) as e:
            await api.subscribe(SubscribeRequest(user="bob", channel="nosuch:x"))
        assert e.value.code == 102
    # carol was never subscribed: her connection saw nothing
    r = await other.call("presence_stats", {"channel": "chat:srv"})
    assert r["presence_stats"] == {"num_clients": 0, "num_users": 0}
    assert other.pushes == []
    for c in bobs:
        c.close()
    other.close()


@pytest.mark.gen_test
async def test_disconnect_and_refresh_expired(api_url, ws_url):
    """disconnect closes with the given code; refresh expired closes with 3005."""
    c1 = await _user(ws_url, "dave")
    c2 = await _user(ws_url, "erin")
    async with await _cent(api_url) as api:
        await api.disconnect(DisconnectRequest(user="dave", disconnect=CentDisconnect(code=4000, reason="bye")))
        assert await c1.wait_closed() == (4000, "bye")
        await api.refresh(RefreshRequest(user="erin", expired=True))
        code, _ = await c2.wait_closed()
        assert code == 3005
        with pytest.raises(CentApiResponseError) as e:
            await api.disconnect(DisconnectRequest(user="x", disconnect=CentDisconnect(code=1, reason="")))
        assert e.value.code == 107


@pytest.mark.gen_test
async def test_presence_and_stats(api_url, ws_url):
    """presence lists subscribed clients; a channel without presence answers 108."""
    c = await _user(ws_url, "frank")
    await c.call("subscribe", {"channel": "chat:pres"})
    async with await _cent(api_url) as api:
        p = await api.presence(PresenceRequest(channel="chat:pres"))
        assert [i.user for i in p.presence.values()] == ["frank"]
        s = await api.presence_stats(PresenceStatsRequest(channel="chat:pres"))
        assert (s.num_clients, s.num_users) == (1, 1)
        with pytest.raises(CentApiResponseError) as e:
            await api.presence(PresenceRequest(channel="plain"))
        assert e.value.code == 108
    c.close()


@pytest.mark.gen_test
async def test_history_query_and_remove(api_url):
    """history honours limit/since/reverse; history_remove empties it; no history is 108."""
    async with await _cent(api_url) as api:
        for i in range(5):
            await api.publish(PublishRequest(channel="chat:h", data=i))
        h = await api.history(HistoryRequest(channel="chat:h", limit=2, reverse=True))
        assert [p.data for p in h.publications] == [4, 3] and h.offset == 5
        h2 = await api.history(HistoryRequest(channel="chat:h", limit=10, since=CentPosition(offset=3, epoch=h.epoch)))
        assert [p.offset for p in h2.publications] == [4, 5]
        top = await api.history(HistoryRequest(channel="chat:h"))
        assert top.publications == [] and top.offset == 5
        await api.history_remove(HistoryRemoveRequest(channel="chat:h"))
        after = await api.history(HistoryRequest(channel="chat:h", limit=10))
        assert after.publications == []
        with pytest.raises(CentApiResponseError) as e:
            await api.history(HistoryRequest(channel="live:x", limit=1))
        assert e.value.code == 108


@pytest.mark.gen_test
async def test_channels_and_info(api_url, ws_url):
    """channels lists active channels with counts (pattern filters); info lists this node."""
    c = await _user(ws_url, "gina")
    await c.call("subscribe", {"channel": "chat:one"})
    await c.call("subscribe", {"channel": "live:two"})
    async with await _cent(api_url) as api:
        ch = await api.channels(ChannelsRequest())
        assert {k: v.num_clients for k, v in ch.channels.items()} == {"chat:one": 1, "live:two": 1}
        ch = await api.channels(ChannelsRequest(pattern="chat:*"))
        assert list(ch.channels) == ["chat:one"]
        info = await api.info(InfoRequest())
        assert len(info.nodes) == 1
        node = info.nodes[0]
        assert node.num_clients == 1 and node.num_subs == 2 and node.version
    c.close()


@pytest.mark.gen_test
async def test_batch_sequential_and_parallel(api_url):
    """batch runs commands in order (or in parallel) and answers each."""
    async with await _cent(api_url) as api:
        res = await api.batch(BatchRequest(requests=[
            PublishRequest(channel="chat:batch", data=1),
            PublishRequest(channel="chat:batch", data=2),
            HistoryRequest(channel="chat:batch", limit=10),
        ]))
        assert [r.offset for r in res.replies[:2]] == [1, 2]
        assert [p.data for p in res.replies[2].publications] == [1, 2]
        res = await api.batch(BatchRequest(requests=[InfoRequest(), PresenceStatsRequest(channel="chat:batch")], parallel=True))
        assert len(res.replies) == 2
    r = await _raw(api_url + "/batch", orjson.dumps({"commands": [{"publish": {"channel": "nosuch:x", "data": 1}}, {"info": {}}]}), {"X-API-Key": KEY})
    replies = orjson.loads(r.body)["replies"]
    assert replies[0] == {"error": {"code": 102, "message": "unknown channel"}} and "info" in replies[1]


@pytest.mark.gen_test
async def test_bad_key_is_401(api_url):
    """A wrong or missing key is refused with 401 before anything runs."""
    async with await _cent(api_url, key="wrong") as api:
        with pytest.raises(CentUnauthorizedError):
            await api.publish(PublishRequest(channel="chat:k", data=1))
    r = await _raw(api_url + "/info", b"{}")
    assert r.code == 401
    r = await _raw(api_url + "/info", b"{}", {"Authorization": "apikey wrong"})
    assert r.code == 401
    r = await _raw(api_url + "/history", b'{"channel": "chat:k", "limit": 5}', {"X-API-Key": KEY})
    assert orjson.loads(r.body)["result"]["publications"] == []


@pytest.mark.gen_test
async def test_authorization_header_and_legacy_endpoint(api_url):
    """`Authorization: apikey` works, and so does POST /api with {method, params}."""
    r = await _raw(api_url + "/publish", b'{"channel": "chat:auth", "data": 7}', {"Authorization": f"apikey {KEY}"})
    assert r.code == 200 and orjson.loads(r.body)["result"]["offset"] == 1
    r = await _raw(api_url, b'{"method": "history", "params": {"channel": "chat:auth", "limit": 1}}', {"X-API-Key": KEY})
    assert [p["data"] for p in orjson.loads(r.body)["result"]["publications"]] == [7]


@pytest.mark.gen_test
async def test_malformed_json_unknown_method_and_bad_params(api_url):
    """Malformed JSON is HTTP 400, an unknown method 404 (code 104), non-object params 400."""
    h = {"X-API-Key": KEY}
    r = await _raw(api_url + "/publish", b'{"channel": ', h)
    assert r.code == 400 and orjson.loads(r.body)["error"]["code"] == 107
    r = await _raw(api_url + "/publish", b"[1, 2]", h)
    assert r.code == 400
    r = await _raw(api_url + "/no_such_method", b"{}", h)
    assert r.code == 404 and orjson.loads(r.body)["error"]["code"] == 104
    r = await _raw(api_url + "/history", b'{"channel": "chat:x", "limit": "ten"}', h)
    assert r.code == 200 and orjson.loads(r.body)["error"]["code"] == 107


class TestApiOff:
    """Without api_key the API does not exist unless api_insecure is set."""

    @pytest.fixture
    def squall_config(self) -> dict[str, Any]:
        return test_config()

    @pytest.mark.gen_test
    async def test_api_is_off_without_key(self, api_url):
        """No key configured: every API path answers 404."""
        r = await _raw(api_url + "/info", b"{}", {"X-API-Key": ""})
        assert r.code == 404


class TestApiInsecure:
    """api_insecure serves the API without a key (trusted networks only)."""

    @pytest.fixture
    def squall_config(self) -> dict[str, Any]:
        return test_config(api_insecure=True)

    @pytest.mark.gen_test
    async def test_api_insecure_needs_no_key(self, api_url):
        """With api_insecure, cent with an empty key publishes."""
        async with AsyncClient(api_url, "", timeout=5) as api:
            res = await api.publish(PublishRequest(channel="chat:open", data=1))
        assert res.offset == 1
