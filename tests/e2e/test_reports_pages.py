"""A manager in Chromium: sign in, read the home and a report, change the grain, download
the tables, the responses and the PDF; axe-core finds no WCAG 2.1 A/AA violation on the
home and the report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from barometer.extensions import db
from barometer.models import Role, Service, User
from barometer.reports import services as report_services
from barometer.respond.services import new_token
from barometer.storage import store_responses
from tests.helpers import valid_submission

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


@pytest.fixture
def manager(surveys):
    """A manager of the pool, whose service has two months of answers and comments."""
    report_services.clear_caches()
    with surveys.app_context():
        user = User(email="piscine@example.fr", role=Role.manager)
        user.set_password(PASSWORD)
        user.services = list(db.session.execute(select(Service).where(Service.slug == "piscine")).scalars())
        db.session.add(user)
        db.session.commit()
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=20)).replace(hour=10)
    for months_back, overall in ((0, "4"), (1, "3")):
        when = last_month - timedelta(days=31 * months_back)
        answers = {"overall": overall, "courtesy": "5", "waiting_time": "3", "comment": "Bassin <propre>"}
        base = valid_submission(surveys, "piscine", "", answers, submitted_at=when)
        with surveys.app_context():
            store_responses([replace(base, token=new_token()) for _ in range(40)])
    yield surveys
    report_services.clear_caches()


@pytest.fixture
def signed_in_page(signed_in, manager):
    """The pool's manager signed in, on the reports' home, on a desktop or a phone."""
    return lambda viewport: signed_in(
        "piscine@example.fr", PASSWORD, "/rapports/", timeout=60_000, accept_downloads=True, **VIEWPORTS[viewport]
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_manager_reads_the_home_and_the_report_without_axe_violations(
    signed_in_page, assert_no_axe_violations, viewport
):
    page = signed_in_page(viewport)
    expect(page.locator("h1")).to_have_text("Vos services")
    expect(page.locator("table.home")).to_contain_text("Piscine municipale")
    assert_no_axe_violations(page, f"the manager's home ({viewport})")

    page.click("a:has-text('rapport')")
    expect(page.locator("h1")).to_contain_text("Piscine municipale")
    expect(page.locator("svg.chart[role=img]").first).to_be_visible()
    expect(page.locator("#h-comments ~ ol blockquote").first).to_have_text("Bassin <propre>")
    assert_no_axe_violations(page, f"the pool's report ({viewport})")

    page.select_option("#grain", "quarter")
    page.click("form.settings button[type=submit]")
    expect(page.locator("#h-headline")).to_contain_text("En bref : T")
    assert_no_axe_violations(page, f"the pool's report by quarter ({viewport})")

    downloads = {
        "a[href*='/tableaux/tendance.csv']": "piscine-tendance-",
        "a[href*='/tableaux/criteres.xlsx']": "piscine-criteres-",
        "a[href*='/reponses.csv']:not([href*='comments'])": "piscine-reponses-",
        "a[href*='/reponses.xlsx'][href*='comments=1']": "piscine-reponses-",
        "a[href*='/rapport.pdf']": "piscine-rapport-",
    }
    for link, name in downloads.items():
        with page.expect_download() as download:
            page.click(link)
        assert download.value.suggested_filename.startswith(name), link
        assert download.value.failure() is None, link


def test_the_report_does_not_scroll_sideways_on_a_phone(signed_in_page):
    page = signed_in_page("phone")
    page.click("a:has-text('rapport')")
    expect(page.locator("h1")).to_contain_text("Piscine municipale")  # the report, not the home
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the report is {width} CSS px wide on a 390 px phone"
