"""The proxy_* and events_* settings: a bad value is a one-line ConfigError naming it."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import build, proxy_config
from server.settings import ConfigError, load


def settings(**overrides: Any) -> Any:
    return load(environ={}, overrides={"allow_anonymous_connect_without_token": True, **overrides})


@pytest.mark.parametrize("overrides, key", [
    ({"proxy_connect_endpoint": "ftp://backend"}, "proxy_connect_endpoint"),
    ({"proxy_publish_endpoint": "http://b/p", "proxy_publish_timeout": 0}, "proxy_publish_timeout"),
    ({"proxy_rpc_endpoints": {"m": "backend:9000"}}, "proxy_rpc_endpoints"),
    ({"proxy_http_status_code_transforms": [{"status_code": 403}]}, "proxy_http_status_code_transforms[0]"),
    ({"proxy_http_status_code_transforms": [{"status_code": "x", "to_error": {"code": 1}}]}, "proxy_http_status_code_transforms[0]"),
    ({"proxy_max_inflight": 0}, "proxy_max_inflight"),
    ({"namespaces": [{"name": "px", "proxy_publish": True}]}, "proxy_publish_endpoint"),
    ({"channel": {"proxy_subscribe": True}}, "proxy_subscribe_endpoint"),
    ({"events_types": ["join", "jion"]}, "events_types"),
    ({"events_webhook_url": "backend/events", "events_types": ["join"]}, "events_webhook_url"),
])
def test_bad_values_name_their_key(overrides: dict[str, Any], key: str) -> None:
    """Each malformed proxy/events setting is refused with its name."""
    with pytest.raises(ConfigError) as e:
        build(settings(**overrides))
    assert e.value.key == key


def test_proxy_config_normalises_header_names_and_transforms() -> None:
    """Header allow-lists match without case; a transform becomes an error or a disconnect."""
    pc = proxy_config(settings(
        proxy_connect_endpoint="http://127.0.0.1:1/c", proxy_http_headers=["Authorization"],
        proxy_emulated_headers=["X-Token"],
        proxy_http_status_code_transforms=[
            {"status_code": 403, "to_error": {"code": 4403, "message": "forbidden"}},
            {"status_code": 410, "to_disconnect": {"code": 4410, "reason": "gone"}},
        ],
    ))
    assert pc.http_headers == ("authorization",) and pc.emulated_headers == ("x-token",)
    first, second = pc.status_transforms
    assert first.error == (4403, "forbidden", False) and second.disconnect is not None and second.disconnect.code == 4410
    assert pc.enabled and not proxy_config(settings()).enabled


def test_unsigned_webhook_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    """A webhook URL without a secret is allowed, with a warning that bodies go unsigned."""
    with caplog.at_level("WARNING", logger="squall.events"):
        build(settings(events_webhook_url="http://127.0.0.1:1/events", events_types=["join"]))
    assert "not signed" in caplog.text
