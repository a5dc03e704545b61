"""Namespace lookup, option validation, and user-limited channel parsing."""

import dataclasses

import pytest

from channels import errors
from channels.namespaces import allowed_users, build_namespaces, parse_duration


def test_lookup_by_namespace_prefix() -> None:
    """`ns:name` resolves to namespace ns; no prefix resolves to the default."""
    ns = build_namespaces({"presence": True}, [{"name": "chat", "history_size": 5}])
    assert ns.lookup("chat:room").history_size == 5
    assert ns.lookup("plain").presence is True


def test_unknown_namespace_is_unknown_channel() -> None:
    """A channel in an unconfigured namespace raises UnknownChannel (102)."""
    ns = build_namespaces({}, [])
    with pytest.raises(errors.UnknownChannel):
        ns.lookup("nope:room")


@pytest.mark.parametrize("bad", ["", "a" * 300, "has space", "tab\tx", "é"])
def test_bad_channel_names_are_bad_request(bad: str) -> None:
    """Empty, too long, whitespace or non-ASCII names are rejected with 107."""
    ns = build_namespaces({}, [])
    with pytest.raises(errors.BadRequest):
        ns.lookup(bad)


def test_unknown_option_names_the_key() -> None:
    """A misspelt option fails with a message naming namespace and key."""
    with pytest.raises(ValueError, match=r"namespaces\[0\]\.histroy_size"):
        build_namespaces({}, [{"name": "x", "histroy_size": 3}])


def test_force_recovery_needs_history() -> None:
    """force_recovery without history is a configuration error."""
    with pytest.raises(ValueError, match="history_size"):
        build_namespaces({}, [{"name": "x", "force_recovery": True}])


def test_user_limited_channels() -> None:
    """`dialog:#42,43` is limited to users 42 and 43."""
    assert allowed_users("dialog:#42,43") == ["42", "43"]
    assert allowed_users("dialog:abc") is None


@pytest.mark.parametrize("value,seconds", [(5, 5.0), ("300s", 300.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25)])
def test_durations(value: object, seconds: float) -> None:
    """Durations accept numbers and Centrifugo-style strings."""
    assert parse_duration(value, "k") == seconds


def test_stream_options_follow_the_history_options() -> None:
    """`stream` is derived, not an option: it follows history_size/ttl, also after replace()."""
    ns = build_namespaces({}, [{"name": "h", "history_size": 5, "history_ttl": "1m"}])
    opts = ns.lookup("h:a")
    assert opts.stream.enabled and opts.stream.history_size == 5 and opts.stream.history_ttl == 60
    assert not ns.lookup("plain").stream.enabled
    bigger = dataclasses.replace(opts, history_size=9)
    assert bigger.stream.history_size == 9 and opts.stream.history_size == 5
    with pytest.raises(ValueError, match="unknown namespace option"):
        build_namespaces({}, [{"name": "x", "stream": {}}])

