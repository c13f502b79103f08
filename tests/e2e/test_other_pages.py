"""Axe-core on the other pages people see: closed and unknown surveys, poster, staff pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from barometer.extensions import db
from barometer.models import Role, User

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


@pytest.fixture
def open_page(browser, live_server):
    """Open a page at any status, on a phone or a desktop viewport."""
    contexts = []

    def open_(path: str, status: int, *, phone: bool = True):
        viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
        context = browser.new_context(viewport=viewport, bypass_csp=True, locale="fr-FR")
        contexts.append(context)
        page = context.new_page()
        response = page.goto(live_server + path)
        assert response.status == status, f"GET {path} -> {response.status}"
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.mark.parametrize(
    ("path", "status", "heading"),
    [
        ("/s/archives", 410, "Cette enquête est close"),
        ("/s/archives?lang=en", 410, "This survey is closed"),
        ("/s/inconnu", 404, "Page introuvable"),
        ("/s/piscine/bassin-nord/poster", 200, "Votre avis compte !"),
        ("/connexion", 200, "Connexion"),
    ],
)
def test_pages_around_the_survey_have_no_axe_violations(open_page, assert_no_axe_violations, path, status, heading):
    page = open_page(path, status)
    assert page.locator("h1").inner_text() == heading
    assert_no_axe_violations(page, path)


def test_staff_pages_have_no_axe_violations(open_page, assert_no_axe_violations, surveys):
    with surveys.app_context():
        user = User(email="dgs@example.fr", role=Role.director)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    page = open_page("/connexion", 200, phone=False)
    page.fill("#email", "dgs@example.fr")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_no_axe_violations(page, "the login page with an error")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/rapports/")
    assert "Piscine municipale" in page.locator("table").inner_text()
    assert_no_axe_violations(page, "the services report")
