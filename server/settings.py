"""One frozen settings object, loaded from defaults < TOML file < env < flags.

Every field below is documented where it is declared; ``python run.py
genconfig`` prints them as a commented starter file. Keys are validated on
load and a bad one raises :class:`ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from channels.namespaces import Namespaces, build_namespaces, parse_duration
from channels.redis_shards import SENTINEL_SCHEME, parse_sentinel_url

ENV_PREFIX = "SQUALL_"
DEMO_CONFIG = Path(__file__).with_name("demo.toml")
DEMO_API_KEY = "demo"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# "" from the checkout; "squall." installed, where the wheel puts server/,
# handlers/, channels/ and loadtest/ under one package (server/wheel_build.py).
PACKAGE_ROOT = __name__[: -len("server.settings")]
OWN_PACKAGES = ("server", "handlers", "channels", "loadtest")


class ConfigError(Exception):
    """A bad configuration value; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"config error: {key}: {message}")


def _doc(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    return field(default=default, metadata={"doc": text}, **kw)


@dataclass(frozen=True)
class Settings:
    # --- listening -------------------------------------------------------
    host: str = _doc("Address to listen on.", "127.0.0.1")
    port: int = _doc("TCP port to listen on.", 8000)
    listen_backlog: int = _doc("Pending TCP connections the kernel queues (capped by net.core.somaxconn); room for reconnect storms.", 2048)
    processes: int = _doc("Worker processes sharing the port; 0 = one per core. >1 needs engine=redis.", 1)
    node_name: str = _doc("Name of this node in `info` and logs; empty = hostname:port.", "")
    # --- logging ---------------------------------------------------------
    log_level: str = _doc("debug, info, warning or error.", "info")
    log_format: str = _doc("text or json.", "text")
    # --- engine ----------------------------------------------------------
    engine: str = _doc("Broker and presence: memory (single node) or redis.", "memory")
    redis_urls: tuple[str, ...] = _doc("Redis servers; channels are sharded over them.", ("redis://127.0.0.1:6379/0",))
    redis_prefix: str = _doc("Prefix of every Redis key and pub/sub topic.", "squall")
    redis_cluster: bool = _doc("Treat redis_urls as one Redis Cluster (sharded pub/sub).", False)
    presence_ttl: float = _doc("Seconds a presence entry lives unless refreshed.", 60.0)
    history: str = _doc("History store: memory or mongo.", "memory")
    history_hot_window: int = _doc("Publications per channel kept in Redis for fast recovery (redis engine).", 100)
    mongo_url: str = _doc("MongoDB connection string.", "mongodb://127.0.0.1:27017")
    mongo_database: str = _doc("MongoDB database name.", "squall")
    mongo_write_concern: str = _doc("Write concern w: '', 'majority' or a number; '' = driver default.", "")
    mongo_batch_window_ms: float = _doc("Milliseconds concurrent publications wait to share one insert_many.", 2.0)
    mongo_batch_size: int = _doc("Most publications in one insert_many.", 500)
    mongo_timeout_ms: int = _doc("How long a MongoDB call waits for a server (selection, connect; sockets twice that) before the client gets 100.", 3000)
    # --- auth --------------------------------------------------------------
    token_hmac_secret_key: str = _doc("HS256 secret for connection/subscription JWTs.", "")
    token_rsa_public_key: str = _doc("RS256 public key: PEM text or a file path.", "")
    token_ecdsa_public_key: str = _doc("ES256 public key: PEM text or a file path.", "")
    token_audience: str = _doc("Required `aud` claim when set.", "")
    token_issuer: str = _doc("Required `iss` claim when set.", "")
    allow_anonymous_connect_without_token: bool = _doc("Connect without a token as anonymous user ''.", False)
    allowed_origins: tuple[str, ...] = _doc("Origins allowed to connect (browser); empty = same origin only; '*' = any.", ())
    api_key: str = _doc("Server API key (X-API-Key or 'Authorization: apikey'). Empty disables the API.", "")
    api_insecure: bool = _doc("Serve the API with no key (only behind a trusted network).", False)
    admin_password: str = _doc("Password of the /admin UI; empty disables it.", "")
    admin_secret: str = _doc("Secret that signs admin session tokens; empty = derived from admin_password.", "")
    # --- client protocol and limits ---------------------------------------
    ping_interval: float = _doc("Seconds between server pings.", 25.0)
    pong_timeout: float = _doc("Seconds to wait for a pong before disconnecting (3012).", 8.0)
    client_expired_close_delay: float = _doc("Grace seconds after a connection token's exp before disconnect 3005 (the SDK refreshes at ttl).", 25.0)
    client_expired_sub_close_delay: float = _doc("Grace seconds after a subscription token's exp before unsubscribe 2501.", 25.0)
    client_stale_timeout: float = _doc("Seconds a socket may stay without a connect command (3502).", 10.0)
    max_message_size: int = _doc("Largest incoming frame in bytes (larger: close 1009).", 65536)
    client_queue_max_size: int = _doc("Outbound bytes buffered per connection before disconnect 3008.", 1048576)
    client_channel_limit: int = _doc("Channels one connection may subscribe to (106).", 128)
    client_user_connection_limit: int = _doc("Connections per user on this node; 0 = unlimited (3504).", 0)
    client_ip_connection_limit: int = _doc("Connections per client IP on this node; 0 = unlimited (3504).", 0)
    client_connection_limit: int = _doc("Total connections on this node; 0 = unlimited (3504).", 0)
    client_connection_rate_limit: float = _doc("New connections per second on this node; 0 = unlimited (HTTP 503).", 1000.0)
    client_command_rate_limit: float = _doc("Commands per second per connection; 0 = unlimited (111, then 3013).", 200.0)
    client_command_burst: int = _doc("Token bucket size for client_command_rate_limit.", 100)
    channel_max_length: int = _doc("Longest channel name.", 255)
    history_max_limit: int = _doc("Largest `limit` a history request may ask for.", 1000)
    presence_max_clients: int = _doc("Largest presence reply; bigger channels get 106.", 10000)
    recovery_max_publication_limit: int = _doc("Most publications one recovery returns; beyond: recovered=false.", 1000)
    write_delay_ms: float = _doc("Coalesce outbound frames per connection for this long (0 = next loop turn).", 0.0)
    websocket_compression: bool = _doc("Offer permessage-deflate.", False)
    gc_full_collect_interval: float = _doc("Seconds between full collections that include frozen long-lived objects (one long pause each); 0 = never.", 3600.0)
    shutdown_drain_seconds: float = _doc("Spread shutdown disconnects over this many seconds.", 3.0)
    hooks: str = _doc("In-process Python hooks: 'package.module:factory' returning handlers.hooks.Hooks.", "")
    # --- proxy to the backend (Centrifugo's HTTP proxy JSON; docs/PROXY.md) ---
    proxy_connect_endpoint: str = _doc("URL the connect of a client without a token is POSTed to; empty = no connect proxy.", "")
    proxy_connect_timeout: float = _doc("Seconds a connect proxy call may take (then error 100).", 1.0)
    proxy_refresh_endpoint: str = _doc("URL POSTed when a proxied connection's expire_at comes; empty = it just expires.", "")
    proxy_refresh_timeout: float = _doc("Seconds a refresh proxy call may take.", 1.0)
    proxy_subscribe_endpoint: str = _doc("URL subscribes go to, in namespaces with proxy_subscribe = true.", "")
    proxy_subscribe_timeout: float = _doc("Seconds a subscribe proxy call may take.", 1.0)
    proxy_publish_endpoint: str = _doc("URL client publishes go to, in namespaces with proxy_publish = true.", "")
    proxy_publish_timeout: float = _doc("Seconds a publish proxy call may take.", 1.0)
    proxy_sub_refresh_endpoint: str = _doc("URL POSTed when a proxied subscription's expire_at comes (namespaces with proxy_sub_refresh = true).", "")
    proxy_sub_refresh_timeout: float = _doc("Seconds a sub_refresh proxy call may take.", 1.0)
    proxy_rpc_endpoint: str = _doc("URL every client rpc goes to unless proxy_rpc_endpoints names its method; empty = in-process hooks only.", "")
    proxy_rpc_timeout: float = _doc("Seconds an rpc proxy call may take.", 1.0)
    proxy_rpc_endpoints: Mapping[str, str] = _doc("Per-method rpc proxies: a table method = URL.", default_factory=dict)
    proxy_http_headers: tuple[str, ...] = _doc("Headers of the client's HTTP request forwarded to the backend (case-insensitive).", ())
    proxy_emulated_headers: tuple[str, ...] = _doc("Headers a client sends in its connect command (centrifuge-js `headers`) that are forwarded; client-controlled, never from proxy_http_headers.", ())
    proxy_static_http_headers: Mapping[str, str] = _doc("Headers added to every proxy request (a table name = value).", default_factory=dict)
    proxy_binary_encoding: bool = _doc("Send every payload as b64data (Centrifugo's binary encoding).", False)
    proxy_max_inflight: int = _doc("Proxy calls outstanding at once on this node; past it a call fails at once with 100 (reconnect storms).", 1000)
    proxy_http_status_code_transforms: tuple[Mapping[str, Any], ...] = _doc("HTTP statuses answered as a client error or disconnect: [{status_code, to_error = {code, message, temporary}} or to_disconnect = {code, reason}].", ())
    # --- lifecycle events (docs/EVENTS.md) --------------------------------
    events_webhook_url: str = _doc("URL lifecycle events are POSTed to (batches, HMAC-signed); empty = in-process hooks only.", "")
    events_webhook_secret: str = _doc("HMAC-SHA256 key signing each webhook body (X-Squall-Signature).", "")
    events_webhook_timeout: float = _doc("Seconds one webhook POST may take before it is retried.", 5.0)
    events_types: tuple[str, ...] = _doc("Events recorded: channel_occupied, channel_vacated, join, leave, connect, disconnect, publication; empty = none.", ())
    events_batch_size: int = _doc("Most events in one webhook POST.", 100)
    events_retry_min_delay: float = _doc("First retry delay in seconds; doubles per attempt, with jitter.", 0.2)
    events_retry_max_delay: float = _doc("Cap of the retry delay in seconds.", 10.0)
    events_max_attempts: int = _doc("Attempts before a batch counts as failed and is dropped; 0 = retry until delivered.", 0)
    events_claim_idle: float = _doc("Redis engine: seconds before a node takes over events another (dead) node read but never delivered.", 30.0)
    events_outbox_max_len: int = _doc("Redis engine: the outbox stream's approximate length cap (oldest undelivered events go past it).", 1000000)
    # --- tracing (OpenTelemetry; docs/OPERATIONS.md "Tracing") -----------
    tracing: str = _doc("OpenTelemetry spans: off, console (stdout) or otlp (needs the otlp extra).", "off")
    tracing_service_name: str = _doc("service.name of the spans' resource.", "squall")
    tracing_otlp_endpoint: str = _doc("OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces; empty = OTEL_EXPORTER_OTLP_* or the exporter's default.", "")
    # --- channels --------------------------------------------------------
    channel: Mapping[str, Any] = _doc("Options of channels without a namespace.", default_factory=dict)
    namespaces: tuple[Mapping[str, Any], ...] = _doc("Namespaces: list of tables with `name` and options.", ())

    def __post_init__(self) -> None:
        try:
            ns = build_namespaces(dict(self.channel), [dict(n) for n in self.namespaces], self.channel_max_length)
        except ValueError as e:
            key, _, msg = str(e).partition(": ")
            raise ConfigError(key, msg) from None
        object.__setattr__(self, "_namespaces", ns)
        _validate(self)

    @property
    def channels(self) -> Namespaces:
        ns: Namespaces = getattr(self, "_namespaces")
        return ns


_CHOICES = {
    "log_level": ("debug", "info", "warning", "error"),
    "log_format": ("text", "json"),
    "engine": ("memory", "redis"),
    "history": ("memory", "mongo"),
    "tracing": ("off", "otlp", "console"),
}


def _validate(s: Settings) -> None:
    for key, choices in _CHOICES.items():
        if getattr(s, key) not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}")
    if not 0 <= s.port <= 65535:
        raise ConfigError("port", "must be 0..65535")
    if s.processes < 0:
        raise ConfigError("processes", "must be >= 0")
    if s.processes != 1 and s.engine != "redis":
        raise ConfigError("processes", "more than one process needs engine = \"redis\"")
    for key in ("ping_interval", "pong_timeout", "max_message_size", "client_queue_max_size", "mongo_timeout_ms"):
        if getattr(s, key) <= 0:
            raise ConfigError(key, "must be > 0")
    if s.api_key == DEMO_API_KEY and s.host not in LOOPBACK_HOSTS:
        raise ConfigError(
            "api_key", f"the demo key {DEMO_API_KEY!r} is only allowed when host is loopback: "
            "give your own with --api-key KEY or SQUALL_API_KEY=KEY (docker run -e SQUALL_API_KEY=...)"
        )
    if s.engine == "redis" and not s.redis_urls:
        raise ConfigError("redis_urls", "at least one Redis URL is needed")
    for url in s.redis_urls:
        _check_redis_url(url)
    if s.redis_cluster and any(urlsplit(u).scheme == SENTINEL_SCHEME for u in s.redis_urls):
        raise ConfigError("redis_cluster", "Redis Cluster and redis+sentinel:// URLs do not mix: choose one")
    _check_mongo_url(s.mongo_url, parse=s.history == "mongo")


REDIS_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
MONGO_SCHEMES = ("mongodb", "mongodb+srv")


def _check_redis_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            "redis_urls", f"{url!r} is not a Redis URL: use redis://HOST:PORT/DB, rediss:// (TLS), unix:///PATH "
            "or redis+sentinel://HOST:PORT?sentinel_master_name=NAME"
        )
    if scheme == SENTINEL_SCHEME:
        try:
            parse_sentinel_url(url)
        except ValueError as e:
            raise ConfigError("redis_urls", str(e)) from None
        return
    try:
        urlsplit(url).port
    except ValueError:
        raise ConfigError("redis_urls", f"{url!r}: the port is not a number") from None


def _check_mongo_url(url: str, parse: bool) -> None:
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in MONGO_SCHEMES:
        raise ConfigError(
            "mongo_url", f"{url!r} is not a MongoDB connection string: use mongodb://HOST:PORT (or mongodb+srv://HOST)"
        )
    if parse and scheme == "mongodb":  # +srv would look up DNS: the driver reports that at start
        from pymongo.errors import PyMongoError
        from pymongo.uri_parser import parse_uri

        try:
            parse_uri(url)
        except (PyMongoError, ValueError) as e:  # pymongo raises both for malformed strings
            raise ConfigError("mongo_url", f"{url!r}: {e}") from None


def _default(f: Any) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def _field_types() -> dict[str, Any]:
    return {f.name: f for f in fields(Settings)}


def _coerce(key: str, value: Any) -> Any:
    """Turn a TOML/env/flag value into the field's type, or raise ConfigError."""
    f = _field_types()[key]
    default = _default(f)
    typ = type(default)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError("expected true or false")
        if typ is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError(f"expected a whole number, got {value!r}")
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"expected a whole number, got {value!r}") from None
        if typ is float:
            if key.endswith("_ms"):
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise ValueError(f"expected milliseconds as a number, got {value!r}")
                try:
                    return float(value)
                except ValueError:
                    raise ValueError(f"expected milliseconds as a number, got {value!r}") from None
            return parse_duration(value, key)
        if typ is str:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
        if typ is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, (list, tuple)):
                return tuple(value)
            raise ValueError("expected a list")
        if isinstance(default, Mapping) or typ is dict:
            if not isinstance(value, Mapping):
                raise ValueError("expected a table")
            return dict(value)
    except (TypeError, ValueError) as e:
        msg = str(e)
        if msg.startswith(key + ": "):
            msg = msg[len(key) + 2 :]
        raise ConfigError(key, msg or "bad value") from None
    raise ConfigError(key, "unsupported type")  # pragma: no cover


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("config", f"{path} is a directory: give a TOML file (`genconfig > squall.toml` writes one)") from None
    except OSError as e:
        raise ConfigError("config", f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError("config", f"{path} is not a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path}: {e}") from None


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = _field_types()
    for k, v in environ.items():
        if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG":
            key = k[len(ENV_PREFIX) :].lower()
            if key in names and key not in ("channel", "namespaces"):
                out[key] = v
    return out


# SQUALL_* variables that are not settings but are read elsewhere (tests, tools)
ENV_NOT_SETTINGS = ("CONFIG", "VENV")


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def env_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per SQUALL_* variable that names no setting (so it would be ignored)."""
    environ = os.environ if environ is None else environ
    names = [n for n in _field_types() if n not in ("channel", "namespaces")]
    upper = [ENV_PREFIX + n.upper() for n in names]
    out = []
    for k in sorted(environ):
        if not k.startswith(ENV_PREFIX) or k[len(ENV_PREFIX) :] in ENV_NOT_SETTINGS:
            continue
        if k[len(ENV_PREFIX) :].lower() not in names:
            out.append(f"{k} is not a Squall setting and is ignored{_did_you_mean(k, upper)}")
    return out


# A backend URL given without the setting that makes Squall use it is refused
# (docs/OPERATIONS.md, "Backend URLs"): given means set by a flag or SQUALL_*
# variable, or set in the file to something other than the default (a file
# may spell out defaults, as genconfig's does).
URL_NEEDS = {"redis_urls": ("engine", "redis", "--redis-url", "--engine redis"),
             "mongo_url": ("history", "mongo", "--mongo-url", "--history mongo")}


def _check_url_has_engine(merged: Mapping[str, Any], given: set[str]) -> None:
    """Refuse a Redis or MongoDB URL that the chosen engine would silently ignore."""
    for key, (engine_key, engine, url_flag, engine_flag) in URL_NEEDS.items():
        if key in given and merged.get(engine_key, _default(_field_types()[engine_key])) != engine:
            raise ConfigError(
                key, f"{url_flag} ({key}) is only used with {engine_flag} ({engine_key} = \"{engine}\"); "
                f"add {engine_flag}, or drop the URL"
            )


def load(
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults < file < env < overrides into one frozen Settings.

    Without a file (no ``config_path`` and no ``SQUALL_CONFIG``) the embedded
    demo configuration is used, so ``python run.py`` serves the chat page.
    """
    environ = os.environ if environ is None else environ
    path = config_path or environ.get(ENV_PREFIX + "CONFIG") or str(DEMO_CONFIG)
    merged: dict[str, Any] = {}
    names = _field_types()
    given: set[str] = set()
    for index, layer in enumerate((read_toml(path), from_env(environ), dict(overrides or {}))):
        for key, value in layer.items():
            if key not in names:
                raise ConfigError(key, "unknown setting" + _did_you_mean(key, list(names)))
            if value is None:
                continue
            merged[key] = value if key == "namespaces" else _coerce(key, value)
            if index > 0 or merged[key] != _default(names[key]):
                given.add(key)
    if "namespaces" in merged:
        ns = merged["namespaces"]
        if not isinstance(ns, (list, tuple)) or not all(isinstance(n, Mapping) for n in ns):
            raise ConfigError("namespaces", "expected a list of tables ([[namespaces]])")
        merged["namespaces"] = tuple(dict(n) for n in ns)
    _check_url_has_engine(merged, given)
    hooks = merged.get("hooks", "")
    if PACKAGE_ROOT and hooks.split(".")[0] in OWN_PACKAGES:  # "server.demo_hooks:make", installed
        merged["hooks"] = PACKAGE_ROOT + hooks
    return Settings(**merged)


HS256_MIN_KEY_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash
TOKEN_KEYS = ("token_hmac_secret_key", "token_rsa_public_key", "token_ecdsa_public_key")


def config_warnings(s: Settings) -> list[str]:
    """Valid but probably unintended settings, one line each with the fix."""
    out = []
    if not s.allow_anonymous_connect_without_token and not any(getattr(s, k) for k in TOKEN_KEYS):
        out.append(
            "no client can connect: allow_anonymous_connect_without_token is false and no token key is set; "
            "set token_hmac_secret_key (sign tokens with `gentoken`) or allow_anonymous_connect_without_token = true"
        )
    key = s.token_hmac_secret_key
    if key and len(key.encode()) < HS256_MIN_KEY_BYTES:
        out.append(hmac_key_warning("token_hmac_secret_key", key))
    return out


def hmac_key_warning(name: str, key: str) -> str:
    return (
        f"{name} is {len(key.encode())} bytes; HS256 wants at least {HS256_MIN_KEY_BYTES} "
        "(make one with `openssl rand -hex 32`)"
    )


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, doc) for every setting, for genconfig and docs."""
    out = []
    for f in fields(Settings):
        default = _default(f)
        out.append((f.name, default, f.metadata.get("doc", "")))
    return out
