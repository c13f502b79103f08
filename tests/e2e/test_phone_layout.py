"""The staff pages on a phone held upright (390×844): a manager's home and report, the
director's overview, scenarios and board. None scrolls the whole page sideways: a wide
table scrolls in its own box, which a keyboard reaches and a screen reader names; the
headline figures are on screen; axe-core finds no WCAG 2.1 A/AA violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from barometer.extensions import db
from barometer.models import User
from barometer.reports import services as report_services
from barometer.steering.services import clear_cache

from .conftest import PHONE

pytestmark = pytest.mark.e2e

PASSWORD = "un mot de passe assez long"
WIDTH = PHONE["viewport"]["width"]

#: The boxes that scroll sideways, and how each is offered to keyboards and screen readers.
SCROLLED_BOXES = """() => [...document.querySelectorAll('body *')]
  .filter((el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1)
  .map((el) => {
    const ids = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
    const named = ids.map((id) => document.getElementById(id)?.textContent.trim() || '').join(' ');
    return {role: el.getAttribute('role'), tabindex: el.getAttribute('tabindex'),
            name: (named || el.getAttribute('aria-label') || '').trim()};
  })"""


@pytest.fixture
def phone_as(signed_in, surveys):
    """Sign in on a phone as one of the short demo's accounts; returns the page."""
    clear_cache()
    report_services.clear_caches()
    result = surveys.test_cli_runner().invoke(args=["barometer", "demo", "--months", "2", "--per-month", "1500"])
    assert result.exit_code == 0, result.output
    with surveys.app_context():
        for email in ("direction@demo.invalid", "piscine@demo.invalid"):
            db.session.execute(select(User).where(User.email == email)).scalar_one().set_password(PASSWORD)
        db.session.commit()
    yield lambda email, landing: signed_in(email, PASSWORD, landing, **PHONE)
    clear_cache()
    report_services.clear_caches()


def assert_fits_a_phone(page, assert_no_axe_violations, what: str) -> list[dict]:
    """No sideways scroll of the page; each box that scrolls is focusable and named; no
    axe violation. Returns the boxes that scroll."""
    page.wait_for_load_state()  # the stylesheets applied, not only the heading shown
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH + 1, f"{what} is {width} px wide on a {WIDTH} px phone"
    boxes = page.evaluate(SCROLLED_BOXES)
    for box in boxes:
        assert box["role"] == "region" and box["tabindex"] == "0" and box["name"], f"{what}: {box}"
    assert_no_axe_violations(page, f"{what} on a phone")
    return boxes


def assert_on_screen(locator, what: str) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, f"{what} off screen: {box}"


def test_a_managers_home_and_report_fit_a_phone(phone_as, assert_no_axe_violations, live_server):
    page = phone_as("piscine@demo.invalid", "/rapports/")
    expect(page.locator("h1")).to_have_text("Vos services")
    boxes = assert_fits_a_phone(page, assert_no_axe_violations, "the manager's home")
    assert boxes, "the services table is wider than a phone: it should scroll in its own box"
    # The service's share of satisfied users, the home's headline, is on screen without scrolling.
    row = page.locator("table.home tbody tr").first
    expect(row.locator("th")).to_have_text("Piscine municipale")
    assert_on_screen(row.locator(".value"), "the home's share satisfied")

    page.goto(live_server + "/rapports/piscine")
    expect(page.locator("h1")).to_contain_text("Piscine municipale")
    assert_fits_a_phone(page, assert_no_axe_violations, "the report")
    headline = page.locator(".headline .value").first
    assert_on_screen(headline, "the report's headline figure")
    assert float(headline.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 16


def test_the_steering_pages_fit_a_phone(phone_as, assert_no_axe_violations, live_server):
    page = phone_as("direction@demo.invalid", "/pilotage/")
    expect(page.locator("h1")).to_contain_text("Pilotage : vue d'ensemble")
    assert_fits_a_phone(page, assert_no_axe_violations, "the overview")

    page.goto(live_server + "/pilotage/tableau")
    expect(page.locator("h1")).to_contain_text("Tableau de bord des indicateurs")
    boxes = assert_fits_a_phone(page, assert_no_axe_violations, "the board")
    assert any(b["name"].startswith("Domaines, politiques et services") for b in boxes), boxes
    # A keyboard scrolls the board's box: Tab reaches it, the arrow keys move it.
    region = page.get_by_role("region", name="Domaines, politiques et services", exact=False)
    region.focus()
    expect(region).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(el) => el.scrollLeft > 0", arg=region.element_handle())
    assert_on_screen(page.locator("#board-caption"), "the board's caption, with the table scrolled")

    page.goto(live_server + "/pilotage/scenarios")
    expect(page.locator("h1")).to_have_text("Scénarios budgétaires")
    assert_fits_a_phone(page, assert_no_axe_violations, "the scenario form")
    page.fill("#saving", "8 %")
    page.fill("#name", "Budget -8 %")
    page.click("#save")
    expect(page.locator("h1")).to_have_text("Scénario « Budget -8 % »")
    assert_fits_a_phone(page, assert_no_axe_violations, "a saved scenario")
    page.goto(live_server + "/pilotage/scenarios")
    expect(page.locator("#saved-caption")).to_be_visible()
    assert_fits_a_phone(page, assert_no_axe_violations, "the scenarios with a saved one listed")
    page.fill("#saving", "1 000 000")
    page.click("#run")
    expect(page.locator("#summary-caption")).to_be_visible()
    assert_fits_a_phone(page, assert_no_axe_violations, "the two solutions of a scenario")
