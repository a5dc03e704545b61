"""Hub fan-out, join/leave, recovery and gap handling with a fake transport."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest

from channels import errors
from channels.broker_memory import MemoryBroker
from channels.history_memory import MemoryHistoryStore
from channels.hub import Hub
from channels.namespaces import build_namespaces
from channels.presence_memory import MemoryPresenceManager
from channels.types import ClientInfo, Publication, StreamPosition

OPEN = {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}


class FakeSub:
    """A Subscriber that records what the hub writes (a transport stand-in)."""

    def __init__(self, client_id: str, key: str = "json", user: str = "") -> None:
        self.client_id = client_id
        self.user = user
        self.key = key
        self.frames: list[tuple[bytes, str | None]] = []
        self.encodes = 0
        self.disconnects: list[int] = []

    @property
    def wire_key(self) -> str:
        return self.key

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        self.encodes += 1
        return f"{self.key}|{channel}|{kind}|{body.get('offset', 0)}|{body.get('data')}".encode()

    def write_wire(self, data: bytes, conflate: str | None = None) -> None:
        self.frames.append((data, conflate))

    def disconnect(self, code: errors.DisconnectCode, reason: str | None = None) -> None:
        self.disconnects.append(code.code)

    def pubs(self) -> list[bytes]:
        return [f for f, _ in self.frames if b"|pub|" in f]


def make_hub() -> Hub:
    ns = build_namespaces(
        {},
        [
            {"name": "h", "history_size": 10, "join_leave": True, "presence": True, **OPEN},
            {"name": "p", **OPEN},
            {"name": "lv", "history_size": 5, "latest_value": True, **OPEN},
        ],
    )
    return Hub(MemoryBroker(MemoryHistoryStore()), MemoryPresenceManager(), ns)


@pytest.fixture
def hub(io_loop: Any) -> Any:
    h = make_hub()
    io_loop.run_sync(h.start)
    yield h
    io_loop.run_sync(h.close)


def info(cid: str) -> ClientInfo:
    return ClientInfo(client=cid, user="u-" + cid)


@pytest.mark.gen_test
async def test_fanout_encodes_once_per_wire_key(hub: Hub) -> None:
    """Subscribers sharing a wire key share one encoding of a publication."""
    subs = [FakeSub(f"c{i}", key="json" if i % 2 else "msgpack") for i in range(10)]
    for s in subs:
        await hub.subscribe(s, "p:x", hub.namespaces.lookup("p:x"), info(s.client_id))
    await hub.publish("p:x", {"n": 1})
    assert all(len(s.pubs()) == 1 for s in subs)
    assert sum(s.encodes for s in subs) == 2
    json_frames = {s.pubs()[0] for s in subs if s.key == "json"}
    assert len(json_frames) == 1
    assert hub.stats.deliveries == 10


@pytest.mark.gen_test
async def test_offsets_consecutive_and_in_order(hub: Hub) -> None:
    """Publications in a history channel get consecutive offsets, delivered in order."""
    s = FakeSub("a")
    await hub.subscribe(s, "h:1", hub.namespaces.lookup("h:1"), info("a"))
    positions = await asyncio.gather(*(hub.publish("h:1", i) for i in range(20)))
    assert sorted(p.offset for p in positions) == list(range(1, 21))
    offsets = [int(f.split(b"|")[3]) for f in s.pubs()]
    assert offsets == list(range(1, 21))


@pytest.mark.gen_test
async def test_join_leave_reach_others_not_self(hub: Hub) -> None:
    """Join and leave pushes go to subscribers that asked, never to the subject."""
    a, b = FakeSub("a"), FakeSub("b")
    opts = hub.namespaces.lookup("h:room")
    await hub.subscribe(a, "h:room", opts, info("a"), join_leave=True)
    await hub.subscribe(b, "h:room", opts, info("b"), join_leave=True)
    assert [f for f, _ in a.frames if b"|join|" in f]
    assert not [f for f, _ in b.frames if b"|join|" in f]
    await hub.unsubscribe(b, "h:room", info("b"))
    assert [f for f, _ in a.frames if b"|leave|" in f]
    assert await hub.presence_stats("h:room") == (1, 1)


@pytest.mark.gen_test
async def test_recovery_returns_missed_publications(hub: Hub) -> None:
    """Recovering from a known position returns exactly the missed publications."""
    opts = hub.namespaces.lookup("h:r")
    first = await hub.publish("h:r", "a")
    for x in "bcd":
        await hub.publish("h:r", x)
    s = FakeSub("s")
    out = await hub.subscribe(s, "h:r", opts, info("s"), recover=True, since=StreamPosition(first.offset, first.epoch))
    assert out.recovered
    assert [p.data for p in out.publications] == ["b", "c", "d"]


@pytest.mark.gen_test
async def test_recovery_with_wrong_epoch_is_not_recovered(hub: Hub) -> None:
    """A position from another stream epoch yields recovered=false, never a gap."""
    opts = hub.namespaces.lookup("h:e")
    await hub.publish("h:e", "a")
    s = FakeSub("s")
    out = await hub.subscribe(s, "h:e", opts, info("s"), recover=True, since=StreamPosition(1, "other"))
    assert out.was_recovering and not out.recovered
    assert out.publications == []


@pytest.mark.gen_test
async def test_recovery_beyond_history_window_is_not_recovered(hub: Hub) -> None:
    """When the missed publications were trimmed away, recovery says so."""
    opts = hub.namespaces.lookup("h:w")
    first = await hub.publish("h:w", 0)
    for i in range(15):  # history_size is 10
        await hub.publish("h:w", i)
    s = FakeSub("s")
    out = await hub.subscribe(s, "h:w", opts, info("s"), recover=True, since=StreamPosition(first.offset, first.epoch))
    assert out.was_recovering and not out.recovered
    assert out.publications == []


@pytest.mark.gen_test
async def test_gap_in_stream_disconnects_with_insufficient_state(hub: Hub) -> None:
    """A publication skipping an offset makes local subscribers reconnect (3010)."""
    s = FakeSub("s")
    await hub.subscribe(s, "h:g", hub.namespaces.lookup("h:g"), info("s"))
    pos = await hub.publish("h:g", 1)
    hub.on_publication("h:g", Publication(data=3, offset=pos.offset + 2, epoch=pos.epoch))
    assert s.disconnects == [errors.INSUFFICIENT_STATE.code]


@pytest.mark.gen_test
async def test_duplicate_publication_is_dropped(hub: Hub) -> None:
    """A redelivered offset is not delivered twice."""
    s = FakeSub("s")
    await hub.subscribe(s, "h:d", hub.namespaces.lookup("h:d"), info("s"))
    pos = await hub.publish("h:d", 1)
    hub.on_publication("h:d", Publication(data=1, offset=pos.offset, epoch=pos.epoch))
    assert len(s.pubs()) == 1


@pytest.mark.gen_test
async def test_latest_value_channel_conflates_and_sends_latest_on_subscribe(hub: Hub) -> None:
    """Latest-value channels pass a conflate key and give newcomers the newest value."""
    for v in range(3):
        await hub.publish("lv:t", v)
    s = FakeSub("s")
    out = await hub.subscribe(s, "lv:t", hub.namespaces.lookup("lv:t"), info("s"))
    assert [p.data for p in out.publications] == [2]
    await hub.publish("lv:t", 9)
    assert s.frames[-1][1] == "lv:t"


@pytest.mark.gen_test
async def test_last_unsubscribe_drops_channel(hub: Hub) -> None:
    """The channel's local state goes away with its last subscriber."""
    s = FakeSub("s")
    await hub.subscribe(s, "p:gone", hub.namespaces.lookup("p:gone"), info("s"))
    assert hub.num_channels == 1
    await hub.unsubscribe(s, "p:gone")
    assert hub.num_channels == 0
    await hub.publish("p:gone", 1)
    assert s.pubs() == []


@pytest.mark.gen_test
async def test_control_messages_reach_registered_handler(hub: Hub) -> None:
    """Control ops dispatch to the handler registered for them; junk is dropped."""
    seen: list[dict[str, Any]] = []
    hub.register_control("x", seen.append)
    await hub.send_control("x", a=1)
    hub.on_control(b"\xc1 not msgpack")
    hub.on_control(msgpack.packb([1, 2]))
    assert seen == [{"a": 1, "op": "x"}]


@pytest.mark.gen_test
async def test_disconnect_user_targets_only_that_user(hub: Hub) -> None:
    """disconnect_user closes that user's connections and nobody else's."""
    a, b = FakeSub("a", user="alice"), FakeSub("b", user="bob")
    hub.add_client(a)
    hub.add_client(b)
    assert hub.disconnect_user("alice", errors.FORCE_NO_RECONNECT) == 1
    assert a.disconnects == [3503] and b.disconnects == []


@pytest.mark.gen_test
async def test_resync_keeps_subscribers_when_nothing_was_missed(hub: Hub) -> None:
    """After a broker reconnect, streams whose top was delivered keep their subscribers."""
    s = FakeSub("s")
    await hub.subscribe(s, "h:ok", hub.namespaces.lookup("h:ok"), info("s"))
    await hub.publish("h:ok", 1)
    hub.on_broker_resync()
    await hub.drain_background()
    assert s.disconnects == []


@pytest.mark.gen_test
async def test_resync_makes_subscribers_recover_after_missed_publications(hub: Hub) -> None:
    """A stream that moved on while the broker was away makes its subscribers recover (3010)."""
    s = FakeSub("s")
    opts = hub.namespaces.lookup("h:miss")
    await hub.subscribe(s, "h:miss", opts, info("s"))
    # stored but never delivered to this node: what a pub/sub outage looks like
    await hub.broker._history.append("h:miss", Publication(data="lost"), opts.stream)  # type: ignore[attr-defined]
    hub.on_broker_resync()
    await hub.drain_background()
    assert s.disconnects == [errors.INSUFFICIENT_STATE.code]


class BrokenSub(FakeSub):
    """A transport whose encoder fails (e.g. a value its format cannot carry)."""

    def encode_push(self, channel: str, kind: str, body: dict[str, Any]) -> bytes:
        raise TypeError("cannot encode")


@pytest.mark.gen_test
async def test_encoding_failure_skips_only_that_format(hub: Hub) -> None:
    """One wire format failing to encode does not stop delivery to the others."""
    bad, good = BrokenSub("b", key="broken"), FakeSub("g", key="json")
    opts = hub.namespaces.lookup("p:enc")
    await hub.subscribe(bad, "p:enc", opts, info("b"))
    await hub.subscribe(good, "p:enc", opts, info("g"))
    await hub.publish("p:enc", 1)
    assert len(good.pubs()) == 1 and bad.frames == []
    assert hub.stats.deliveries == 1
