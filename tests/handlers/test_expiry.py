"""Token expiry arithmetic, as pure functions of expiry times and the clock."""

from __future__ import annotations

from handlers.expiry import MAX_TTL, already_expired, deadline, due, first_deadline, server_expiry, ttl_fields


def test_ttl_fields() -> None:
    """No expiry gives no fields; the ttl is whole seconds and never below 1."""
    assert ttl_fields(0, 100.0) == {}
    assert ttl_fields(160, 100.5) == {"expires": True, "ttl": 60}
    assert ttl_fields(100, 130.0) == {"expires": True, "ttl": 1}


def test_deadlines() -> None:
    """A deadline is the expiry plus the grace; the first one wins; 0 never expires."""
    assert deadline(0, 25) is None
    assert deadline(100, 25) == 125
    assert first_deadline([0, 300, 200], 5) == 205
    assert first_deadline([0, 0], 5) is None
    assert already_expired(100, 100.0) and not already_expired(101, 100.0) and not already_expired(0, 1e9)


def test_due_subscriptions() -> None:
    """Only subscriptions whose token expired more than the grace ago are due."""
    expiries = {"a": 100, "b": 200, "c": 0}
    assert due(expiries, 130.0, 25) == ["a"]
    assert due(expiries, 124.0, 25) == []


def test_server_expiry() -> None:
    """The server API's refresh: 0 is never, a past time closes, a far one is capped."""
    assert server_expiry(0, 100.0) == 0
    assert server_expiry(-5, 100.0) == 0
    assert server_expiry(100, 100.5) is None
    assert server_expiry(500, 100.0) == 500
    assert server_expiry(10**12, 100.0) == 100 + MAX_TTL
