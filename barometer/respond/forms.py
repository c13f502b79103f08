"""The survey form, built at runtime from a questionnaire definition."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice

from surveys.schema import NOT_APPLICABLE, Question, choices_for

from .services import SurveyContext


def _options(q: Question, lang: str, areas) -> list[tuple[str, str]]:
    """(value, label) of each answer a resident can pick, in display order."""
    if q.type == "scale":
        options = [(str(p.value), p.label.get(lang)) for p in q.scale.points]
        return options + [(NOT_APPLICABLE, _("Non concerné"))] if q.not_applicable else options
    if q.type == "nps":
        return [(str(i), str(i)) for i in range(11)]
    if q.type == "yesno":
        return [("1", _("Oui")), ("0", _("Non"))]
    return [(c.code, c.label.get(lang)) for c in choices_for(q, areas)]


def _field(q: Question, lang: str, areas):
    """The one mapping from question type to form field."""
    label = q.label.get(lang)
    if q.type == "text":
        return TextAreaField(label)
    # Answers are judged by QuestionnaireDef.clean, not by the field.
    choices = [SelectChoice(value, text) for value, text in _options(q, lang, areas)]
    if q.type == "multiple":
        return SelectMultipleField(label, choices=choices, validate_choice=False)
    return RadioField(label, choices=choices, validate_choice=False)


def condition_label(context: SurveyContext, q: Question, lang: str) -> str:
    """The answer(s) a follow-up question depends on, as the resident saw them."""
    target = context.questionnaire.question(q.show_if.question)
    labels = dict(_options(target, lang, context.areas))
    return " / ".join(labels.get(str(v), str(v)) for v in q.show_if.values)


def error_message(code: str, params: dict) -> str:
    """Word a validation error of `QuestionnaireDef.clean` in the current language."""
    if code == "required":
        return _("Veuillez répondre à cette question.")
    if code == "out_of_range":
        return _("Choisissez une valeur entre %(low)s et %(high)s.", **params)
    if code == "too_long":
        return _("Votre texte dépasse %(max)s caractères : raccourcissez-le.", **params)
    if code == "too_many":
        return _("Choisissez au plus %(max)s réponses.", **params)
    if code == "unknown_choice":
        return _("Choisissez une des réponses proposées.")
    return _("Cette réponse n'est pas valide.")


class SurveyFormBase(FlaskForm):
    """The survey as a page: one field per question, holding what the resident typed.

    Answers are judged by the definition (`services.take_submission`), so the form only
    carries the answers back to the page with the errors worded for the resident.
    """

    class Meta:
        csrf = False  # no session: take_submission checks the origin and the signed token

    token = HiddenField()
    channel = HiddenField()

    def show_errors(self, errors) -> None:
        """Put each answer error, in the resident's language, on its field."""
        for key, (code, params) in errors.items():
            self[key].errors = [error_message(code, params)]


_classes: dict[tuple, type] = {}


def survey_form_class(context: SurveyContext, lang: str) -> type[SurveyFormBase]:
    """A form class for one questionnaire version, language and list of areas."""
    # Parsed questionnaires are kept for good (services._questionnaire), so identity is stable.
    key = (id(context.questionnaire), lang, context.areas)
    cls = _classes.get(key)
    if cls is None:
        fields = {q.key: _field(q, lang, context.areas) for q in context.questionnaire.questions}
        cls = type("SurveyForm", (SurveyFormBase,), fields)
        _classes[key] = cls
    return cls


def survey_form(context: SurveyContext, lang: str, formdata=None) -> SurveyFormBase:
    """The survey form, blank or holding what a resident sent (`request.form`)."""
    return survey_form_class(context, lang)(formdata=formdata)
