"""static/squall.js in headless Chromium against a scripted fake WebSocket.

The module is served to the page by Playwright's router from the static/
directory (no server needed), and each test plays the server's side of the
protocol frame by frame, so the client's behaviour is checked exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers.browser import DEFAULT_TIMEOUT_MS

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "static"
ORIGIN = "http://127.0.0.1:9"  # never contacted: every request is fulfilled by the router

# The server's side: records frames the client sends, lets the test push
# frames and close with a code. `wait` polls a condition, bounded in time.
HARNESS = """
window.FakeWS = class FakeWS {
  constructor(url) {
    this.url = url; this.readyState = 0; this.sent = []; this.closedWith = null;
    FakeWS.all.push(this);
    setTimeout(() => { if (this.readyState === 0) { this.readyState = 1; this.onopen && this.onopen({}); } }, 0);
  }
  send(data) { this.sent.push(data); }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3; this.closedWith = { code, reason };
    setTimeout(() => this.onclose && this.onclose({ code, reason }), 0);
  }
  commands() { return this.sent.flatMap((f) => f.split('\\n')).map((l) => JSON.parse(l)); }
  last(method) { return this.commands().filter((c) => method in c).pop(); }
  push(...msgs) { this.onmessage && this.onmessage({ data: msgs.map((m) => JSON.stringify(m)).join('\\n') }); }
  serverClose(code, reason = '') { this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
};
window.FakeWS.all = [];
window.wait = async (cond, what, ms = 5000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (cond()) return; await new Promise((r) => setTimeout(r, 5)); }
  throw new Error('timed out waiting for ' + what);
};
window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Connect a client with the fake socket and answer its connect command.
window.connected = async (m, opts = {}, result = {}) => {
  const c = new m.Client('ws://fake/connection/websocket', { WebSocket: FakeWS, minReconnectDelay: 1,
    maxReconnectDelay: 5, ...opts });
  c.connect();
  const ws = FakeWS.all[FakeWS.all.length - 1];
  await wait(() => ws.last('connect'), 'connect command');
  ws.push({ id: ws.last('connect').id, connect: { client: 'c' + FakeWS.all.length, version: 't', ...result } });
  await wait(() => c.state === 'connected', 'connected');
  return [c, ws];
};
// Subscribe and answer the subscribe command with `result`.
window.subscribed = async (c, ws, channel, result = {}) => {
  const sub = c.subscribe(channel);
  await wait(() => ws.commands().some((x) => x.subscribe && x.subscribe.channel === channel), 'subscribe');
  const cmd = ws.commands().filter((x) => x.subscribe && x.subscribe.channel === channel).pop();
  ws.push({ id: cmd.id, subscribe: result });
  await wait(() => sub.state === 'subscribed', 'subscribed');
  return sub;
};
"""


@pytest.fixture(scope="module")
def js(browser: Any) -> Iterator[Any]:
    """A page on a routed origin with squall.js importable and the fake server loaded."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)

    def serve(route: Any) -> None:
        name = route.request.url.split("/static/", 1)[-1].split("?")[0]
        path = STATIC / name
        if "/static/" in route.request.url and path.is_file() and STATIC in path.resolve().parents:
            route.fulfill(path=str(path), content_type="text/javascript")
        else:
            route.fulfill(body="<!doctype html><title>t</title>", content_type="text/html")

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/")
    page.add_script_tag(content=HARNESS)
    yield page
    context.close()


def run(page: Any, body: str) -> Any:
    """Run ``body`` as an async function with ``m`` = the squall.js module; fresh FakeWS list."""
    return page.evaluate(
        "async () => { FakeWS.all = []; const m = await import('/static/squall.js');\n" + body + "\n}"
    )


def test_connect_command_carries_name_and_data(js: Any) -> None:
    """The connect command names the client and carries the connect data."""
    cmd = run(js, """
        const [c, ws] = await connected(m, { data: { name: 'alice' }, token: 'tok' });
        c.disconnect();
        return ws.last('connect');
    """)
    assert cmd["id"] >= 1
    assert cmd["connect"]["data"] == {"name": "alice"}
    assert cmd["connect"]["token"] == "tok"
    assert cmd["connect"]["name"] == "squall-js"


def test_commands_of_one_turn_share_a_frame_and_replies_may_too(js: Any) -> None:
    """Two subscribes issued together go out in one frame; two replies in one frame both land."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const a = c.subscribe('chat:a'), b = c.subscribe('chat:b');
        await wait(() => ws.sent.length >= 2, 'subscribe frame');
        const frame = ws.sent[ws.sent.length - 1];
        const cmds = frame.split('\\n').map((l) => JSON.parse(l));
        ws.push({ id: cmds[0].id, subscribe: {} }, { id: cmds[1].id, subscribe: {} });
        await wait(() => a.state === 'subscribed' && b.state === 'subscribed', 'both subscribed');
        c.disconnect();
        return cmds.map((x) => x.subscribe.channel);
    """)
    assert out == ["chat:a", "chat:b"]


def test_ping_is_answered_only_when_server_asks_for_pong(js: Any) -> None:
    """A server ping {} gets a {} pong when connect said pong: true, nothing otherwise."""
    out = run(js, """
        const [c1, ws1] = await connected(m, {}, { ping: 25, pong: true });
        const before1 = ws1.sent.length;
        ws1.push({});
        const [c2, ws2] = await connected(m, {}, { ping: 25, pong: false });
        const before2 = ws2.sent.length;
        ws2.push({});
        await sleep(20);
        c1.disconnect(); c2.disconnect();
        return [ws1.sent.slice(before1), ws2.sent.slice(before2)];
    """)
    assert out == [["{}"], []]


def test_missing_ping_counts_as_dead_connection(js: Any) -> None:
    """No ping within ping + grace: the socket is dropped and the client reconnects."""
    out = run(js, """
        const codes = [];
        const [c, ws] = await connected(m, { maxServerPingDelay: 30 }, { ping: 0.02, pong: true });
        c.on('connecting', (ev) => codes.push(ev.code));
        await wait(() => FakeWS.all.length >= 2, 'a new socket');
        c.disconnect();
        return { codes, closed: ws.readyState };
    """)
    assert out["codes"][0] == 2  # ClientCode.NO_PING
    assert out["closed"] == 3


@pytest.mark.parametrize(
    ("code", "reconnects"),
    [(3000, True), (3001, True), (4000, True), (1006, True), (3500, False), (3501, False), (3999, False), (4500, False), (4999, False)],
)
def test_disconnect_code_decides_reconnect(js: Any, code: int, reconnects: bool) -> None:
    """Codes 3500-3999 and 4500-4999 stop the client; any other close reconnects."""
    out = run(js, f"""
        const [c, ws] = await connected(m);
        ws.serverClose({code}, 'bye');
        if ({str(reconnects).lower()}) {{
            await wait(() => c.state === 'connected' || FakeWS.all.length >= 2, 'reconnect attempt');
        }} else {{
            await sleep(60);  // 12x the maximum backoff of this client
        }}
        const r = {{ state: c.state, sockets: FakeWS.all.length }};
        c.disconnect();
        return r;
    """)
    if reconnects:
        assert out["sockets"] == 2
    else:
        assert out == {"state": "disconnected", "sockets": 1}


def test_disconnect_push_is_honoured(js: Any) -> None:
    """A disconnect push with a do-not-reconnect code ends the connection with that code."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const got = [];
        c.on('disconnected', (ev) => got.push(ev));
        ws.push({ push: { disconnect: { code: 3501, reason: 'bad request' } } });
        await wait(() => c.state === 'disconnected', 'disconnected');
        await sleep(30);
        return { got, sockets: FakeWS.all.length };
    """)
    assert out == {"got": [{"code": 3501, "reason": "bad request"}], "sockets": 1}


def test_recovery_emits_missed_publications_once_in_order(js: Any) -> None:
    """Resubscribe asks from the last offset; recovered and live duplicates are dropped."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const seen = [];
        c.on('publication', (ev) => seen.push([ev.offset, ev.data.n, ev.recovered]));
        const sub = await subscribed(c, ws, 'chat:r', { recoverable: true, epoch: 'e1', offset: 5 });
        ws.push({ push: { channel: 'chat:r', pub: { data: { n: 6 }, offset: 6 } } },
                { push: { channel: 'chat:r', pub: { data: { n: 7 }, offset: 7 } } });
        ws.serverClose(3000, 'restart');
        await wait(() => FakeWS.all.length === 2, 'reconnect');
        const ws2 = FakeWS.all[1];
        await wait(() => ws2.last('connect'), 'connect');
        ws2.push({ id: ws2.last('connect').id, connect: { client: 'c2' } });
        await wait(() => ws2.last('subscribe'), 'resubscribe');
        const req = ws2.last('subscribe');
        const pub = (n) => ({ data: { n }, offset: n });
        ws2.push({ id: req.id, subscribe: { recoverable: true, epoch: 'e1', offset: 10, recovered: true,
                   was_recovering: true, publications: [pub(7), pub(8), pub(9), pub(10)] } },
                 { push: { channel: 'chat:r', pub: pub(10) } },
                 { push: { channel: 'chat:r', pub: pub(11) } });
        await wait(() => seen.length >= 6, 'publications');
        await sleep(10);
        c.disconnect();
        return { req: req.subscribe, seen, offset: sub.offset, reconnects: c.reconnects };
    """)
    assert out["req"] == {"channel": "chat:r", "join_leave": True, "recover": True, "offset": 7, "epoch": "e1"}
    assert out["seen"] == [[6, 6, False], [7, 7, False], [8, 8, True], [9, 9, True], [10, 10, True], [11, 11, False]]
    assert out["offset"] == 11
    assert out["reconnects"] == 1


def test_unrecovered_gap_is_reported_and_position_jumps(js: Any) -> None:
    """recovered: false reaches the app as wasRecovering && !recovered; the position moves to the top."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const sub = await subscribed(c, ws, 'chat:g', { recoverable: true, epoch: 'e1', offset: 3 });
        const events = [];
        sub.on('subscribed', (ev) => events.push([ev.wasRecovering, ev.recovered]));
        ws.serverClose(3000);
        await wait(() => FakeWS.all.length === 2, 'reconnect');
        const ws2 = FakeWS.all[1];
        await wait(() => ws2.last('connect'), 'connect');
        ws2.push({ id: ws2.last('connect').id, connect: { client: 'c2' } });
        await wait(() => ws2.last('subscribe'), 'resubscribe');
        ws2.push({ id: ws2.last('subscribe').id, subscribe: { recoverable: true, epoch: 'e1', offset: 500,
                   recovered: false, was_recovering: true } });
        await wait(() => sub.state === 'subscribed', 'subscribed');
        c.disconnect();
        return { events, offset: sub.offset };
    """)
    assert out == {"events": [[True, False]], "offset": 500}


def test_new_epoch_forgets_old_position(js: Any) -> None:
    """After the stream's epoch changes, offset 1 of the new stream is not taken for a duplicate."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const seen = [];
        const sub = await subscribed(c, ws, 'chat:e', { recoverable: true, epoch: 'old', offset: 40 });
        sub.on('publication', (ev) => seen.push(ev.offset));
        ws.serverClose(3000);
        await wait(() => FakeWS.all.length === 2, 'reconnect');
        const ws2 = FakeWS.all[1];
        await wait(() => ws2.last('connect'), 'connect');
        ws2.push({ id: ws2.last('connect').id, connect: { client: 'c2' } });
        await wait(() => ws2.last('subscribe'), 'resubscribe');
        ws2.push({ id: ws2.last('subscribe').id, subscribe: { recoverable: true, epoch: 'new', offset: 0,
                   recovered: false, was_recovering: true } },
                 { push: { channel: 'chat:e', pub: { data: 1, offset: 1 } } });
        await wait(() => seen.length === 1, 'publication');
        c.disconnect();
        return { seen, epoch: sub.epoch };
    """)
    assert out == {"seen": [1], "epoch": "new"}


def test_error_reply_rejects_with_server_code(js: Any) -> None:
    """An error reply rejects the call with the server's code, message and temporary flag."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const p = c.publish('chat:x', { text: 'hi' }).then(() => null, (e) => [e.name, e.code, e.message, e.temporary]);
        await wait(() => ws.last('publish'), 'publish');
        ws.push({ id: ws.last('publish').id, error: { code: 103, message: 'permission denied' } });
        const r = await p;
        c.disconnect();
        return { r, cmd: ws.last('publish').publish };
    """)
    assert out == {"r": ["SquallError", 103, "permission denied", False], "cmd": {"channel": "chat:x", "data": {"text": "hi"}}}


def test_history_request_shape_and_result(js: Any) -> None:
    """history() sends limit, since and reverse in Centrifugo's shape and returns the publications."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const p = c.history('chat:h', { limit: 2, since: { offset: 4, epoch: 'e' }, reverse: true });
        await wait(() => ws.last('history'), 'history');
        ws.push({ id: ws.last('history').id, history: { publications: [{ data: 'b', offset: 6 }, { data: 'a', offset: 5 }],
                  epoch: 'e', offset: 6 } });
        const r = await p;
        c.disconnect();
        return { r, cmd: ws.last('history').history };
    """)
    assert out["cmd"] == {"channel": "chat:h", "limit": 2, "since": {"offset": 4, "epoch": "e"}, "reverse": True}
    assert out["r"] == {"publications": [{"data": "b", "offset": 6}, {"data": "a", "offset": 5}], "offset": 6, "epoch": "e"}


def test_server_unsubscribe_code_decides_resubscribe(js: Any) -> None:
    """Unsubscribe push 2500-2999 resubscribes; other codes end the subscription."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const a = await subscribed(c, ws, 'chat:u1', {});
        const b = await subscribed(c, ws, 'chat:u2', {});
        const n = ws.commands().filter((x) => x.subscribe).length;
        ws.push({ push: { channel: 'chat:u1', unsubscribe: { code: 2500, reason: 'insufficient state' } } },
                { push: { channel: 'chat:u2', unsubscribe: { code: 2000, reason: 'server unsubscribe' } } });
        await wait(() => ws.commands().filter((x) => x.subscribe).length === n + 1, 'resubscribe');
        const again = ws.last('subscribe').subscribe.channel;
        c.disconnect();
        return { again, a: a.state, b: b.state };
    """)
    assert out == {"again": "chat:u1", "a": "subscribing", "b": "unsubscribed"}


def test_join_and_leave_pushes_reach_handlers(js: Any) -> None:
    """join and leave pushes are emitted with the channel and client info."""
    out = run(js, """
        const [c, ws] = await connected(m);
        const sub = await subscribed(c, ws, 'chat:p', {});
        const got = [];
        sub.on('join', (ev) => got.push(['join', ev.info.client]));
        sub.on('leave', (ev) => got.push(['leave', ev.info.client]));
        ws.push({ push: { channel: 'chat:p', join: { info: { client: 'x', user: '' } } } },
                { push: { channel: 'chat:p', leave: { info: { client: 'x', user: '' } } } });
        c.disconnect();
        return got;
    """)
    assert out == [["join", "x"], ["leave", "x"]]


def test_backoff_is_full_jitter_and_capped(js: Any) -> None:
    """Delays stay in [0, min(max, base * 2^attempt)) and grow with the attempt count."""
    out = js.evaluate("""async () => {
        const m = await import('/static/squall.js');
        const hi = () => 0.999999, lo = () => 0;
        return [0, 1, 2, 5, 20, 1000].map((a) => [m.backoffDelay(a, 500, 20000, lo), m.backoffDelay(a, 500, 20000, hi)]);
    }""")
    assert [lo for lo, _ in out] == [0] * 6
    assert [hi for _, hi in out] == [499, 999, 1999, 15999, 19999, 19999]


def test_server_side_subscriptions_are_announced_and_delivered(js: Any) -> None:
    """Channels in the connect reply's subs are announced, and their publications reach the client."""
    out = run(js, """
        const got = [];
        const c0 = new m.Client('ws://fake/connection/websocket', { WebSocket: FakeWS });
        c0.on('server_subscribed', (ev) => got.push(['sub', ev.channel]));
        c0.on('publication', (ev) => got.push(['pub', ev.channel, ev.data]));
        c0.connect();
        const ws = FakeWS.all[0];
        await wait(() => ws.last('connect'), 'connect');
        ws.push({ id: ws.last('connect').id, connect: { client: 'c', subs: { news: { recoverable: false } } } },
                { push: { channel: 'news', pub: { data: 'extra' } } });
        await wait(() => got.length === 2, 'events');
        c0.disconnect();
        return got;
    """)
    assert out == [["sub", "news"], ["pub", "news", "extra"]]
