"""What both baseline servers share: the tiny subset of Centrifugo's client
protocol (v2, JSON) that the load tester uses, and the counters it checks.

Only the write path differs between the baselines, so it is injected as
``send_all(members, push)``. ``--drop-every N`` makes the server skip every
Nth delivery on purpose, so tests can prove the load tester sees loss.
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from typing import Any, Callable, Generic, Hashable, TypeVar

P = TypeVar("P", bound=Hashable)


class Core(Generic[P]):
    """Channels, offsets and counters; peers are whatever the server uses."""

    def __init__(self, send_all: Callable[[list[P], dict[str, Any]], None], ping_interval: float, drop_every: int = 0) -> None:
        self.send_all = send_all
        self.ping_interval = ping_interval
        self.drop_every = drop_every
        self.channels: dict[str, dict[P, None]] = {}
        self.offsets: dict[str, int] = {}
        self.subs_of: dict[P, set[str]] = {}
        self.deliveries = 0
        self.dropped = 0
        self.publications = 0
        self.connections = 0
        self._n = itertools.count(1)

    def stats(self) -> dict[str, int]:
        return {
            "deliveries": self.deliveries,
            "dropped": self.dropped,
            "publications": self.publications,
            "connections": self.connections,
            "channels": len(self.channels),
        }

    def opened(self, peer: P) -> None:
        self.connections += 1
        self.subs_of[peer] = set()

    def closed(self, peer: P) -> None:
        chans = self.subs_of.pop(peer, None)
        if chans is None:
            return
        self.connections -= 1
        for ch in chans:
            self._leave(peer, ch)

    def _leave(self, peer: P, ch: str) -> None:
        members = self.channels.get(ch)
        if members is not None:
            members.pop(peer, None)
            if not members:
                del self.channels[ch]

    def handle(self, peer: P, cmd: dict[str, Any]) -> dict[str, Any] | None:
        """One command in, its reply out (None for a client pong ``{}``)."""
        cid = cmd.get("id")
        if not cmd:
            return None
        if "connect" in cmd:
            return {"id": cid, "connect": {"client": uuid.uuid4().hex, "version": "baseline",
                                           "ping": int(self.ping_interval), "pong": True}}
        if "subscribe" in cmd:
            ch = str(cmd["subscribe"].get("channel", ""))
            self.channels.setdefault(ch, {})[peer] = None
            self.subs_of.setdefault(peer, set()).add(ch)
            return {"id": cid, "subscribe": {}}
        if "unsubscribe" in cmd:
            ch = str(cmd["unsubscribe"].get("channel", ""))
            self.subs_of.get(peer, set()).discard(ch)
            self._leave(peer, ch)
            return {"id": cid, "unsubscribe": {}}
        if "publish" in cmd:
            body = cmd["publish"]
            self.publish(str(body.get("channel", "")), body.get("data"))
            return {"id": cid, "publish": {}}
        return {"id": cid, "error": {"code": 104, "message": "method not found"}}

    def publish(self, ch: str, data: Any) -> None:
        off = self.offsets[ch] = self.offsets.get(ch, 0) + 1
        self.publications += 1
        members = list(self.channels.get(ch, ()))
        if self.drop_every:
            kept = []
            for m in members:
                if next(self._n) % self.drop_every == 0:
                    self.dropped += 1
                else:
                    kept.append(m)
            members = kept
        if members:
            self.send_all(members, {"push": {"channel": ch, "pub": {"data": data, "offset": off}}})
            self.deliveries += len(members)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--ping-interval", type=float, default=25.0, help="seconds between protocol pings ({})")
    ap.add_argument("--drop-every", type=int, default=0, help="skip every Nth delivery (to test loss detection)")
    args = ap.parse_args(argv)
    if args.drop_every < 0:
        ap.error("--drop-every must be >= 0")
    return args

