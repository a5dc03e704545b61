"""Headless Chromium for the browser tests: Debian's binary driven by Playwright.

No Playwright browser download exists here, so the fixture launches
/usr/bin/chromium through ``executable_path`` and skips (saying why) only when
that binary is absent. Tests use the sync API, which must not run inside an
asyncio loop: keep the Squall server in a subprocess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a loaded CI machine; every wait in the tests is bounded by it.
DEFAULT_TIMEOUT_MS = 15_000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})

if TYPE_CHECKING:  # playwright is a test extra; imported for real inside the fixture
    from playwright.sync_api import Browser, BrowserContext, Page


@dataclass
class RecordedPage:
    """A page plus what it did: every request URL, console errors, uncaught errors."""

    page: "Page"
    context: "BrowserContext"
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """Request URLs that went anywhere but 127.0.0.1/localhost (data: URLs are local)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOCAL_HOSTS:
                out.append(url)
        return out


OpenPage = Callable[..., RecordedPage]


def chromium_path() -> Path | None:
    return CHROMIUM if CHROMIUM.exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    """One headless Chromium per test module, closed at the end."""
    if chromium_path() is None:
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(browser: "Browser") -> Iterator[OpenPage]:
    """Open ``url`` in a fresh browser context (its own storage, like another person).

    ``setup(page)`` runs before navigation, e.g. to install routes.
    """
    contexts: list[BrowserContext] = []

    def _open(
        url: str,
        *,
        context: "BrowserContext | None" = None,
        setup: "Callable[[Page], object] | None" = None,
    ) -> RecordedPage:
        if context is None:
            context = browser.new_context(viewport={"width": 1180, "height": 760})
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(DEFAULT_TIMEOUT_MS)
        rec = RecordedPage(page=page, context=context)
        page.on("request", lambda r: rec.requests.append(r.url))
        page.on("websocket", lambda ws: rec.requests.append(ws.url))
        page.on("console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: rec.page_errors.append(str(e)))
        if setup is not None:
            setup(page)
        page.goto(url)
        return rec

    yield _open
    for c in contexts:
        c.close()
