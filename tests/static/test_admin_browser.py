"""The admin page in headless Chromium: log in, see a live channel, publish, watch it arrive."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers.squall_process import SquallProcess, start_squall, test_config
from tests.helpers.wsclient import connected

pytestmark = pytest.mark.browser

PASSWORD = "admin-pass-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def admin_squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    sp = start_squall(Path(tmp_path_factory.mktemp("squall")), test_config(admin_password=PASSWORD))
    try:
        yield sp
    finally:
        sp.stop()


class LiveSubscriber:
    """A protocol client on its own thread and loop (Playwright's sync API owns this one)."""

    def __init__(self, ws_url: str, channel: str) -> None:
        self.ws_url = ws_url
        self.channel = channel
        self.received: list[Any] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self.ready.wait(10), f"subscriber did not start: {self.error}"

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            c = await connected(self.ws_url)
            r = await c.call("subscribe", {"channel": self.channel})
            assert "subscribe" in r, r
        except BaseException as e:  # reported to the test through start()
            self.error = e
            return
        self.ready.set()
        while not self._stop.is_set():
            try:
                push = await c.next_push(timeout=0.2)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                break
            pub = push.get("push", {}).get("pub")
            if pub is not None:
                self.received.append(pub["data"])
        c.close()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_admin_login_live_channel_publish_and_inspect(admin_squall, open_page):
    """Log in; the live channel shows with 1 subscriber; a form publish shows in the inspector and reaches the client."""
    channel = "chat:lobby"
    sub = LiveSubscriber(admin_squall.ws_url, channel)
    sub.start()
    try:
        rec = open_page(admin_squall.url + "/admin")
        page = rec.page
        page.fill("#password", "wrong")
        page.click("#login-btn")
        page.wait_for_selector("#login-error:has-text('wrong password')")
        assert page.is_hidden("#dashboard")

        page.fill("#password", PASSWORD)
        page.click("#login-btn")
        page.wait_for_selector("#dashboard:not([hidden])")
        row = page.wait_for_selector(f"#channels tr[data-channel='{channel}']")
        assert row.inner_text().split() == [channel, "1"]
        page.wait_for_selector("#nodes tr td:nth-child(2):has-text('1')")  # this node: 1 client

        row.click()  # fills the inspector, publish and presence forms
        assert page.input_value("#inspect-channel") == channel
        page.click("#inspect-btn")
        page.wait_for_selector(f"#inspect-state:has-text('watching {channel}')")

        marker = "hello-" + uuid.uuid4().hex[:8]
        page.fill("#pub-data", '{"text": "%s"}' % marker)
        page.click("#pub-btn")
        page.wait_for_selector("#pub-result:has-text('published to chat:lobby at offset')")
        page.wait_for_selector(f"#inspect-log li:has-text('{marker}')")
        rates = []
        for _ in range(60):  # the 1 s poll turns the publication into a rate
            rates.append(float(page.text_content("#rate-pub") or 0))
            if rates[-1] > 0:
                break
            page.wait_for_timeout(100)
        assert rates[-1] > 0, rates

        page.click("#presence-btn")
        page.wait_for_selector("#presence-result:has-text('in chat:lobby')")

        for _ in range(100):
            if {"text": marker} in sub.received:
                break
            page.wait_for_timeout(50)
        assert {"text": marker} in sub.received

        # the token survives a reload (sessionStorage) and logging out forgets it
        page.reload()
        page.wait_for_selector("#dashboard:not([hidden])")
        page.click("#logout")
        page.wait_for_selector("#login:not([hidden])")
        assert page.evaluate("sessionStorage.getItem('squall-admin-token')") is None

        assert rec.page_errors == []
        assert rec.foreign_requests() == []
        assert [e for e in rec.console_errors if "401" not in e] == []
    finally:
        sub.stop()


def test_admin_presence_names_unknown_disconnect_and_disabled_hint(open_page, tmp_path):
    """Presence shows the chat nickname from conn_info, disconnecting an unknown user says nobody was
    disconnected, and a server without admin_password answers /admin with a page naming it."""
    sp = start_squall(tmp_path / "on", None, env={"SQUALL_ADMIN_PASSWORD": PASSWORD})  # the demo config
    off = start_squall(tmp_path / "off", None)
    try:
        chat = open_page(f"{sp.url}/?nick=olga&room=adm")
        chat.page.wait_for_selector("#room-state[data-state=subscribed]")

        rec = open_page(sp.url + "/admin")
        page = rec.page
        page.fill("#password", PASSWORD)
        page.click("#login-btn")
        page.wait_for_selector("#dashboard:not([hidden])")
        page.fill("#presence-channel", "chat:adm")
        page.click("#presence-btn")
        page.wait_for_selector("#presence-result:has-text('1 in chat:adm')")
        assert page.inner_text("#presence tr td:first-child") == "olga"  # before: "(anonymous)"

        page.fill("#dc-user", "nobody-" + uuid.uuid4().hex[:6])
        page.click("#dc-btn")
        page.wait_for_selector("#dc-result:has-text('nobody was disconnected')")
        assert chat.page.get_attribute("#conn", "data-state") == "connected"

        hint = open_page(off.url + "/admin").page
        body = hint.inner_text("body")
        assert "admin_password" in body and "SQUALL_ADMIN_PASSWORD" in body, body
        assert rec.page_errors == [] and chat.page_errors == []
    finally:
        sp.stop()
        off.stop()
