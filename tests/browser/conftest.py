"""Browser tests: the console served by a real HTTP server, driven in Debian's headless Chromium.

The browser is the system's /usr/bin/chromium (`apt-get install chromium`), never a downloaded
one; without it every browser test is skipped with that reason shown.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from router.runtime import EXTENSION_KEY, Runtime
from router.services.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD, load_demo_data
from router.services.logins import create_staff
from router.store import migrate
from tests.conftest import AppCache, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
VIEWER_EMAIL = "watcher@support.example"
VIEWER_PASSWORD = "watcher-password-123"
EDITOR_EMAIL = "router@support.example"
EDITOR_PASSWORD = "router-password-123"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the browser tests, saying why, when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
        "to run the browser tests"
    )
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


class LiveServer:
    """The app served over HTTP on a free loopback port, in a thread of this process."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.rt: Runtime = app.extensions[EXTENSION_KEY]
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, apps: AppCache) -> Iterator[LiveServer]:
    """Serve a migrated SQLite store with the demo data and a viewer and an editor."""
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'router.sqlite3'}"
    migrate.upgrade(url)
    app = apps.get(make_settings(url))
    rt: Runtime = app.extensions[EXTENSION_KEY]
    load_demo_data(rt.db, rt.policy, rt.settings.pin_pepper, datetime.now(UTC) - timedelta(days=1))
    create_staff(rt.db, VIEWER_EMAIL, "viewer", password=VIEWER_PASSWORD)
    create_staff(rt.db, EDITOR_EMAIL, "editor", password=EDITOR_PASSWORD)
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()
    rt.db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Launch Debian's chromium headless (Playwright drives it; nothing is downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """Return a fresh browser tab (its own cookies) that fails the test on any page error."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        # A CSP refusal means something tried to run that the console never sends.
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(message.text)

    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", on_console)
    yield tab
    context.close()
    assert not errors, f"errors in the page: {errors}"


def log_in(page: Any, email: str = DEMO_STAFF_EMAIL, password: str = DEMO_STAFF_PASSWORD) -> None:
    """Log in through the form."""
    page.goto("/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/console/queues")


@pytest.fixture
def artifacts() -> Path:
    """Return the directory screenshots are written to (ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
