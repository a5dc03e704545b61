"""Subscribe delta/tf/type and publish tags/type: each bad value gets Centrifugo's answer, not silence."""

from __future__ import annotations

from typing import Any

import pytest

from channels import errors
from handlers.requests import PublishRequest, SubscribeRequest
from tests.helpers.squall_process import OPEN_NAMESPACE, test_config
from tests.helpers.wsclient import connected

LEAF = {"key": "t", "cmp": "eq", "val": "a"}


def test_subscribe_fields_parse() -> None:
    """delta and tf are read; a valid filter becomes a Filter."""
    r = SubscribeRequest.parse({"channel": "c", "delta": "fossil"})
    assert r.delta == "fossil" and r.tags_filter is None
    r = SubscribeRequest.parse({"channel": "c", "tf": LEAF})
    assert r.tags_filter is not None and r.tags_filter.match({"t": "a"})


@pytest.mark.parametrize(
    "params, code",
    [
        ({"delta": "brotli"}, 3501),
        ({"tf": {"key": "t", "cmp": "eq"}}, 3501),
        ({"tf": LEAF, "delta": "fossil"}, 3501),
    ],
)
def test_subscribe_refusals_disconnect(params: dict[str, Any], code: int) -> None:
    """Unknown delta type, invalid filter, delta with a filter: disconnect 3501, as Centrifugo."""
    with pytest.raises(errors.Disconnect) as e:
        SubscribeRequest.parse({"channel": "c", **params})
    assert e.value.code == code


@pytest.mark.parametrize("params", [{"type": 1}, {"type": 4}])
def test_unserved_subscription_types_are_108(params: dict[str, Any]) -> None:
    """Map, presence and shared-poll subscriptions are not available (108), not silently a stream."""
    with pytest.raises(errors.NotAvailable):
        SubscribeRequest.parse({"channel": "c", **params})


def test_publish_tags_and_map_fields() -> None:
    """Client publish takes string tags; bad tags are 107; map publishes (type 1, key, removed) are 108."""
    assert PublishRequest.parse({"channel": "c", "data": 1, "tags": {"a": "b"}}).tags == {"a": "b"}
    with pytest.raises(errors.BadRequest):
        PublishRequest.parse({"channel": "c", "data": 1, "tags": {"a": 1}})
    for extra in ({"type": 1}, {"key": "k"}, {"removed": True}):
        with pytest.raises(errors.NotAvailable):
            PublishRequest.parse({"channel": "c", "data": 1, **extra})


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(namespaces=[{"name": "plain", **OPEN_NAMESPACE}])


@pytest.mark.gen_test
async def test_filter_where_not_allowed_disconnects(http_server, ws_url):
    """A tags filter on a namespace without allow_tags_filter: 3501; delta there is simply not negotiated."""
    c = await connected(ws_url)
    reply = await c.call("subscribe", {"channel": "plain:a", "delta": "fossil"})
    assert "delta" not in reply["subscribe"]
    await c.send({"id": 9, "subscribe": {"channel": "plain:b", "tf": LEAF}})
    code, _ = await c.wait_closed()
    assert code == 3501
