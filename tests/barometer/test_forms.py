"""The survey form and the judging of a submission, tested directly."""

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from barometer.extensions import db
from barometer.models import Response
from barometer.respond.forms import survey_form
from barometer.respond.services import _signer, form_token, get_survey, new_token, take_submission, token_of


def judge(app, data, lang="fr"):
    """take_submission on `data`, then the form shown again."""
    sent = MultiDict(data)
    with app.test_request_context(f"/s/piscine?lang={lang}", method="POST", data=sent):
        context = get_survey("piscine")
        outcome = take_submission(context, sent)
        form = survey_form(context, lang, sent)
        form.show_errors(outcome.errors)
        return outcome, form


def test_one_field_per_question_in_definition_order(surveys):
    with surveys.test_request_context("/s/piscine"):
        context = get_survey("piscine")
        form = survey_form(context, "fr")
        keys = [q.key for q in context.questionnaire.questions]
        assert [f.name for f in form if f.name in keys] == keys
        assert form["courtesy"].type == "RadioField"
        assert form["important_attributes"].type == "SelectMultipleField"
        assert form["comment"].type == "TextAreaField"
        assert [c.label for c in form["courtesy"].choices][-1] == "Non concerné"


def test_valid_answers_are_cleaned_and_stored(surveys):
    with surveys.test_request_context():
        token = form_token(get_survey("piscine"))
    data = [
        ("overall", "5"),
        ("courtesy", "na"),
        ("important_attributes", "ease"),
        ("important_attributes", "clarity"),
        ("crowding", "1"),
        ("crowding_time", "lunch"),
        ("token", token),
    ]
    outcome, form = judge(surveys, data)
    assert outcome.stored and outcome.problem is None and outcome.errors == {}
    assert form["important_attributes"].data == ["ease", "clarity"]  # the page keeps what was typed


def test_errors_land_on_their_fields_in_the_resident_language(surveys):
    outcome, form = judge(surveys, [("courtesy", "9"), ("area", "mars"), ("comment", "Bien")], lang="en")
    assert not outcome.stored
    assert form["overall"].errors == ["Please answer this question."]
    assert form["courtesy"].errors == ["Choose a value between 1 and 5."]
    assert form["area"].errors == ["Choose one of the answers offered."]
    assert form["comment"].errors == () and form["comment"].data == "Bien"
    assert form["courtesy"].data == "9"


def test_problems_are_named(surveys):
    with surveys.test_request_context():
        token = form_token(get_survey("piscine"))
    assert judge(surveys, [("overall", "4"), ("website", "spam")])[0].problem == "honeypot"
    assert judge(surveys, [("overall", "4"), ("token", "forged")])[0].problem == "token"
    # A response token alone, unsigned, is not a form's token: a client cannot make its own.
    assert judge(surveys, [("overall", "4"), ("token", new_token())])[0].problem == "token"
    # Nor is another service's form token.
    with surveys.test_request_context():
        elsewhere = form_token(get_survey("mediatheque"))
    assert judge(surveys, [("overall", "4"), ("token", elsewhere)])[0].problem == "token"
    # Nor a token this site signed without the service and version its form showed,
    # or without its site (signed before tokens named it).
    with surveys.test_request_context():
        context = get_survey("piscine")
        versionless = _signer().sign(new_token()).decode()
        siteless = _signer().sign(f"{context.service_id}:{context.version_id}:{new_token()}").decode()
    assert judge(surveys, [("overall", "4"), ("token", versionless)])[0].problem == "token"
    assert judge(surveys, [("overall", "4"), ("token", siteless)])[0].problem == "token"
    with surveys.test_request_context("/s/piscine", method="POST"):
        outcome = take_submission(
            get_survey("piscine"), MultiDict([("overall", "4"), ("token", token)]), cross_site=True
        )
    assert outcome.problem == "cross_site" and not outcome.stored


def test_a_form_token_carries_a_response_token_and_no_time_is_stored(surveys):
    with surveys.test_request_context():
        context = get_survey("piscine")
        token = form_token(context)
        carried = token_of(token)
    inner = carried.response
    assert (carried.service_id, carried.site_id, carried.version_id) == (context.service_id, None, context.version_id)
    assert len(inner) == 22 and token.startswith(f"{context.service_id}::{context.version_id}:{inner}.")
    outcome, _ = judge(surveys, [("overall", "4"), ("token", token)])
    assert outcome.stored
    with surveys.app_context():
        assert db.session.execute(select(Response.token)).scalars().all() == [inner]
