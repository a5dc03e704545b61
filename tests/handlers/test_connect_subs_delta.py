"""A connect's ``subs`` entries: ``delta`` is honoured for server-side subscriptions, ``tf`` is refused, never ignored."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from channels import errors
from channels.delta_fossil import apply
from handlers.auth import make_token
from handlers.requests import ConnectRequest
from server.app import Squall
from tests.helpers.squall_process import OPEN_NAMESPACE, test_config
from tests.helpers.wsclient import RawClient
from tests.interop.test_centrifuge_js_delta import dashboard_docs

SECRET = "connect-subs-secret-0123456789-abcdef"
DASH = {"name": "dash", **OPEN_NAMESPACE, "allowed_delta_types": ["fossil"], "allow_tags_filter": True}
LEAF = {"key": "t", "cmp": "eq", "val": "a"}


@pytest.fixture
def squall_config() -> dict[str, Any]:
    return test_config(token_hmac_secret_key=SECRET, namespaces=[{"name": "chat", **OPEN_NAMESPACE}, DASH])


@pytest.mark.parametrize(
    "entry",
    [{"tf": LEAF}, {"recover": True, "offset": 1, "epoch": "e", "tf": LEAF}, {"delta": "brotli"}, {"delta": 5}],
)
def test_connect_subs_refusals_disconnect(entry: dict[str, Any]) -> None:
    """A tags filter or an unknown delta type in a connect subs entry is 3501, not silently dropped."""
    with pytest.raises(errors.Disconnect) as e:
        ConnectRequest.parse({"subs": {"dash:x": entry}})
    assert e.value.code == 3501


def test_connect_subs_as_the_sdks_send_them_parse() -> None:
    """centrifuge-js/python's reconnect subs ({recover, offset, epoch}) and a fossil delta are accepted."""
    r = ConnectRequest.parse({"subs": {"a": {"recover": True, "offset": 3, "epoch": "e"}, "b": {"delta": "fossil"}}})
    assert set(r.subs) == {"a", "b"}


async def _pubs(c: RawClient, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        push = (await c.next_push())["push"]
        if "pub" in push:
            out.append(push["pub"])
    return out


@pytest.mark.gen_test
async def test_connect_subs_delta_is_honoured(ws_url: str, squall_app: Squall) -> None:
    """A server-side subscription asked with delta: fossil gets delta: true and fossil deltas that decode exactly."""
    token = make_token(SECRET, "alice", channels=["dash:x", "chat:y"])
    c = await RawClient.open(ws_url)
    reply = await c.call("connect", {"token": token, "subs": {"dash:x": {"delta": "fossil"}, "chat:y": {"delta": "fossil"}}})
    subs = reply["connect"]["subs"]
    assert subs["dash:x"].get("delta") is True
    assert "delta" not in subs["chat:y"]  # not allowed there: not negotiated, and the reply says so
    docs = dashboard_docs(4)
    for d in docs:
        await squall_app.ctx.hub.publish("dash:x", d)
    pubs = await _pubs(c, len(docs))
    assert [bool(p.get("delta")) for p in pubs] == [False, True, True, True]
    prev = b""
    for p, doc in zip(pubs, docs):
        raw = p["data"].encode("utf-8")
        prev = apply(prev, raw) if p.get("delta") else raw
        assert json.loads(prev) == doc
    assert sum(len(p["data"]) for p in pubs[1:]) < len(orjson.dumps(docs[1]))  # the deltas are smaller than one full
    c.close()


@pytest.mark.gen_test
async def test_connect_subs_tf_disconnects(ws_url: str) -> None:
    """A connect whose subs entry carries tf ends with 3501 instead of a subscription that filters nothing."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": make_token(SECRET, "alice", channels=["dash:x"]), "subs": {"dash:x": {"tf": LEAF}}}})
    code, _ = await c.wait_closed()
    assert code == 3501


def test_protobuf_connect_subs_reach_the_same_parse() -> None:
    """A protobuf ConnectRequest's subs (map<string, SubscribeRequest>) keep delta and tf, so tf there is 3501 too."""
    from handlers.codec_protobuf import to_command
    from handlers.proto import client_pb2 as pb

    cmd = pb.Command(id=1)
    cmd.connect.subs["dash:x"].delta = "fossil"
    cmd.connect.subs["dash:y"].recover = True
    parsed = to_command(cmd.SerializeToString())
    assert ConnectRequest.parse(parsed.params).subs == {"dash:x": {"delta": "fossil"}, "dash:y": {"recover": True}}
    cmd.connect.subs["dash:z"].tf.key = "t"
    with pytest.raises(errors.Disconnect) as e:
        ConnectRequest.parse(to_command(cmd.SerializeToString()).params)
    assert e.value.code == 3501
