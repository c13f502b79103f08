"""Helpers available in every template."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

#: What the survey page says when a submission was not stored, by the problem the
#: respond services name; the answers sent are on the page again, under the message.
SURVEY_NOTICES = {
    "expired": _l("Le formulaire a expiré. Vos réponses sont conservées : vérifiez-les puis envoyez à nouveau."),
    "cross_site": _l(
        "Ces réponses ont été envoyées depuis un autre site : rien n'a été enregistré. "
        "Vérifiez-les puis envoyez-les depuis cette page si elles sont bien les vôtres."
    ),
    "rate_limited": _l(
        "Trop de réponses ont été envoyées depuis cette connexion en peu de temps. "
        "Vos réponses sont conservées : patientez une minute puis envoyez à nouveau."
    ),
    "version": _l(
        "Le questionnaire a été mis à jour pendant que vous répondiez. "
        "Vos réponses sont conservées : vérifiez-les puis envoyez à nouveau."
    ),
    "unavailable": _l(
        "Votre réponse n'a pas pu être enregistrée : le service est momentanément indisponible. "
        "Vos réponses sont conservées sur cette page : envoyez à nouveau dans quelques instants."
    ),
    "token": _l("Le formulaire n'a pas pu être vérifié. Vos réponses sont conservées : envoyez à nouveau."),
}

#: Fields given as one input per option (radio buttons, or the survey's check boxes),
#: numbered ``<id>-0``, ``<id>-1``... as WTForms numbers a radio field's options.
_OPTION_FIELDS = ("RadioField", "SelectMultipleField")


def form_error_items(form, notice: str | None = None) -> list[tuple[str, str]]:
    """(link, message) pairs for the error summary at the top of a form.

    A survey's `notice` (one of `SURVEY_NOTICES`) comes first, linked to the submit
    button; then each field's first error, linked to the field's first input; then an
    expired staff form, linked to its first field.
    """
    # A notice is the translators' text, trusted like a template's own: shown as written.
    items = [("#submit", Markup(SURVEY_NOTICES[notice]))] if notice in SURVEY_NOTICES else []
    items += [
        (f"#{_first_input(f)}", _("%(question)s — %(problem)s", question=f.label.text, problem=f.errors[0]))
        for f in form
        if f.errors and f.type != "CSRFTokenField"
    ]
    if getattr(form, "csrf_token", None) is not None and form.csrf_token.errors:
        first = next((f for f in form if f.type not in ("CSRFTokenField", "HiddenField")), None)
        items.append(
            (f"#{_first_input(first)}" if first else "#main", _("Le formulaire a expiré : envoyez-le à nouveau."))
        )
    return items


def _first_input(field) -> str:
    """The id of the field's first input, where a link to the field should land."""
    return f"{field.id}-0" if field.type in _OPTION_FIELDS else field.id


def in_french(text: str, lang: str):
    """A name that exists only in French, marked as such inside a page in another language
    (WCAG 3.1.2, language of parts); escaped like any other value."""
    return text if lang == "fr" else Markup('<span lang="fr">{}</span>').format(text)
