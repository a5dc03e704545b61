"""The chat page (static/index.html + chat.js) in headless Chromium against a real Squall.

Squall runs as ``run.py serve`` with the embedded demo config; every test uses
its own room so the tests do not see each other's messages.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from playwright.sync_api import expect

from server.settings import DEMO_API_KEY
from tests.helpers.browser import OpenPage, RecordedPage
from tests.helpers.redis_server import RedisServer, redis_factory  # noqa: F401  (fixture)
from tests.helpers.squall_process import SquallProcess, start_squall

pytestmark = pytest.mark.browser

OpenChat = Callable[..., RecordedPage]


@pytest.fixture
def room() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def open_chat(open_page: OpenPage, demo_squall: SquallProcess) -> OpenChat:
    """Open the chat page as ``nick`` in ``room`` and wait until the room is live."""

    def _open(nick: str, room: str, **kw: Any) -> RecordedPage:
        rec = open_page(f"{demo_squall.url}/?nick={nick}&room={room}", **kw)
        expect(rec.page.locator("#room-state")).to_have_attribute("data-state", "subscribed")
        return rec

    return _open


def send(rec: RecordedPage, text: str) -> None:
    """Type and send a message, then wait for the server's echo on the sender's page."""
    rec.page.fill("#composer-text", text)
    rec.page.press("#composer-text", "Enter")
    expect(rec.page.locator("#messages .msg-text", has_text=re.compile(f"^{re.escape(text)}$"))).to_have_count(1)


def texts(rec: RecordedPage) -> Any:
    return rec.page.locator("#messages .msg .msg-text")


def client_id(rec: RecordedPage) -> str:
    cid: str = rec.page.evaluate("window.squallChat.client.clientId")
    assert cid
    return cid


def test_two_pages_see_messages_presence_join_and_leave(open_chat: OpenChat, room: str) -> None:
    """Two people in one room: each sees the other online, the other's message, the join and the leave."""
    alice = open_chat("alice", room)
    bob = open_chat("bob", room)
    a_id, b_id = client_id(alice), client_id(bob)

    expect(bob.page.locator(f'#online li[data-client="{a_id}"]')).to_have_count(1)
    expect(alice.page.locator(f'#online li[data-client="{b_id}"]')).to_have_count(1)
    expect(alice.page.locator("#online-count")).to_have_text("2")
    expect(alice.page.locator("#messages .notice-join")).to_have_count(1)
    expect(alice.page.locator(f'#online li[data-client="{a_id}"] .presence-name')).to_have_text("alice")

    send(alice, "hello bob")
    msg = bob.page.locator("#messages .msg", has_text="hello bob")
    expect(msg).to_have_count(1)
    expect(msg.locator(".msg-nick")).to_have_text("alice")
    # Bob now knows alice's nickname from her message, so presence shows it.
    expect(bob.page.locator(f'#online li[data-client="{a_id}"] .presence-name')).to_have_text("alice")

    send(bob, "hi alice")
    expect(alice.page.locator("#messages .msg", has_text="hi alice").locator(".msg-nick")).to_have_text("bob")

    bob.page.close()
    expect(alice.page.locator("#messages .notice-leave")).to_have_count(1)
    expect(alice.page.locator("#messages .notice-leave")).to_contain_text("bob")
    expect(alice.page.locator(f'#online li[data-client="{b_id}"]')).to_have_count(0)
    expect(alice.page.locator("#online-count")).to_have_text("1")
    assert alice.page_errors == [] and alice.console_errors == []


def test_history_shown_on_entry_before_live_messages_without_duplicates(open_chat: OpenChat, room: str) -> None:
    """A later visitor and a reload both get the room's history first, each message once."""
    alice = open_chat("alice", room)
    for i in range(3):
        send(alice, f"old {i}")

    carol = open_chat("carol", room)
    expect(texts(carol)).to_have_text(["old 0", "old 1", "old 2"])
    order = carol.page.locator("#messages > li").evaluate_all(
        "els => els.map(e => e.classList.contains('msg') ? e.querySelector('.msg-text').textContent : 'notice:' + e.textContent)"
    )
    assert order == ["old 0", "old 1", "old 2", f"notice:You joined #{room}"]

    send(alice, "live 3")
    expect(texts(carol)).to_have_text(["old 0", "old 1", "old 2", "live 3"])

    alice.page.reload()
    expect(alice.page.locator("#room-state")).to_have_attribute("data-state", "subscribed")
    expect(texts(alice)).to_have_text(["old 0", "old 1", "old 2", "live 3"])
    offsets = alice.page.locator("#messages .msg").evaluate_all("els => els.map(e => Number(e.dataset.offset))")
    assert offsets == sorted(set(offsets)) and len(offsets) == 4


def test_page_loads_nothing_from_outside_localhost(open_chat: OpenChat, room: str, demo_squall: SquallProcess) -> None:
    """Every request the page makes (page, scripts, styles, icon, WebSocket) goes to 127.0.0.1."""
    dave = open_chat("dave", room)
    send(dave, "anyone here?")
    urls = dave.requests
    for path in ("/static/squall.js", "/static/chat.js", "/static/style.css", "/connection/websocket"):
        assert any(u.split("?")[0].endswith(path) for u in urls), (path, urls)
    assert dave.foreign_requests() == []
    assert all(u.startswith((demo_squall.url, demo_squall.ws_url, "data:")) for u in urls), urls
    assert dave.page_errors == [] and dave.console_errors == []


def test_joining_another_room_from_the_form(open_chat: OpenChat, room: str) -> None:
    """The join form adds the room to the list, switches to it, and messages there arrive."""
    other = f"{room}-b"
    erin = open_chat("erin", room)
    frank = open_chat("frank", other)
    erin.page.fill("#room-name", other)
    erin.page.press("#room-name", "Enter")
    expect(erin.page.locator("#room-title")).to_have_text(f"#{other}")
    expect(erin.page.locator(f'#rooms button[data-room="{other}"]')).to_have_attribute("aria-current", "true")
    expect(erin.page.locator("#room-state")).to_have_attribute("data-state", "subscribed")
    send(frank, "welcome erin")
    expect(texts(erin)).to_have_text(["welcome erin"])
    assert erin.page.evaluate("window.squallChat.subscription.channel") == f"chat:{other}"


def test_killed_socket_reconnects_and_recovers_missed_messages_once_in_order(
    open_chat: OpenChat, room: str
) -> None:
    """The socket is killed and kept down while another page publishes; after reconnect the missed messages arrive once, in order, by recovery."""
    gate: dict[str, Any] = {"blocked": False, "links": []}

    def route(ws: Any) -> None:
        if gate["blocked"]:
            ws.close(code=4000, reason="blocked by test")
            return
        gate["links"].append((ws, ws.connect_to_server()))

    grace = open_chat(
        "grace", room, setup=lambda page: page.route_web_socket(re.compile(r"/connection/websocket$"), route)
    )
    heidi = open_chat("heidi", room)
    send(heidi, "before")
    expect(texts(grace)).to_have_text(["before"])
    grace.page.evaluate(
        """() => {
            window.__pubs = [];
            window.squallChat.client.on('publication',
                (ev) => window.__pubs.push({offset: ev.offset, text: ev.data.text, recovered: ev.recovered}));
        }"""
    )

    gate["blocked"] = True
    page_side, server_side = gate["links"][-1]
    page_side.close(code=4000, reason="killed by test")
    server_side.close()
    expect(grace.page.locator("#conn")).to_have_attribute("data-state", "connecting")
    for text in ("missed 1", "missed 2", "missed 3"):
        heidi.page.evaluate("t => window.squallChat.subscription.publish({nick: 'heidi', text: t, ts: Date.now()})", text)
    expect(texts(heidi)).to_have_count(4)
    gate["blocked"] = False

    expect(grace.page.locator("#conn")).to_have_attribute("data-state", "connected")
    expect(grace.page.locator("#conn-reconnects")).to_have_text("1")
    expect(texts(grace)).to_have_text(["before", "missed 1", "missed 2", "missed 3"])
    pubs = grace.page.evaluate("window.__pubs")
    assert [p["text"] for p in pubs] == ["missed 1", "missed 2", "missed 3"]
    assert all(p["recovered"] for p in pubs)
    first = pubs[0]["offset"]
    assert [p["offset"] for p in pubs] == [first, first + 1, first + 2]
    expect(grace.page.locator("#messages .notice", has_text="3 missed message(s) recovered")).to_have_count(1)

    send(heidi, "after")
    expect(texts(grace)).to_have_text(["before", "missed 1", "missed 2", "missed 3", "after"])


def server_presence_names(sp: SquallProcess, channel: str) -> dict[str, str]:
    """client id -> conn_info.name of a channel's presence, from the server API (the demo's key)."""
    req = urllib.request.Request(
        sp.url + "/api/presence", data=json.dumps({"channel": channel}).encode(), headers={"X-API-Key": DEMO_API_KEY}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        entries = json.loads(r.read())["result"]["presence"]
    return {cid: (e.get("conn_info") or {}).get("name", "") for cid, e in entries.items()}


def presence_becomes(sp: SquallProcess, channel: str, want: dict[str, str], timeout: float = 10.0) -> None:
    """Poll the server API until the channel's presence names are ``want``."""
    deadline = time.monotonic() + timeout
    got = server_presence_names(sp, channel)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = server_presence_names(sp, channel)
    assert got == want


def test_rename_reaches_server_presence_and_the_others_online_list(
    open_chat: OpenChat, room: str, demo_squall: SquallProcess
) -> None:
    """A rename reconnects with the new name: the server API's presence and the other page show it, no leave/join noise."""
    alice = open_chat("alice", room)
    bob = open_chat("bob", room)
    a_id, b_id = client_id(alice), client_id(bob)
    expect(bob.page.locator(f'#online li[data-client="{a_id}"] .presence-name')).to_have_text("alice")
    presence_becomes(demo_squall, f"chat:{room}", {a_id: "alice", b_id: "bob"})  # conn_info from the demo hook

    alice.page.fill("#nick", "alicia")
    alice.page.press("#nick", "Enter")
    alice.page.wait_for_function("id => ![id, ''].includes(window.squallChat.client.clientId)", arg=a_id)
    expect(alice.page.locator("#room-state")).to_have_attribute("data-state", "subscribed")
    a2 = client_id(alice)
    presence_becomes(demo_squall, f"chat:{room}", {a2: "alicia", b_id: "bob"})
    expect(bob.page.locator(f'#online li[data-client="{a2}"] .presence-name')).to_have_text("alicia")
    expect(bob.page.locator(f'#online li[data-client="{a_id}"]')).to_have_count(0)
    expect(bob.page.locator("#online-count")).to_have_text("2")
    expect(alice.page.locator(f'#online li[data-client="{a2}"] .presence-name')).to_have_text("alicia")
    expect(alice.page.locator("#online-count")).to_have_text("2")
    expect(bob.page.locator("#messages .notice", has_text="alice is now alicia")).to_have_count(1)
    # the reconnect is no news to bob, and the rename is no chat message
    expect(bob.page.locator("#messages .notice-join, #messages .notice-leave")).to_have_count(0)
    expect(texts(bob)).to_have_count(0)

    send(alice, "still me")
    expect(bob.page.locator("#messages .msg", has_text="still me").locator(".msg-nick")).to_have_text("alicia")
    carol = open_chat("carol", room)  # a later visitor gets the name from the server's presence
    expect(carol.page.locator(f'#online li[data-client="{a2}"] .presence-name')).to_have_text("alicia")
    expect(carol.page.locator("#online-count")).to_have_text("3")
    assert alice.page_errors == [] and bob.page_errors == []


@pytest.mark.redis
def test_redis_outage_reads_as_an_outage(
    open_page: OpenPage, redis_factory: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """Redis unreachable: the header says degraded with the server's reason, sending says the room cannot be
    joined (never "permission denied"), and once Redis is back the room goes live and messages go out."""
    redis = redis_factory()
    sp = start_squall(tmp_path / "squall", None, args=["--engine", "redis", "--redis-url", redis.url])
    try:
        redis.stop()
        rec = open_page(f"{sp.url}/?nick=olga&room=outage")
        page = rec.page
        expect(page.locator("#conn")).to_have_attribute("data-state", "degraded", timeout=15_000)
        expect(page.locator("#conn-state")).to_contain_text("redis")
        expect(page.locator("#room-state")).not_to_have_attribute("data-state", "subscribed")
        page.fill("#composer-text", "anyone?")
        page.press("#composer-text", "Enter")
        refused = page.locator("#messages .notice-error", has_text="Not sent")
        expect(refused).to_have_count(1)
        expect(refused).to_contain_text("cannot join the room")
        expect(page.locator("#composer-text")).to_have_value("anyone?")  # kept for a retry
        page.wait_for_timeout(2500)  # several subscribe retries
        expect(page.locator("#messages .notice-error", has_text="Room error")).to_have_count(1)
        assert "permission denied" not in page.locator("#messages").inner_text()

        redis.start()
        expect(page.locator("#room-state")).to_have_attribute("data-state", "subscribed", timeout=20_000)
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        expect(page.locator("#conn-state")).to_have_text("connected")
        page.press("#composer-text", "Enter")
        expect(page.locator("#messages .msg-text", has_text="anyone?")).to_have_count(1)
        assert rec.page_errors == []
    finally:
        sp.stop()
