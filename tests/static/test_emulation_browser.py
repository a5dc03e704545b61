"""centrifuge-js's browser bundle in headless Chromium over the emulated transports only
(http_stream, and sse with the browser's own EventSource): a two-person chat, no WebSocket."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import OpenPage, RecordedPage
from tests.helpers.squall_process import SquallProcess

pytestmark = pytest.mark.browser

BUNDLE = Path(__file__).resolve().parents[1] / "interop" / "js" / "node_modules" / "centrifuge" / "dist" / "centrifuge.js"

PAGE = "<!doctype html><title>emulation</title><ul id=log></ul>"

START = """async ([transport, channel, nick]) => {
  const base = location.origin;
  const endpoint = base + (transport === 'sse' ? '/connection/sse' : '/connection/http_stream');
  const C = window.Centrifuge.Centrifuge || window.Centrifuge;
  const c = new C([{ transport, endpoint }], { emulationEndpoint: base + '/emulation', data: { nick } });
  window.chat = { c, got: [], transport: '' };
  c.on('connected', (ctx) => { window.chat.transport = ctx.transport; });
  const sub = c.newSubscription(channel, { joinLeave: true });
  sub.on('publication', (ctx) => {
    window.chat.got.push(ctx.data);
    const li = document.createElement('li'); li.textContent = ctx.data.nick + ': ' + ctx.data.text;
    document.getElementById('log').appendChild(li);
  });
  window.chat.sub = sub;
  const subscribed = new Promise((r) => sub.on('subscribed', r));
  sub.subscribe();
  c.connect();
  await subscribed;
  return window.chat.transport;
}"""


def open_emulated(open_page: OpenPage, sp: SquallProcess, transport: str, channel: str, nick: str) -> RecordedPage:
    """A same-origin page of the server with centrifuge-js loaded, connected and subscribed."""
    url = f"{sp.url}/emulation-test-{uuid.uuid4().hex[:6]}"

    def setup(page: Any) -> None:
        page.route(url, lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE))

    rec = open_page(url, setup=setup)
    rec.page.add_script_tag(path=str(BUNDLE))
    assert rec.page.evaluate(START, [transport, channel, nick]) == transport
    return rec


def test_chat_over_http_stream_and_sse_without_websocket(open_page: OpenPage, demo_squall: SquallProcess) -> None:
    """Alice on http_stream, Bob on SSE: each sees the other's messages, presence 2, history; no WebSocket opened."""
    if not BUNDLE.exists():
        pytest.skip("centrifuge npm package not installed (see tests/interop/test_centrifuge_js.py)")
    channel = f"chat:e{uuid.uuid4().hex[:8]}"
    alice = open_emulated(open_page, demo_squall, "http_stream", channel, "alice")
    bob = open_emulated(open_page, demo_squall, "sse", channel, "bob")
    alice.page.evaluate("(t) => window.chat.sub.publish({ nick: 'alice', text: t })", "hi bob")
    bob.page.evaluate("(t) => window.chat.sub.publish({ nick: 'bob', text: t })", "hi alice")
    for rec in (alice, bob):
        rec.page.wait_for_function("window.chat.got.length >= 2")
        assert sorted(m["text"] for m in rec.page.evaluate("window.chat.got")) == ["hi alice", "hi bob"]
        assert rec.page.evaluate("window.chat.sub.presence().then((p) => Object.keys(p.clients).length)") == 2
        history = rec.page.evaluate("window.chat.sub.history({ limit: 10 }).then((h) => h.publications.map((p) => p.data.text))")
        assert sorted(history) == ["hi alice", "hi bob"]
        assert not [u for u in rec.requests if u.startswith("ws")], rec.requests
        assert rec.page_errors == []
    assert any(u.endswith("/emulation") for u in alice.requests)
    assert any("/connection/sse?cf_connect=" in u for u in bob.requests)
    for rec in (alice, bob):
        rec.page.evaluate("window.chat.c.disconnect()")


def test_chat_page_over_sse_emulation(open_page: OpenPage, demo_squall: SquallProcess) -> None:
    """The chat page with ?transport=sse (static/squall_emulation.js): messages, presence, leave; no WebSocket."""
    from playwright.sync_api import expect

    from tests.static.test_chat_browser import client_id, send

    room = f"e{uuid.uuid4().hex[:10]}"

    def open_chat(nick: str) -> RecordedPage:
        rec = open_page(f"{demo_squall.url}/?nick={nick}&room={room}&transport=sse")
        expect(rec.page.locator("#room-state")).to_have_attribute("data-state", "subscribed")
        return rec

    alice, bob = open_chat("alice"), open_chat("bob")
    a_id, b_id = client_id(alice), client_id(bob)
    expect(alice.page.locator(f'#online li[data-client="{b_id}"]')).to_have_count(1)
    expect(bob.page.locator(f'#online li[data-client="{a_id}"]')).to_have_count(1)
    send(alice, "hello over sse")
    expect(bob.page.locator("#messages .msg", has_text="hello over sse").locator(".msg-nick")).to_have_text("alice")
    send(bob, "and back")
    expect(alice.page.locator("#messages .msg", has_text="and back")).to_have_count(1)
    for rec in (alice, bob):
        assert not [u for u in rec.requests if u.startswith("ws")], rec.requests
        assert any("/connection/sse?cf_connect=" in u for u in rec.requests)
        assert any(u.endswith("/emulation") for u in rec.requests)
    bob.page.close()
    expect(alice.page.locator(f'#online li[data-client="{b_id}"]')).to_have_count(0)
    assert alice.page_errors == [] and alice.console_errors == []
