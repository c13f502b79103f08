"""Fixtures of the browser tests: one Chromium for the run, a live server and phone contexts per test.

The tests need Debian's Chromium (/usr/bin/chromium, or `chromium` on PATH) and axe-core
(node_modules/axe-core/axe.min.js, installed by `npm ci`). When either is missing the tests
are skipped, unless E2E=required, in which case they fail: CI sets it so that a broken
setup cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = "/usr/bin/chromium"
AXE_PATH = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
#: The machine has no outside network; these flags stop Chromium from trying to reach it.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A phone held upright (about an iPhone 14): 390×844 CSS px, touch, 3 device pixels per CSS px.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _chromium_path() -> str | None:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium")


def _missing_requirements() -> list[str]:
    missing = []
    if _chromium_path() is None:
        missing.append(f"Chromium not found ({CHROMIUM} nor `chromium` on PATH): install Debian's chromium package")
    if not AXE_PATH.is_file():
        missing.append(f"axe-core not found at {AXE_PATH}: run `npm ci`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package is not installed")
    return missing


@pytest.fixture(scope="session", autouse=True)
def _e2e_requirements():
    """Skip every browser test when Chromium or axe-core is missing; fail instead when E2E=required."""
    missing = _missing_requirements()
    if missing:
        reason = "end-to-end tests cannot run: " + "; ".join(missing)
        if os.environ.get("E2E") == "required":
            pytest.fail(reason + " (E2E=required)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def browser(_e2e_requirements):
    """One headless Chromium for the whole run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_chromium_path(), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_source(_e2e_requirements) -> str:
    return AXE_PATH.read_text(encoding="utf-8")


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the access log line of every request."""

    def log_request(self, *args, **kwargs):
        pass


@pytest.fixture
def live_server(surveys):
    """The app, with the project's survey definitions loaded, served on a free local port.

    Function-scoped because the test database is emptied after every test.
    """
    server = make_server("127.0.0.1", 0, surveys, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


#: A desktop screen.
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def signed_in(browser, live_server):
    """Sign in through the sign-in form in a new browser context: ``open_(email,
    password, landing, **options)`` returns the page of ``landing`` (a path), on a
    desktop unless ``options`` (Playwright's context options, ``timeout`` in ms) say
    otherwise."""
    contexts = []

    def open_(email: str, password: str, landing: str, *, timeout: int = 20_000, **options):
        context = browser.new_context(**{**DESKTOP, **options}, bypass_csp=True, locale="fr-FR")
        contexts.append(context)
        context.set_default_timeout(timeout)
        page = context.new_page()
        page.goto(f"{live_server}/connexion?next={landing}")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"**{landing}")
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def open_phone(browser, live_server):
    """Open a page of the live server on a phone; returns the Playwright page.

    `javascript=False` turns JavaScript off in the browser. `block_app_scripts=True` keeps
    JavaScript on but refuses the app's own scripts, so the DOM is the one a browser without
    JavaScript gets while Playwright can still inject and run axe-core (see test_accessibility).
    """
    contexts = []

    def open_(path: str, *, javascript: bool = True, block_app_scripts: bool = False):
        context = browser.new_context(**PHONE, java_script_enabled=javascript, bypass_csp=True, locale="fr-FR")
        contexts.append(context)
        context.set_default_timeout(10_000)
        if block_app_scripts:
            context.route("**/static/js/**", lambda route: route.abort())
        page = context.new_page()
        response = page.goto(live_server + path)
        assert response is not None and response.status == 200, f"GET {path} -> {response and response.status}"
        return page

    yield open_
    for context in contexts:
        context.close()


def _describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"]:
            lines.append(f"    target: {node['target']}")
    return "\n".join(lines)


@pytest.fixture
def assert_no_axe_violations(axe_source):
    """Inject axe-core into a page and assert zero WCAG 2.1 A/AA violations, listed if any."""

    def check(page, what: str = "") -> dict:
        page.add_script_tag(content=axe_source)
        results = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
        assert results["passes"], f"axe-core checked nothing on {what or page.url}"
        violations = results["violations"]
        assert not violations, (
            f"{len(violations)} axe-core WCAG 2.1 A/AA violation(s) on {what or page.url}:\n" + _describe(violations)
        )
        return results

    return check
