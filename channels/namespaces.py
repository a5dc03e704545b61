"""Channel namespaces: ``ns:name`` belongs to namespace ``ns``.

Option names follow Centrifugo where the meaning is the same, so a Centrifugo
namespace block reads the same here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from channels.errors import BadRequest, UnknownChannel
from channels.types import StreamOptions

NAMESPACE_SEPARATOR = ":"
USER_BOUNDARY = "#"
USER_SEPARATOR = ","
_NAME_RE = re.compile(r"^[-a-zA-Z0-9_.]{1,64}$")
# Channel names: printable ASCII without whitespace; length checked separately.
_CHANNEL_RE = re.compile(r"^[\x21-\x7e]+$")
DELTA_TYPES = ("fossil",)
RECOVERY_MODES = ("", "stream", "cache")


@dataclass(frozen=True, slots=True)
class NamespaceOptions:
    """What a namespace allows and keeps. Defaults deny client access."""

    name: str = ""
    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0  # seconds
    # seconds an idle stream's epoch and top offset are kept (0: forever), as Centrifugo's
    history_meta_ttl: float = 0.0
    force_recovery: bool = False
    allow_recovery: bool = True
    force_positioning: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_client: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = False
    # Squall extension: new subscribers get the latest publication at once and
    # slow readers get the newest value instead of a backlog (conflation).
    latest_value: bool = False
    # Private channels need a subscription token (Centrifugo's $ prefix rule).
    private_channel_prefix: str = "$"
    # Centrifugo's per-namespace proxies (server settings proxy_*_endpoint; docs/PROXY.md)
    proxy_subscribe: bool = False
    proxy_publish: bool = False
    proxy_sub_refresh: bool = False
    # Centrifugo's: delta types a subscriber may ask for ("fossil"); publication tags filters
    allowed_delta_types: tuple[str, ...] = ()
    allow_tags_filter: bool = False
    # Centrifugo's: "" (as the client asks) or "stream"/"cache" for every subscriber; with
    # auto_cache_recover every subscribe gets the latest publication without asking
    force_recovery_mode: str = ""
    auto_cache_recover: bool = False
    # derived from the history options, not an option: read several times per
    # subscribe and per publication, so computed once here (dataclasses.replace
    # computes it again)
    stream: StreamOptions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stream", _stream_options(self.history_size, self.history_ttl, self.history_meta_ttl))

    @classmethod
    def option_names(cls) -> set[str]:
        return {f.name for f in fields(cls) if f.init}


@functools.cache
def _stream_options(size: int, ttl: float, meta_ttl: float) -> StreamOptions:
    """One shared instance per distinct option set (the Redis broker caches by it)."""
    return StreamOptions(history_size=size, history_ttl=ttl, meta_ttl=meta_ttl)


@dataclass(frozen=True, slots=True)
class Namespaces:
    """Lookup from channel name to its namespace options."""

    default: NamespaceOptions = field(default_factory=NamespaceOptions)
    by_name: Mapping[str, NamespaceOptions] = field(default_factory=dict)
    channel_max_length: int = 255

    def namespace_name(self, channel: str) -> str:
        ns, sep, _ = channel.partition(NAMESPACE_SEPARATOR)
        return ns if sep else ""

    def lookup(self, channel: str) -> NamespaceOptions:
        """Options for ``channel``; UnknownChannel when its namespace is not configured."""
        self.validate(channel)
        name = self.namespace_name(channel)
        if not name:
            return self.default
        opts = self.by_name.get(name)
        if opts is None:
            raise UnknownChannel()
        return opts

    def validate(self, channel: str) -> None:
        if not channel or len(channel) > self.channel_max_length:
            raise BadRequest("bad channel name length")
        if not _CHANNEL_RE.match(channel):
            raise BadRequest("bad channel name characters")


def allowed_users(channel: str) -> list[str] | None:
    """Users of a user-limited channel (``dialog:#42,43``), None when not limited."""
    _, sep, rest = channel.rpartition(USER_BOUNDARY)
    if not sep:
        return None
    return [u for u in rest.split(USER_SEPARATOR) if u]


def build_namespaces(
    default: Mapping[str, Any],
    namespaces: list[Mapping[str, Any]],
    channel_max_length: int = 255,
) -> Namespaces:
    """Build from plain config mappings; raises ValueError naming the bad key."""
    by_name: dict[str, NamespaceOptions] = {}
    for i, raw in enumerate(namespaces):
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"namespaces[{i}].name: must match {_NAME_RE.pattern}")
        if name in by_name:
            raise ValueError(f"namespaces[{i}].name: duplicate namespace {name!r}")
        by_name[name] = _options(raw, f"namespaces[{i}]")
    return Namespaces(
        default=_options(default, "channel"),
        by_name=by_name,
        channel_max_length=channel_max_length,
    )


def _options(raw: Mapping[str, Any], where: str) -> NamespaceOptions:
    known = {f.name: f for f in fields(NamespaceOptions) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        f = known.get(key)
        if f is None:
            raise ValueError(f"{where}.{key}: unknown namespace option")
        default = getattr(NamespaceOptions(), key)
        kwargs[key] = _coerce(value, type(default), f"{where}.{key}")
    opts = NamespaceOptions(**kwargs)
    if opts.history_size < 0:
        raise ValueError(f"{where}.history_size: must be >= 0")
    if opts.history_ttl < 0:
        raise ValueError(f"{where}.history_ttl: must be >= 0")
    if opts.history_meta_ttl < 0:
        raise ValueError(f"{where}.history_meta_ttl: must be >= 0")
    bad = set(opts.allowed_delta_types) - set(DELTA_TYPES)
    if bad:
        raise ValueError(f"{where}.allowed_delta_types: unknown delta type {sorted(bad)[0]!r} (known: fossil)")
    if opts.force_recovery_mode not in RECOVERY_MODES:
        raise ValueError(f"{where}.force_recovery_mode: expected one of 'stream', 'cache'")
    if opts.auto_cache_recover and not (opts.force_recovery and opts.force_recovery_mode == "cache"):
        raise ValueError(f"{where}.auto_cache_recover: needs force_recovery and force_recovery_mode = 'cache'")
    if (opts.force_recovery or opts.latest_value) and opts.history_size == 0:
        raise ValueError(f"{where}.history_size: needed by force_recovery/latest_value")
    return opts


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number or a Centrifugo-style duration ("300s", "5m", "1h")."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a duration")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value)
        if m:
            n = float(m.group(1))
            unit = m.group(2) or "s"
            return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    raise ValueError(f"{where}: expected a duration like 300, '300s', '5m'")


def _coerce(value: Any, typ: type, where: str) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{where}: expected true or false")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{where}: expected an integer")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{where}: expected an integer") from None
    if typ is float:
        return parse_duration(value, where)
    if typ is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected a list of strings")
        return tuple(value)
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string")
        return value
    raise ValueError(f"{where}: unsupported type")  # pragma: no cover
