"""The survey form, built from the definition, validated directly."""

from werkzeug.datastructures import MultiDict

from barometer.respond.forms import survey_form
from barometer.respond.services import get_survey
from surveys.schema import NOT_APPLICABLE


def validate(app, data, lang="fr"):
    with app.test_request_context(f"/s/piscine?lang={lang}", method="POST", data=MultiDict(data)):
        form = survey_form(get_survey("piscine"), lang, meta={"csrf": False})
        return form.validate(), form


def test_one_field_per_question_in_definition_order(surveys):
    with surveys.test_request_context("/s/piscine"):
        context = get_survey("piscine")
        form = survey_form(context, "fr", meta={"csrf": False})
        keys = [q.key for q in context.questionnaire.questions]
        assert [f.name for f in form if f.name in keys] == keys
        assert form["courtesy"].type == "RadioField"
        assert form["important_attributes"].type == "SelectMultipleField"
        assert form["comment"].type == "TextAreaField"
        assert [c.label for c in form["courtesy"].choices][-1] == "Non concerné"


def test_valid_answers_are_cleaned(surveys):
    ok, form = validate(
        surveys,
        [
            ("overall", "5"),
            ("courtesy", "na"),
            ("important_attributes", "ease"),
            ("important_attributes", "clarity"),
            ("crowding", "1"),
            ("crowding_time", "lunch"),
        ],
    )
    assert ok
    assert form.answers == {
        "overall": 5,
        "courtesy": NOT_APPLICABLE,
        "important_attributes": ("clarity", "ease"),
        "crowding": 1,
        "crowding_time": "lunch",
    }


def test_errors_land_on_their_fields_in_the_resident_language(surveys):
    ok, form = validate(surveys, [("courtesy", "9"), ("area", "mars")], lang="en")
    assert not ok
    assert form["overall"].errors == ["Please answer this question."]
    assert form["courtesy"].errors == ["Choose a value between 1 and 5."]
    assert form["area"].errors == ["Choose one of the answers offered."]
    assert form["comment"].errors == ()
