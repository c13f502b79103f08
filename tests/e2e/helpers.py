"""Small helpers shared by the browser tests."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from barometer.extensions import db
from barometer.models import Response, Site
from tests.helpers import count_rows


def option(page, input_id: str):
    """The `<label class="opt">` around the radio or checkbox with this id."""
    return page.locator(f"label.opt:has(#{input_id})")


def tap_options(page, *input_ids: str) -> None:
    """Tap each answer's label with a finger, as a resident would."""
    for input_id in input_ids:
        option(page, input_id).tap()


def submit(page) -> None:
    """Tap the submit button and wait for the page that answers the POST."""
    with page.expect_navigation():
        page.locator("#submit").tap()


def stored_response(app) -> tuple[dict, set[tuple]]:
    """The only stored response: its own columns, and its answers as (key, value, choice, text)."""
    with app.app_context():
        response = db.session.execute(select(Response)).scalar_one()
        columns = {
            "site": response.site_id and db.session.get(Site, response.site_id).code,
            "channel": str(response.channel),
            "age_band": response.age_band,
            "sex": response.sex,
            "area": response.area,
            "frequency": response.frequency,
        }
        answers = {(a.question_key, a.value, a.choice, a.text) for a in response.answers}
        return columns, answers


def submit_and_read_back(page, app, thanks: str = "Merci !") -> tuple[dict, set[tuple]]:
    """Submit, see the thank-you page, and read back the one response this stored."""
    submit(page)
    expect(page.locator("h1")).to_have_text(thanks)
    assert count_rows(app) == 1
    return stored_response(app)
