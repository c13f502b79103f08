"""Helpers available in every template."""

from flask_babel import gettext as _
from markupsafe import Markup


def form_error_items(form) -> list[tuple[str, str]]:
    """(link, message) pairs for the error summary at the top of a staff form."""
    items = [
        (f"#{f.id}", _("%(question)s — %(problem)s", question=f.label.text, problem=f.errors[0]))
        for f in form
        if f.errors and f.type != "CSRFTokenField"
    ]
    if getattr(form, "csrf_token", None) is not None and form.csrf_token.errors:
        first = next((f for f in form if f.type not in ("CSRFTokenField", "HiddenField")), None)
        items.append((f"#{first.id}" if first else "#main", _("Le formulaire a expiré : envoyez-le à nouveau.")))
    return items


def in_french(text: str, lang: str):
    """A name that exists only in French, marked as such inside a page in another language
    (WCAG 3.1.2, language of parts); escaped like any other value."""
    return text if lang == "fr" else Markup('<span lang="fr">{}</span>').format(text)
