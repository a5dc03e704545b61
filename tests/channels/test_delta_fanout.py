"""The special fan-out: one delta and one filter evaluation per publication, however many subscribers."""

from __future__ import annotations

from typing import Any, Hashable

import orjson

from channels import delta_fanout, fanout
from channels.delta_fanout import Delivery
from channels.delta_fossil import apply
from channels.filters import parse
from channels.namespaces import NamespaceOptions
from channels.stream_state import ChannelState
from channels.types import Publication


class Sub:
    """A subscriber that keeps what it was sent (JSON pushes, shared wire key)."""

    def __init__(self, n: int, key: Hashable = "ws:json") -> None:
        self.client_id = f"c{n}"
        self.wire_key = key
        self.got: list[dict[str, Any]] = []
        self.encoded = 0

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        self.encoded += 1
        return orjson.dumps(body)

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        self.got.append(orjson.loads(data))

    def disconnect(self, code: Any, reason: str | None = None) -> None:
        raise AssertionError("no disconnect expected")


def _channel(subs: list[Sub], deliveries: dict[Sub, Delivery]) -> ChannelState:
    ch = ChannelState(NamespaceOptions(history_size=10))
    for s in subs:
        ch.subs[s] = False  # type: ignore[index]
    ch.special.update(deliveries)  # type: ignore[arg-type]
    return ch


def test_delta_computed_once_and_decodes(monkeypatch: Any) -> None:
    """20 delta subscribers: one fossil create per publication; each decodes the exact data; plain ones get values."""
    calls = []
    real = delta_fanout.fossil_delta
    monkeypatch.setattr(delta_fanout, "fossil_delta", lambda a, b: calls.append(1) or real(a, b))
    delta_subs = [Sub(i) for i in range(20)]
    plain = [Sub(100 + i) for i in range(3)]
    ch = _channel(delta_subs + plain, {s: Delivery(delta=True) for s in delta_subs})
    docs = [{"rows": [{"i": i, "v": v} for i in range(50)]} for v in range(4)]
    for off, d in enumerate(docs, 1):
        assert fanout.publication(ch, "c", Publication(data=d, offset=off)) == 23
    assert len(calls) == 3  # not for the first (nobody holds a base), then once each
    for s in delta_subs:
        assert [m.get("delta", False) for m in s.got] == [False, True, True, True]
        prev = b""
        for m, d in zip(s.got, docs):
            raw = m["data"].encode()
            prev = apply(prev, raw) if m.get("delta") else raw
            assert orjson.loads(prev) == d
    assert sum(s.encoded for s in delta_subs) == 4  # one encoding per form per publication
    assert [m["data"] for m in plain[0].got] == docs


def test_filter_evaluated_once_per_distinct_filter(monkeypatch: Any) -> None:
    """Subscribers sharing a filter share its evaluation; only matching publications reach them."""
    f_btc = parse({"key": "ticker", "cmp": "eq", "val": "BTC"})
    f_btc2 = parse({"key": "ticker", "cmp": "eq", "val": "BTC"})
    f_eth = parse({"key": "ticker", "cmp": "eq", "val": "ETH"})
    evaluated: list[str] = []
    subs = [Sub(i) for i in range(10)]
    deliveries = {s: Delivery(tags_filter=(f_btc if i % 2 else f_btc2) if i < 8 else f_eth) for i, s in enumerate(subs)}
    plain = Sub(99)
    ch = _channel(subs + [plain], deliveries)
    real_match = type(f_btc).match
    monkeypatch.setattr(type(f_btc), "match", lambda self, tags: evaluated.append(self.val) or real_match(self, tags))
    fanout.publication(ch, "c", Publication(data=1, tags={"ticker": "BTC"}))
    fanout.publication(ch, "c", Publication(data=2, tags={"ticker": "ETH"}))
    fanout.publication(ch, "c", Publication(data=3))
    assert sorted(evaluated) == ["BTC", "BTC", "BTC", "ETH", "ETH", "ETH"]  # two distinct filters x three publications
    assert [m["data"] for m in subs[0].got] == [1] and [m["data"] for m in subs[9].got] == [2]
    assert [m["data"] for m in plain.got] == [1, 2, 3]


def test_plain_channels_keep_the_plain_path(monkeypatch: Any) -> None:
    """No special subscriber: the special path is never entered."""
    monkeypatch.setattr(delta_fanout, "publication", lambda *a: (_ for _ in ()).throw(AssertionError("special path")))
    s = Sub(1)
    ch = _channel([s], {})
    assert fanout.publication(ch, "c", Publication(data=1)) == 1


def test_a_missed_publication_makes_the_next_full() -> None:
    """A delta subscriber whose encoding failed once gets the next publication in full, not a delta it cannot apply."""
    class Flaky(Sub):
        fail = False

        def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
            if self.fail:
                raise ValueError("cannot encode")
            return super().encode_push(channel, kind, body)

    s = Flaky(1, key="flaky")
    ch = _channel([s], {s: Delivery(delta=True)})
    docs = [{"rows": list(range(40)), "v": v} for v in range(4)]
    fanout.publication(ch, "c", Publication(data=docs[0], offset=1))
    fanout.publication(ch, "c", Publication(data=docs[1], offset=2))
    s.fail = True
    fanout.publication(ch, "c", Publication(data=docs[2], offset=3))
    s.fail = False
    fanout.publication(ch, "c", Publication(data=docs[3], offset=4))
    assert [m.get("delta", False) for m in s.got] == [False, True, False]
    assert orjson.loads(s.got[-1]["data"]) == docs[3]
