"""Typed requests parse from params alone: good params give typed values, bad ones the documented error."""

from __future__ import annotations

from typing import Any

import pytest

from channels import errors
from channels.types import StreamPosition
from handlers.requests import (
    ChannelRequest,
    ConnectRequest,
    HistoryRequest,
    PublishRequest,
    RefreshRequest,
    RpcRequest,
    NO_STREAM_REQUEST,
    StreamRequest,
    SubRefreshRequest,
    SubscribeRequest,
    channel_param,
)


def test_subscribe_parses_channel_token_and_recovery() -> None:
    """A recovering subscribe carries its position; flags become booleans."""
    req = SubscribeRequest.parse(
        {"channel": "chat:a", "token": "t", "recover": True, "offset": 7, "epoch": "e", "flag": 2, "join_leave": 1}
    )
    assert req.channel == "chat:a" and req.token == "t"
    assert req.stream == StreamRequest(since=StreamPosition(7, "e"), flag=2, join_leave=True)
    assert SubscribeRequest.parse({"channel": "c", "offset": 7}).stream.since is None  # no recover: no position


def test_plain_subscribe_shares_the_empty_stream_request() -> None:
    """A subscribe without stream fields gets the shared empty request; any stream field is still read."""
    assert SubscribeRequest.parse({"channel": "c", "data": {"x": 1}}).stream is NO_STREAM_REQUEST
    assert StreamRequest.parse({}) is NO_STREAM_REQUEST
    assert StreamRequest.parse({"positioned": True}) == StreamRequest(positioned=True)
    assert StreamRequest.parse({"recoverable": True}) == StreamRequest(recoverable=True)
    assert StreamRequest.parse({"flag": 4}) == StreamRequest(flag=4)
    with pytest.raises(errors.BadRequest):
        StreamRequest.parse({"recover": True, "epoch": 3})


@pytest.mark.parametrize(
    "params, error",
    [
        ({}, errors.BadRequest),
        ({"channel": ""}, errors.BadRequest),
        ({"channel": 5}, errors.BadRequest),
        ({"channel": "c", "token": 5}, errors.PermissionDenied),
        ({"channel": "c", "recover": True, "offset": -1}, errors.BadRequest),
        ({"channel": "c", "recover": True, "offset": True}, errors.BadRequest),
        ({"channel": "c", "recover": True, "epoch": 3}, errors.BadRequest),
    ],
)
def test_bad_subscribe_params(params: dict[str, Any], error: type[errors.SquallError]) -> None:
    """Each malformed subscribe field gives its documented error."""
    with pytest.raises(error):
        SubscribeRequest.parse(params)


def test_connect_token_and_subs() -> None:
    """A non-string token ends the connection (3500); subs must be an object."""
    assert ConnectRequest.parse({}).token == ""
    with pytest.raises(errors.Disconnect) as d:
        ConnectRequest.parse({"token": 5})
    assert d.value.code == errors.INVALID_TOKEN.code
    with pytest.raises(errors.BadRequest):
        ConnectRequest.parse({"subs": ["chat:a"]})
    assert ConnectRequest.parse({"subs": {"c": {"recover": True}}, "data": 1}).subs == {"c": {"recover": True}}


def test_history_paging_and_limit() -> None:
    """History parses since/reverse; the limit is checked against the maximum when querying."""
    req = HistoryRequest.parse({"channel": "c", "limit": -1, "since": {"offset": 3, "epoch": "e"}, "reverse": True})
    q = req.query(50)
    assert (q.limit, q.since, q.reverse) == (50, StreamPosition(3, "e"), True)
    with pytest.raises(errors.LimitExceeded):
        HistoryRequest.parse({"channel": "c", "limit": 51}).query(50)
    for bad in ({"limit": "1"}, {"limit": False}, {"since": []}, {"since": {"offset": -1}}, {"reverse": 1}):
        with pytest.raises(errors.BadRequest):
            HistoryRequest.parse({"channel": "c", **bad})


def test_small_requests() -> None:
    """publish needs data; refresh tokens are required strings; rpc methods must be strings."""
    assert PublishRequest.parse({"channel": "c", "data": None}).data is None
    with pytest.raises(errors.BadRequest):
        PublishRequest.parse({"channel": "c"})
    for bad in ({}, {"token": ""}, {"token": 1}):
        with pytest.raises(errors.BadRequest):
            RefreshRequest.parse(bad)
        with pytest.raises(errors.BadRequest):
            SubRefreshRequest.parse({"channel": "c", **bad})
    assert RpcRequest.parse({"method": 3}).method is None
    assert RpcRequest.parse({"data": 1}) == RpcRequest("", 1)
    assert ChannelRequest.parse({"channel": "c"}).channel == "c"
    with pytest.raises(errors.BadRequest, match="user"):
        channel_param({"user": 1}, "user")
