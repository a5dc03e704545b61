"""Settings: precedence, coercion, validation naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_defaults_use_embedded_demo_config() -> None:
    """Without a file the demo config is used: anonymous chat works."""
    s = load(None, environ={})
    assert s.allow_anonymous_connect_without_token
    assert s.channels.lookup("chat:lobby").allow_subscribe_for_anonymous
    assert (s.host, s.port, s.engine, s.history) == ("127.0.0.1", 8000, "memory", "memory")


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    """flags > env > file > defaults."""
    path = write(tmp_path, "port = 9001\nlog_level = 'warning'\nping_interval = 10\n")
    s = load(path, environ={"SQUALL_PORT": "9002", "SQUALL_LOG_LEVEL": "error"}, overrides={"port": 9003})
    assert s.port == 9003
    assert s.log_level == "error"
    assert s.ping_interval == 10.0


def test_env_lists_and_bools(tmp_path: Path) -> None:
    """Comma lists and booleans from the environment are coerced."""
    s = load(write(tmp_path, ""), environ={"SQUALL_ALLOWED_ORIGINS": "https://a.example, https://b.example", "SQUALL_API_INSECURE": "yes"})
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.api_insecure is True


def test_settings_are_frozen() -> None:
    """The settings object cannot be changed after load."""
    s = load(None, environ={})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "text,key",
    [
        ("port = 'abc'", "port"),
        ("engine = 'postgres'", "engine"),
        ("colour = 'red'", "colour"),
        ("ping_interval = -1", "ping_interval"),
        ("processes = 2", "processes"),
        ("[[namespaces]]\nname = 'x'\nhistroy_size = 1", "namespaces[0].histroy_size"),
        ("[channel]\npresence = 'maybe'", "channel.presence"),
        ("port = ", "config"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Every bad value raises ConfigError naming the offending key."""
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text), environ={})
    assert e.value.key == key


def test_demo_api_key_refused_off_loopback() -> None:
    """The demo config's well-known API key cannot be served beyond loopback."""
    assert load(None, environ={}).api_key == "demo"
    with pytest.raises(ConfigError) as e:
        load(None, environ={"SQUALL_HOST": "0.0.0.0"})
    assert e.value.key == "api_key"


def test_rate_limits_are_on_by_default() -> None:
    """Production defaults protect against command floods and reconnect storms."""
    s = load(None, environ={})
    assert s.client_command_rate_limit > 0 and s.client_command_burst > 0
    assert s.client_connection_rate_limit > 0
