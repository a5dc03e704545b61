"""Plain value types shared by the hub and every backend.

They are slotted dataclasses: one publication object is shared by every
subscriber it is delivered to, so it must be cheap and never mutated after it
left the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ClientInfo:
    """Who a connection is; travels with publications, joins and presence."""

    client: str
    user: str = ""
    conn_info: Any = None
    chan_info: Any = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "client": self.client}
        if self.conn_info is not None:
            out["conn_info"] = self.conn_info
        if self.chan_info is not None:
            out["chan_info"] = self.chan_info
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClientInfo":
        return cls(
            client=str(d.get("client", "")),
            user=str(d.get("user", "")),
            conn_info=d.get("conn_info"),
            chan_info=d.get("chan_info"),
        )


@dataclass(slots=True)
class Publication:
    """One message in a channel. ``data`` is a JSON-compatible value.

    ``offset`` is 0 for channels without history; otherwise it is the position
    in the channel's stream, and ``epoch`` names that stream.
    """

    data: Any
    offset: int = 0
    epoch: str = ""
    info: ClientInfo | None = None
    tags: dict[str, str] | None = None
    time: int = 0  # unix milliseconds, 0 when unknown

    def to_dict(self) -> dict[str, Any]:
        """Centrifugo's Publication shape (zero values omitted)."""
        out: dict[str, Any] = {"data": self.data}
        if self.offset:
            out["offset"] = self.offset
        if self.info is not None:
            out["info"] = self.info.to_dict()
        if self.tags:
            out["tags"] = self.tags
        if self.time:
            out["time"] = self.time
        return out

    def to_record(self) -> dict[str, Any]:
        """Full form for storage and inter-node envelopes (keeps the epoch)."""
        out = self.to_dict()
        if self.epoch:
            out["epoch"] = self.epoch
        return out

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> "Publication":
        info = d.get("info")
        return cls(
            data=d.get("data"),
            offset=int(d.get("offset", 0)),
            epoch=str(d.get("epoch", "")),
            info=ClientInfo.from_dict(info) if isinstance(info, dict) else None,
            tags=d.get("tags") or None,
            time=int(d.get("time", 0)),
        )


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Top of a channel's stream: the last offset and the stream's epoch."""

    offset: int = 0
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a channel keeps its stream; from the channel's namespace."""

    history_size: int = 0
    history_ttl: float = 0.0  # seconds; 0 keeps forever (bounded by size)
    meta_ttl: float = 0.0  # seconds an idle stream's epoch/offset is kept; 0 forever

    @property
    def enabled(self) -> bool:
        return self.history_size > 0


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history read. ``since`` asks for what came after a position."""

    limit: int = 0  # 0: position only; -1: everything kept; >0: at most that many
    since: StreamPosition | None = None
    reverse: bool = False


@dataclass(slots=True)
class HistoryResult:
    publications: list[Publication] = field(default_factory=list)
    position: StreamPosition = field(default_factory=StreamPosition)
