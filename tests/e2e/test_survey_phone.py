"""A resident answers the survey on a phone, with a finger, with and without JavaScript."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import count_rows

from .helpers import option, submit, submit_and_read_back, tap_options

pytestmark = pytest.mark.e2e

CONDITION = "Si vous avez répondu « Oui » à la question précédente."


def test_a_resident_fills_the_whole_survey_by_touch_and_it_is_stored(open_phone, surveys):
    """Every kind of question answered by tapping; the follow-up appears after "Oui"; one response stored."""
    page = open_phone("/s/piscine")
    follow_up = page.locator("#q-crowding_time")
    expect(follow_up).to_be_hidden()  # JavaScript hides it until "Oui" is chosen

    tap_options(page, "overall-3", "courtesy-4", "waiting_time-1", "clarity-5", "water_cleanliness-4")
    tap_options(page, "important_attributes-1", "important_attributes-3", "recommend-8")
    tap_options(page, "crowding-0")  # "Oui"
    expect(page.locator("#crowding-0")).to_be_checked()
    expect(follow_up).to_be_visible()
    expect(follow_up.locator(".cond")).to_be_hidden()  # the sentence is for browsers without JavaScript
    tap_options(page, "crowding_time-2")  # "En soirée"

    comment = page.locator("#comment")
    comment.tap()
    comment.press_sequentially("Eau un peu froide le soir")
    expect(page.locator("#area-1")).to_have_value("nord")  # "Quartier Nord", from the organisation's areas
    tap_options(page, "age_band-1", "sex-0", "area-1", "frequency-2")
    for checked in (
        "overall-3",
        "courtesy-4",
        "clarity-5",
        "important_attributes-1",
        "important_attributes-3",
        "crowding_time-2",
        "age_band-1",
        "sex-0",
        "area-1",
        "frequency-2",
    ):
        expect(page.locator(f"#{checked}")).to_be_checked()

    columns, answers = submit_and_read_back(page, surveys)
    assert columns == {
        "site": None,
        "channel": "link",
        "age_band": "a30_44",
        "sex": "f",
        "area": "nord",
        "frequency": "regular",
    }
    assert answers == {
        ("overall", 4.0, None, None),
        ("courtesy", 5.0, None, None),
        ("waiting_time", 2.0, None, None),
        ("clarity", None, "na", None),
        ("water_cleanliness", 5.0, None, None),
        ("important_attributes", None, "waiting_time", None),
        ("important_attributes", None, "ease", None),
        ("recommend", 8.0, None, None),
        ("crowding", 1.0, None, None),
        ("crowding_time", None, "evening", None),
        ("comment", None, None, "Eau un peu froide le soir"),
    }


def test_answering_no_hides_the_follow_up_again(open_phone):
    """With JavaScript, the follow-up follows the answer it depends on: shown for "Oui", hidden for "Non"."""
    page = open_phone("/s/piscine")
    follow_up = page.locator("#q-crowding_time")
    tap_options(page, "crowding-0")
    expect(follow_up).to_be_visible()
    tap_options(page, "crowding-1")
    expect(follow_up).to_be_hidden()


@pytest.mark.parametrize("mistake", ["comment-too-long", "overall-missing"])
def test_an_error_keeps_every_answer_and_the_corrected_form_is_stored_once(open_phone, surveys, mistake):
    """A refused submission shows a focused error summary linking to the field and keeps the answers."""
    page = open_phone("/s/piscine")
    tap_options(
        page, "courtesy-4", "waiting_time-1", "important_attributes-2", "crowding-0", "crowding_time-0", "sex-1"
    )
    if mistake == "comment-too-long":
        tap_options(page, "overall-3")
        # The textarea's maxlength stops typing at 1000; the server must still refuse more.
        page.locator("#comment").evaluate("el => el.removeAttribute('maxlength')")
        text, field = "x" * 1001, "#comment"
    else:
        text, field = "Bassin agréable", "#overall-0"
    page.locator("#comment").fill(text)
    expect(page.locator("#comment")).to_have_value(text)

    submit(page)

    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_be_focused()
    link = summary.locator(f'a[href="{field}"]')
    expect(link).to_have_count(1)
    if field == "#comment":
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
    link.tap()
    expect(page).to_have_url(page.url.split("#")[0] + field)
    expect(page.locator(field)).to_be_focused()
    for kept in ("courtesy-4", "waiting_time-1", "important_attributes-2", "crowding-0", "crowding_time-0", "sex-1"):
        expect(page.locator(f"#{kept}")).to_be_checked()
    expect(page.locator("#q-crowding_time")).to_be_visible()
    expect(page.locator("#comment")).to_have_value(text)
    if mistake == "comment-too-long":
        expect(page.locator("#overall-3")).to_be_checked()
    assert count_rows(surveys) == 0

    if mistake == "comment-too-long":
        page.locator("#comment").fill("Bassin agréable")
    else:
        tap_options(page, "overall-3")
    columns, answers = submit_and_read_back(page, surveys)
    assert columns["sex"] == "m"
    assert answers == {
        ("overall", 4.0, None, None),
        ("courtesy", 5.0, None, None),
        ("waiting_time", 2.0, None, None),
        ("important_attributes", None, "clarity", None),
        ("crowding", 1.0, None, None),
        ("crowding_time", None, "morning", None),
        ("comment", None, None, "Bassin agréable"),
    }


def test_without_javascript_the_follow_up_is_shown_with_its_condition_and_the_survey_works(open_phone, surveys):
    """No JavaScript: the follow-up and the sentence saying when to answer it are shown; submission works."""
    page = open_phone("/s/piscine/bassin-nord", javascript=False)
    assert page.evaluate("() => document.querySelector('#q-crowding_time').hidden") is False
    follow_up = page.locator("#q-crowding_time")
    expect(follow_up).to_be_visible()
    expect(follow_up.locator(".cond")).to_be_visible()
    expect(follow_up.locator(".cond")).to_have_text(CONDITION)

    tap_options(page, "overall-1", "ease-2", "crowding-0", "crowding_time-3")
    expect(page.locator("#crowding_time-3")).to_be_checked()
    page.locator("#comment").fill("Sans JavaScript")
    columns, answers = submit_and_read_back(page, surveys)
    assert columns["site"] == "bassin-nord"
    assert answers == {
        ("overall", 2.0, None, None),
        ("ease", 3.0, None, None),
        ("crowding", 1.0, None, None),
        ("crowding_time", None, "weekend", None),
        ("comment", None, None, "Sans JavaScript"),
    }


def test_without_javascript_an_error_keeps_the_answers(open_phone, surveys):
    """No JavaScript: a submission without the required answer shows the summary and keeps the others."""
    page = open_phone("/s/etat-civil", javascript=False)
    tap_options(page, "courtesy-2", "frequency-0")
    submit(page)

    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.locator('#error-summary a[href="#overall-0"]')).to_have_count(1)
    expect(page.locator("#courtesy-2")).to_be_checked()
    expect(page.locator("#frequency-0")).to_be_checked()
    assert count_rows(surveys) == 0

    tap_options(page, "overall-4")
    submit_and_read_back(page, surveys)


def test_the_survey_is_in_english_with_lang_en(open_phone, surveys):
    """?lang=en gives the English survey, and its submission is thanked in English."""
    page = open_phone("/s/piscine?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#submit")).to_have_text("Send my opinion")
    expect(option(page, "crowding-0")).to_contain_text("Yes")
    tap_options(page, "overall-4")
    submit_and_read_back(page, surveys, thanks="Thank you!")
