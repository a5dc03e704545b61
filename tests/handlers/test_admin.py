"""Admin endpoints: login, token checks, stats, publish, presence, disconnect, inspector."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient
from tornado.testing import bind_unused_port

from handlers.admin import AdminAuth
from handlers.auth import make_token
from server.app import build
from server.settings import load
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import connected

PASSWORD = "correct horse battery staple"
SECRET = "k" * 32


@pytest.fixture
def squall_config() -> dict[str, Any]:
    cfg = test_config(admin_password=PASSWORD, token_hmac_secret_key=SECRET)
    # clients may subscribe to feed:* but not publish there: only the server (admin) can
    cfg["namespaces"].append({"name": "feed", "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True})
    return cfg


async def call(port: int, path: str, body: Any = None, token: str = "", method: str = "") -> HTTPResponse:
    headers = {"X-Admin-Token": token} if token else {}
    return await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}{path}",
        method=method or ("POST" if body is not None else "GET"),
        body=None if body is None else json.dumps(body),
        headers=headers,
        raise_error=False,
    )


async def login(port: int) -> str:
    r = await call(port, "/admin/api/login", {"password": PASSWORD})
    assert r.code == 200, r.body
    token: str = json.loads(r.body)["token"]
    return token


@pytest.mark.gen_test
async def test_login_checks_password_and_endpoints_need_its_token(http_server, http_port):
    """Wrong password 401; no, expired or foreign tokens 401; the issued token works."""
    r = await call(http_port, "/admin/api/login", {"password": "nope"})
    assert r.code == 401 and "token" not in json.loads(r.body)
    assert (await call(http_port, "/admin/api/stats")).code == 401
    foreign = AdminAuth(PASSWORD, "another secret of 32 bytes length").issue()
    assert (await call(http_port, "/admin/api/stats", token=foreign)).code == 401
    token = await login(http_port)
    r = await call(http_port, "/admin/api/stats", token=token)
    assert r.code == 200
    assert (await call(http_port, "/admin/api/stats", token=token + "x")).code == 401


def test_admin_tokens_expire():
    """A token past its exp is refused; a fresh one is accepted."""
    auth = AdminAuth(PASSWORD, SECRET)
    assert auth.verify(auth.issue(ttl=60))
    assert not auth.verify(auth.issue(ttl=-10))
    assert not AdminAuth("", SECRET).verify(auth.issue())


@pytest.mark.gen_test
async def test_admin_page_served_when_enabled(http_server, http_port):
    """/admin serves the page with a strict CSP and no inline script."""
    r = await call(http_port, "/admin")
    assert r.code == 200
    assert b"/static/admin.js" in r.body
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    page = r.body.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script\s*>", page, re.I | re.S)
    assert scripts, "the page loads its script"
    assert all(re.search(r"\bsrc\s*=", attrs, re.I) and not body.strip() for attrs, body in scripts), scripts
    assert len(scripts) == len(re.findall(r"<script\b", page, re.I)), "an unclosed <script>"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page, re.I), "an inline event handler"


@pytest.mark.gen_test
async def test_admin_disabled_without_password_is_404():
    """With admin_password empty the page and every endpoint are 404, each naming admin_password."""
    sq = build(load(None, environ={}))
    await sq.start()
    sock, port = bind_unused_port()
    server = HTTPServer(sq.app)
    server.add_sockets([sock])
    try:
        for path, body in (("/admin", None), ("/admin/api/login", {"password": ""}), ("/admin/api/stats", None)):
            r = await call(port, path, body)
            assert r.code == 404, path
            assert b"admin_password" in r.body and b"SQUALL_ADMIN_PASSWORD" in r.body, (path, r.body)
        page = await call(port, "/admin")
        assert page.headers["Content-Type"].startswith("text/html")
        api = json.loads((await call(port, "/admin/api/stats")).body)
        assert "set admin_password" in api["error"]
    finally:
        server.stop()
        await sq.close()


@pytest.mark.gen_test(timeout=30)
async def test_stats_list_nodes_and_channels_with_subscriber_counts(http_server, http_port, ws_url, squall_app):
    """Stats show this node with its clients and each channel with its subscribers."""
    token = await login(http_port)
    a = await connected(ws_url)
    b = await connected(ws_url)
    await a.call("subscribe", {"channel": "chat:x"})
    await b.call("subscribe", {"channel": "chat:x"})
    await b.call("subscribe", {"channel": "live:y"})
    body = json.loads((await call(http_port, "/admin/api/stats", token=token)).body)
    assert {"channel": "chat:x", "subscribers": 2} in body["channels"]
    assert {"channel": "live:y", "subscribers": 1} in body["channels"]
    me = [n for n in body["nodes"] if n["uid"] == squall_app.ctx.hub.node_id]
    assert me and me[0]["num_clients"] == 2
    assert body["clients"] == 2 and body["subscriptions"] == 3
    a.close()
    b.close()


@pytest.mark.gen_test(timeout=30)
async def test_admin_publish_bypasses_client_permissions(http_server, http_port, ws_url):
    """Clients cannot publish to feed:*, the admin can, and subscribers receive it."""
    token = await login(http_port)
    c = await connected(ws_url)
    await c.call("subscribe", {"channel": "feed:news"})
    r = await c.call("publish", {"channel": "feed:news", "data": {"x": 1}})
    assert r["error"]["code"] == 103
    r2 = await call(http_port, "/admin/api/publish", {"channel": "feed:news", "data": {"x": 2}}, token)
    assert r2.code == 200
    push = await c.next_push()
    assert push["push"]["pub"]["data"] == {"x": 2}
    bad = await call(http_port, "/admin/api/publish", {"channel": "nosuchns:a", "data": 1}, token)
    assert bad.code == 400 and "unknown channel" in json.loads(bad.body)["error"]
    c.close()


@pytest.mark.gen_test(timeout=30)
async def test_presence_and_disconnect_user(http_server, http_port, ws_url):
    """Presence lists the JWT user; disconnecting that user closes its socket with 3503."""
    token = await login(http_port)
    c = await connected(ws_url, token=make_token(SECRET, "alice"))
    await c.call("subscribe", {"channel": "chat:p"})
    r = await call(http_port, "/admin/api/presence?channel=chat:p", token=token)
    assert r.code == 200
    assert [x["user"] for x in json.loads(r.body)["clients"]] == ["alice"]
    assert (await call(http_port, "/admin/api/presence?channel=feed:p", token=token)).code == 400
    nobody = await call(http_port, "/admin/api/disconnect", {"user": "nobody"}, token)
    assert nobody.code == 200 and json.loads(nobody.body)["disconnected"] == 0
    r = await call(http_port, "/admin/api/disconnect", {"user": "alice"}, token)
    assert r.code == 200
    assert json.loads(r.body) == {"user": "alice", "client": "", "code": 3503, "disconnected": 1, "other_nodes": 0}
    code, reason = await c.wait_closed()
    assert (code, reason) == (3503, "disconnected by admin")


async def read_json_line(stream: IOStream, timeout: float = 5.0) -> dict[str, Any]:
    """Next non-empty NDJSON line of the inspector stream."""
    for _ in range(100):
        line = await asyncio.wait_for(stream.read_until(b"\n"), timeout)
        if line.strip():
            obj: dict[str, Any] = json.loads(line)
            return obj
    raise AssertionError("only keep-alives")


@pytest.mark.gen_test(timeout=30)
async def test_inspector_streams_publications_and_joins_then_cleans_up(http_server, http_port, ws_url, squall_app):
    """The inspector sees publications and joins as they flow and unsubscribes when closed."""
    token = await login(http_port)
    stream = await TCPClient().connect("127.0.0.1", http_port)
    await stream.write(
        f"GET /admin/api/inspect?channel=chat:i HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Admin-Token: {token}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(stream.read_until(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and b"application/x-ndjson" in head
    first = await read_json_line(stream)
    assert first["kind"] == "subscribed" and first["channel"] == "chat:i"
    hub = squall_app.ctx.hub
    assert hub.channel_counts() == {"chat:i": 1}
    assert hub.num_clients == 0  # the inspector is not a client connection
    await call(http_port, "/admin/api/publish", {"channel": "chat:i", "data": {"hello": 1}}, token)
    pub = await read_json_line(stream)
    assert pub["kind"] == "pub" and pub["data"] == {"hello": 1} and pub["offset"] == 1
    c = await connected(ws_url, token=make_token(SECRET, "bob"))
    await c.call("subscribe", {"channel": "chat:i", "join_leave": True})
    join = await read_json_line(stream)
    assert join["kind"] == "join" and join["info"]["user"] == "bob"
    # the inspector only watches: it is in nobody's presence
    r = await c.call("presence", {"channel": "chat:i"})
    assert [e["user"] for e in r["presence"]["presence"].values()] == ["bob"]
    stream.close()
    for _ in range(200):
        if hub.channel_counts() == {"chat:i": 1}:
            break
        await asyncio.sleep(0.01)
    assert hub.channel_counts() == {"chat:i": 1}  # only bob is left
    await c.call("ping")
    assert not [p for p in c.pushes if "leave" in p.get("push", {})]  # no leave for the inspector
    c.close()


@pytest.mark.gen_test
async def test_bad_requests_are_400(http_server, http_port):
    """Malformed bodies and channel names are refused with a reason."""
    token = await login(http_port)
    for path, body in (
        ("/admin/api/publish", {"channel": "chat:a"}),
        ("/admin/api/publish", {"channel": 5, "data": 1}),
        ("/admin/api/disconnect", {"user": 5}),
    ):
        r = await call(http_port, path, body, token)
        assert r.code == 400, (path, body)
        assert json.loads(r.body)["error"]
    r = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{http_port}/admin/api/publish", method="POST", body="not json",
        headers={"X-Admin-Token": token}, raise_error=False,
    )
    assert r.code == 400

