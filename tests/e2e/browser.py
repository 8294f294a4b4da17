"""Headless Debian Chromium for the UI tests, and a watch on what a page complains about.

Chromium is the Debian package at /usr/bin/chromium, driven by the `playwright`
package; `playwright install` is never needed. Every page a test opens gets a
`PageWatch` that collects console errors, uncaught exceptions and Content-Security-
Policy violations (the `securitypolicyviolation` DOM event, forwarded to Python
through an exposed binding, which works under our CSP because Playwright injects
it through the DevTools protocol, not as an inline script).

axe-core comes from npm (`frontend/node_modules/axe-core`, pinned in
frontend/package.json). `add_script_tag(path=...)` would inject it as an inline
script, which our CSP (`script-src 'self'`) rightly blocks. Instead `run_axe`
serves the file at a URL on the app's own origin through `page.route` and adds a
`<script src>` for it: the page keeps its real CSP during the audit, so axe sees the
page exactly as users do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.harness import ADMIN_PASSWORD, ADMIN_USER

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
AXE_JS = REPO / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AXE_URL_PATH = "/__test__/axe.min.js"
# Chromium logs every fetch answered with 4xx as "Failed to load resource". Our
# forms get 4xx on purpose (a validation error is a 422), so those are expected;
# a 5xx is not, unless a test says so with `PageWatch.allow_server_errors`.
FAILED_RESOURCE = re.compile(r"Failed to load resource: .* status of (\d+)")

CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (event) => {
  window.__mackuperCsp(event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline')
    + ' at ' + event.sourceFile + ':' + event.lineNumber);
});
"""


@dataclass
class PageWatch:
    problems: list[str] = field(default_factory=list)
    allow_server_errors: bool = False

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed = FAILED_RESOURCE.search(message.text)
        if failed:
            status = int(failed.group(1))
            if status < 500 or self.allow_server_errors:
                return
        self.problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def on_page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught exception: {error}")

    def on_csp(self, _source: Any, text: str) -> None:
        self.problems.append(f"CSP violation: {text}")

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser: Browser, base_url: str, **options: Any) -> tuple[Page, PageWatch]:
    """A new page in a fresh context (own cookies) with its watch attached."""
    watch = PageWatch()
    context = browser.new_context(base_url=base_url, **options)
    context.expose_binding("__mackuperCsp", watch.on_csp)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch


@pytest.fixture
def ui(chromium: Browser) -> Iterator[Any]:
    """`ui(base_url)` -> (page, watch), closed after the test."""
    pages: list[Page] = []

    def make(base_url: str, **options: Any) -> tuple[Page, PageWatch]:
        page, watch = open_page(chromium, base_url, **options)
        pages.append(page)
        return page, watch

    yield make
    for page in pages:
        page.context.close()


def log_in(
    page: Page,
    username: str = ADMIN_USER,
    password: str = ADMIN_PASSWORD,
    timeout: float | None = None,
) -> None:
    """Log in through the login form and wait for the main navigation."""
    page.goto("/login")
    # On a loaded machine a click before Alpine binds the form would submit it as a
    # plain GET that reloads the page and loses what was typed.
    page.wait_for_function(
        "() => !!document.querySelector('[x-data=loginForm]')?._x_dataStack", timeout=timeout
    )
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible(timeout=timeout)


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (WCAG 2.x A/AA)."""
    if not AXE_JS.exists():
        raise AssertionError(f"{AXE_JS} missing: run `npm ci` in frontend/")
    if not page.evaluate("typeof axe !== 'undefined'"):
        origin = re.match(r"https?://[^/]+", page.url)
        assert origin, page.url
        url = origin.group(0) + AXE_URL_PATH
        page.route(
            url,
            lambda route: route.fulfill(
                status=200, content_type="application/javascript", body=AXE_JS.read_text()
            ),
        )
        page.add_script_tag(url=url)
    result: dict[str, Any] = page.evaluate(
        """async () => await axe.run(document, {
             runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
             resultTypes: ['violations'],
           })"""
    )
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
