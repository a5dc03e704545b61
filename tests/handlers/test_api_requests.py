"""The server API's own requests parse from params alone; null fields read as absent."""

from __future__ import annotations

import pytest

from channels import errors
from handlers.api_requests import (
    BATCH_MAX_COMMANDS,
    BatchRequest,
    BroadcastRequest,
    DisconnectRequest,
    MembershipRequest,
    PublishRequest,
    RefreshRequest,
)


def test_publish_fields() -> None:
    """b64data wins over data and becomes bytes; tags map strings to strings; nulls are absent."""
    req = PublishRequest.parse({"channel": "c", "b64data": "aGk=", "data": 1, "tags": None, "idempotency_key": None})
    assert (req.data, req.tags, req.idempotency_key, req.skip_history) == (b"hi", None, "", False)
    for bad in ({"b64data": "!!"}, {"b64data": 5}, {}, {"data": 1, "tags": {"a": 1}}, {"data": 1, "idempotency_key": 2}):
        with pytest.raises(errors.BadRequest):
            PublishRequest.parse({"channel": "c", **bad})


def test_connection_requests() -> None:
    """disconnect codes are 3000..4999 (default: force, no reconnect); refresh times are unix seconds."""
    d = DisconnectRequest.parse({"user": "u", "disconnect": None, "whitelist": None})
    assert (d.user, d.client, d.whitelist, d.code) == ("u", "", [], errors.FORCE_NO_RECONNECT.code)
    for bad in ({"disconnect": {"code": 1000}}, {"disconnect": {"code": True}}, {"whitelist": [1]}, {"disconnect": [1]}):
        with pytest.raises(errors.BadRequest):
            DisconnectRequest.parse(bad)
    r = RefreshRequest.parse({"user": "u", "expire_at": None, "info": {"a": 1}})
    assert (r.expired, r.expire_at, r.info) == (False, 0, {"a": 1})
    for bad in ({"expired": 1}, {"expire_at": -1}, {"expire_at": True}):
        with pytest.raises(errors.BadRequest):
            RefreshRequest.parse(bad)
    assert MembershipRequest.parse({"channel": "c", "client": None}) == MembershipRequest("", "", "c")
    with pytest.raises(errors.BadRequest):
        MembershipRequest.parse({"user": "u"})


def test_broadcast_and_batch() -> None:
    """broadcast needs channels and data; a batch is bounded."""
    assert BroadcastRequest.parse({"channels": ["a", "b"], "data": 1}).channels == ("a", "b")
    for bad in ({"channels": [], "data": 1}, {"channels": ["a", 1], "data": 1}, {"channels": ["a"]}):
        with pytest.raises(errors.BadRequest):
            BroadcastRequest.parse(bad)
    assert BatchRequest.parse({"commands": [], "parallel": 1}) == BatchRequest([], True)
    with pytest.raises(errors.LimitExceeded):
        BatchRequest.parse({"commands": [{}] * (BATCH_MAX_COMMANDS + 1)})
    with pytest.raises(errors.BadRequest):
        BatchRequest.parse({"commands": {}})
