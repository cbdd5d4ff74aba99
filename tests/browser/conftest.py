"""Browser tests: the real app (web server + worker subprocesses) driven by headless Chromium.

The live app and the browser live for this package only, so no other test shares the database
with a running worker. Screenshots go to ``test-artifacts/screenshots/``; the run prints where.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.support.browser import CHROMIUM_ARGS, SCREENSHOTS, LiveApp, check_page, chromium_path

WRITTEN: list[Path] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter) -> None:
    if WRITTEN:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(WRITTEN)} screenshots written to {SCREENSHOTS}")


@pytest.fixture(scope="package")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "Debian's Chromium is missing (/usr/bin/chromium); `make browser` installs it"
        # In CI a missing browser is a broken install step, not a reason to skip the pages.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="package")
def live_app(chromium, database_url, smtp_sink, tmp_path_factory) -> Iterator[LiveApp]:
    live = LiveApp(
        database_url=database_url,
        smtp_port=smtp_sink.port,
        secret_key=TEST_SECRET_KEY,
        log_dir=tmp_path_factory.mktemp("live-app"),
        # Small paced batches, so a digest takes a few seconds and its progress can be watched.
        extra_env={"NEWSLETTER_SEND_BATCH_SIZE": "5", "NEWSLETTER_SEND_MAX_RATE": "10"},
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def app_config(app_config: dict, live_app: LiveApp) -> dict:
    # Links made in this process (tokens, emails) must point at the live server.
    app_config["PUBLIC_URL"] = live_app.url
    # The tables are emptied when ``app`` is built: the worker must not hold locks meanwhile.
    live_app.stop_worker()
    return app_config


@pytest.fixture
def app(app, live_app: LiveApp):
    """The test's app (tables emptied), with the live worker running again."""
    live_app.start_worker()
    return app


@pytest.fixture(scope="package")
def browser(chromium):
    # Playwright's sync API runs its own event loop: keep it inside this one fixture.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Visit:
    """A browser context on the live app that records what a visitor's browser did."""

    def __init__(self, browser, live: LiveApp, app) -> None:
        self.browser = browser
        self.live = live
        self.app = app
        self.contexts = []
        self.foreign_requests: list[str] = []
        self.page_errors: list[str] = []

    def new_page(self, *, locale: str = "en-GB", phone: bool = False, javascript: bool = True):
        options = {
            "base_url": self.live.url,
            "locale": locale,
            "java_script_enabled": javascript,
        }
        if phone:
            options.update(
                viewport={"width": 375, "height": 740},
                is_mobile=True,
                has_touch=True,
                device_scale_factor=2,
            )
        context = self.browser.new_context(**options)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        own = urlsplit(self.live.url).netloc
        page.on(
            "request",
            lambda request: (
                None
                if urlsplit(request.url).scheme in ("data", "blob", "about")
                or urlsplit(request.url).netloc == own
                else self.foreign_requests.append(request.url)
            ),
        )
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                self.page_errors.append(message.text)
                if message.type == "error" and "Failed to load resource" not in message.text
                else None
            ),
        )
        return page

    def screenshot(self, page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        WRITTEN.append(path)
        return path

    def tour(self, page, language: str, pages: list[tuple[str, str]], prefix: str = "") -> None:
        """Open each ``(name, path)`` of ``pages`` in ``page``: it must be in ``language`` and
        pass ``check_page``; screenshotted as ``<prefix><name>-<language>``."""
        for name, path in pages:
            page.goto(path)
            assert page.get_attribute("html", "lang") == language
            check_page(page)
            self.screenshot(page, f"{prefix}{name}-{language}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def visit(browser, live_app, app) -> Iterator[Visit]:
    visit = Visit(browser, live_app, app)
    try:
        yield visit
    finally:
        visit.close()
    assert visit.foreign_requests == [], "assets fetched from another host"
    assert visit.page_errors == [], "errors in the page (script errors, CSP violations)"
