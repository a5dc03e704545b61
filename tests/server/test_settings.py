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
        ("mongo_timeout_ms = 0", "mongo_timeout_ms"),
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


@pytest.mark.parametrize(
    "layer, url_key, engine_flag",
    [
        ({"redis_urls": "redis://127.0.0.1:6390/0"}, "redis_urls", "--engine redis"),
        ({"mongo_url": "mongodb://127.0.0.1:27018"}, "mongo_url", "--history mongo"),
    ],
)
def test_backend_url_without_its_engine_is_refused(tmp_path: Path, layer: dict[str, str], url_key: str, engine_flag: str) -> None:
    """A Redis/MongoDB URL the chosen engine would ignore is refused, naming both flags, from flags, env or file."""
    for kw in (
        {"overrides": layer},
        {"environ": {f"SQUALL_{k.upper()}": v for k, v in layer.items()}},
        {"config_path": write(tmp_path, "".join(f"{k} = {v!r}\n" for k, v in layer.items()))},
    ):
        kw.setdefault("environ", {})
        with pytest.raises(ConfigError) as e:
            load(**kw)  # type: ignore[arg-type]
        assert e.value.key == url_key and engine_flag in str(e.value)


def test_backend_url_with_its_engine_is_used() -> None:
    """With --engine redis / --history mongo the URLs are taken as given."""
    s = load(None, environ={}, overrides={"engine": "redis", "redis_urls": "redis://127.0.0.1:6390/0",
                                          "history": "mongo", "mongo_url": "mongodb://127.0.0.1:27018"})
    assert s.redis_urls == ("redis://127.0.0.1:6390/0",) and s.mongo_url == "mongodb://127.0.0.1:27018"


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        ({"engine": "redis", "redis_urls": "http://127.0.0.1:6379"}, "redis_urls", "redis://"),
        ({"engine": "redis", "redis_urls": "redis://127.0.0.1:port/0"}, "redis_urls", "port"),
        ({"history": "mongo", "mongo_url": "mongo://127.0.0.1"}, "mongo_url", "mongodb://"),
        ({"history": "mongo", "mongo_url": "mongodb://127.0.0.1:notaport"}, "mongo_url", "port"),
    ],
)
def test_malformed_backend_urls_name_the_form(overrides: dict[str, str], key: str, words: str) -> None:
    """A URL of the wrong scheme or with a bad port is a ConfigError saying what a good one looks like."""
    with pytest.raises(ConfigError) as e:
        load(None, environ={}, overrides=overrides)
    assert e.value.key == key and words in str(e.value)


def test_config_path_that_is_a_directory(tmp_path: Path) -> None:
    """--config given a directory is a ConfigError on `config`, not IsADirectoryError."""
    with pytest.raises(ConfigError, match="is a directory") as e:
        load(str(tmp_path), environ={})
    assert e.value.key == "config"


@pytest.mark.parametrize("key, value", [("port", "eighty"), ("client_channel_limit", "1.5"), ("mongo_batch_window_ms", "soon")])
def test_number_errors_name_key_and_value(key: str, value: str) -> None:
    """A bad number names the key and the value, never "invalid literal for int()"."""
    with pytest.raises(ConfigError) as e:
        load(None, environ={f"SQUALL_{key.upper()}": value})
    assert e.value.key == key and repr(value) in str(e.value) and "invalid literal" not in str(e.value)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """An unknown key in the file names the setting it probably meant."""
    with pytest.raises(ConfigError, match="did you mean 'ping_interval'"):
        load(write(tmp_path, "pign_interval = 3\n"), environ={})
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, "zzz_nothing_like_it = 3\n"), environ={})
    assert "did you mean" not in str(e.value)


def test_misspelt_env_variables_are_warned_about() -> None:
    """SQUALL_* variables naming no setting get one warning each, with a suggestion; real ones and SQUALL_CONFIG none."""
    from server.settings import env_warnings

    lines = env_warnings({"SQUALL_PROT": "1", "SQUALL_PORT": "1", "SQUALL_CONFIG": "x.toml", "SQUALL_REDIS_URL": "r", "HOME": "/"})
    assert len(lines) == 2
    assert "SQUALL_PROT" in lines[0] and "SQUALL_PORT" in lines[0]
    assert "SQUALL_REDIS_URL " in lines[1] and "SQUALL_REDIS_URLS" in lines[1]


def test_config_that_admits_no_client_is_warned_about(tmp_path: Path) -> None:
    """No anonymous connect and no token key: a warning naming both fixes; the demo config gets none."""
    from server.settings import config_warnings

    (line,) = config_warnings(load(write(tmp_path, "port = 8000\n"), environ={}))
    assert "no client can connect" in line and "token_hmac_secret_key" in line
    assert "allow_anonymous_connect_without_token" in line
    assert config_warnings(load(None, environ={})) == []
    secret = "k" * 32
    assert config_warnings(load(write(tmp_path, f"token_hmac_secret_key = {secret!r}\n"), environ={})) == []


def test_short_hmac_key_is_warned_about(tmp_path: Path) -> None:
    """An HS256 key under 32 bytes gets Squall's own one-line warning."""
    from server.settings import config_warnings

    (line,) = config_warnings(load(write(tmp_path, "token_hmac_secret_key = 'short'\n"), environ={}))
    assert "token_hmac_secret_key is 5 bytes" in line and "32" in line


def test_demo_key_off_loopback_names_the_fix() -> None:
    """The demo API key on 0.0.0.0 (the Dockerfile's command) says to pass --api-key or SQUALL_API_KEY."""
    with pytest.raises(ConfigError) as e:
        load(None, environ={}, overrides={"host": "0.0.0.0"})
    assert "--api-key" in str(e.value) and "SQUALL_API_KEY" in str(e.value)
    assert load(None, environ={"SQUALL_API_KEY": "k" * 32}, overrides={"host": "0.0.0.0"}).api_key == "k" * 32


def test_default_url_spelt_out_in_a_file_is_not_refused(tmp_path: Path) -> None:
    """A file may state the default URL (genconfig's does); the same URL as a flag or variable is still refused."""
    path = write(tmp_path, "redis_urls = ['redis://127.0.0.1:6379/0']\nmongo_url = 'mongodb://127.0.0.1:27017'\n")
    assert load(path, environ={}).engine == "memory"
    with pytest.raises(ConfigError, match="--engine redis"):
        load(None, environ={}, overrides={"redis_urls": ("redis://127.0.0.1:6379/0",)})
    with pytest.raises(ConfigError, match="--history mongo"):
        load(None, environ={"SQUALL_MONGO_URL": "mongodb://127.0.0.1:27017"})


def test_mongo_timeout_reaches_the_store(tmp_path: Path) -> None:
    """mongo_timeout_ms is what the history store's connection waits for a server (an outage answers 100 after it)."""
    from server.backends import build_history

    s = load(write(tmp_path, "history = 'mongo'\nmongo_timeout_ms = 250"), environ={})
    assert build_history(s)._conn.timeout_ms == 250  # type: ignore[attr-defined]
    assert build_history(load(None, environ={"SQUALL_HISTORY": "mongo"}))._conn.timeout_ms == 3000  # type: ignore[attr-defined]
