"""WCAG 2.1 A/AA checks by axe-core, touch target sizes and reflow on a phone.

About "without JavaScript": in a context created with java_script_enabled=False,
`page.evaluate` still runs, but axe.run() never settles (timers do not fire while the
page's script execution is disabled; checked with Chromium 156), and script tags added
to the page do not run. So the no-JavaScript pages are audited in a context where
JavaScript is on but the app's own scripts (/static/js/...) are refused: the DOM is then
exactly the one a browser without JavaScript renders (follow-up shown with its condition
sentence, nothing hidden, error summary not focused), which each test asserts before
running axe.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import submit, tap_options

pytestmark = pytest.mark.e2e

LANGS = ["fr", "en"]
JS = [pytest.param(True, id="js"), pytest.param(False, id="no-js")]
THANKS = {"fr": "Merci !", "en": "Thank you!"}


def in_both_languages_with_and_without_js(test):
    """Run `test` in French and English, with the app's JavaScript and without it."""
    return pytest.mark.parametrize("js", JS)(pytest.mark.parametrize("lang", LANGS)(test))


def _audit(assert_no_axe_violations, page, what: str, lang: str, js: bool) -> None:
    assert_no_axe_violations(page, f"{what} ({lang}, {'js' if js else 'no-js'})")


def _open_survey(open_phone, lang: str, js: bool, path: str = "/s/piscine"):
    page = open_phone(f"{path}?lang={lang}", block_app_scripts=not js)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    follow_up = page.locator("#q-crowding_time")
    if js:
        expect(follow_up).to_be_hidden()
    else:  # proof that the page is the one rendered without JavaScript
        expect(follow_up.locator(".cond")).to_be_visible()
    return page


@in_both_languages_with_and_without_js
def test_the_survey_page_has_no_axe_violations(open_phone, assert_no_axe_violations, lang, js):
    """The blank survey: zero WCAG 2.1 A/AA violations."""
    page = _open_survey(open_phone, lang, js)
    _audit(assert_no_axe_violations, page, "the survey page", lang, js)


@in_both_languages_with_and_without_js
def test_the_survey_with_answers_and_revealed_follow_up_has_no_axe_violations(
    open_phone, assert_no_axe_violations, lang, js
):
    """The survey being filled in (checked answers, follow-up shown): zero violations."""
    page = _open_survey(open_phone, lang, js)
    tap_options(page, "overall-3", "courtesy-5", "important_attributes-0", "crowding-0", "crowding_time-1")
    expect(page.locator("#q-crowding_time")).to_be_visible()
    page.locator("#comment").fill("Très bien")
    _audit(assert_no_axe_violations, page, "the survey being answered", lang, js)


@in_both_languages_with_and_without_js
def test_the_survey_with_errors_has_no_axe_violations(open_phone, assert_no_axe_violations, lang, js):
    """After a refused submission (no overall answer, comment too long): zero violations."""
    page = _open_survey(open_phone, lang, js)
    tap_options(page, "courtesy-4")
    page.locator("#comment").evaluate("el => el.removeAttribute('maxlength')")
    page.locator("#comment").fill("x" * 1001)
    submit(page)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary.locator("a")).to_have_count(2)
    if js:
        expect(summary).to_be_focused()
    else:
        expect(summary).not_to_be_focused()
    _audit(assert_no_axe_violations, page, "the survey with errors", lang, js)


@in_both_languages_with_and_without_js
def test_the_thank_you_page_has_no_axe_violations(open_phone, assert_no_axe_violations, lang, js):
    """The page after a valid submission: zero violations."""
    page = _open_survey(open_phone, lang, js)
    tap_options(page, "overall-4")
    submit(page)
    expect(page.locator("h1")).to_have_text(THANKS[lang])
    _audit(assert_no_axe_violations, page, "the thank-you page", lang, js)


def _too_small(locator, name: str) -> list[str]:
    """Descriptions of the elements of `locator` whose box is under 44×44 CSS px."""
    problems = []
    for i in range(locator.count()):
        element = locator.nth(i)
        box = element.bounding_box()
        label = element.evaluate("el => (el.id || el.querySelector('input')?.id || el.textContent.trim())")
        if box is None:
            problems.append(f"{name} {label!r} is not displayed")
        elif box["width"] < 44 or box["height"] < 44:
            problems.append(f"{name} {label!r} is {box['width']:.1f}×{box['height']:.1f} CSS px")
    return problems


@pytest.mark.parametrize("with_errors", [False, True], ids=["blank", "with-errors"])
@pytest.mark.parametrize("lang", LANGS)
def test_every_touch_target_is_at_least_44_css_px(open_phone, lang, with_errors):
    """Answer labels, submit button and language switch are at least 44×44 CSS px on a phone.

    Also after a refused submission, where the questions in error get a left border and padding.
    """
    page = open_phone(f"/s/piscine?lang={lang}")
    if with_errors:
        submit(page)  # nothing answered: "overall" is in error
        expect(page.locator("#q-overall.has-error")).to_be_visible()
    tap_options(page, "crowding-0")  # shows the follow-up, so that its options are measured too
    options = page.locator("label.opt")
    assert options.count() == len(page.locator("form input[type=radio], form input[type=checkbox]").all())
    assert options.count() > 60
    language = page.locator("footer nav a")
    expect(language).to_have_count(1)
    problems = (
        _too_small(options, "answer label")
        + _too_small(page.locator("#submit"), "submit button")
        + _too_small(language, "language switch")
    )
    assert not problems, "touch targets smaller than 44×44 CSS px:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    ["/s/piscine", "/s/piscine/bassin-nord", "/s/etat-civil"],
)
@pytest.mark.parametrize("lang", LANGS)
def test_the_survey_does_not_scroll_sideways_on_a_phone(open_phone, lang, path):
    """No horizontal scrolling at 390 CSS px, on the form and on the form with errors."""
    page = open_phone(f"{path}?lang={lang}")
    if path.startswith("/s/piscine"):
        tap_options(page, "crowding-0")  # the follow-up shown too
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"{path}?lang={lang} is {width} CSS px wide on a 390 px phone"

    submit(page)  # nothing answered: the error summary and messages are shown
    expect(page.locator("#error-summary")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"{path}?lang={lang} with errors is {width} CSS px wide on a 390 px phone"
