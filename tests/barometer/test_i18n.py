"""English is complete: every interface text of the code and templates is translated."""

import importlib
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask_babel import LazyString

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "barometer" / "translations" / "en" / "LC_MESSAGES" / "messages.po"


def _source_messages() -> set[str]:
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found = set()
    for folder, method in (("barometer", "python"), ("templates", "jinja2")):
        for _, _, message, _, _ in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py" if method == "python" else "**.html", method)],
            keywords=keywords,
            directory_filter=lambda path: Path(path).name != "__pycache__",
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_interface_text_has_an_english_translation():
    with CATALOGUE.open("rb") as fh:
        catalogue = read_po(fh)
    # A message with a plural form is known by its singular, and translated in every form.
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalogue
        if m.id and m.string and all(m.string if isinstance(m.string, tuple) else [m.string]) and not m.fuzzy
    }
    source = _source_messages()
    assert len(source) > 60
    assert sorted(source - translated) == []


def _form_classes():
    """Every form class the app's blueprints define (`barometer/<blueprint>/forms.py`)."""
    from flask_wtf import FlaskForm

    for path in sorted((ROOT / "barometer").glob("*/forms.py")):
        module = importlib.import_module(f"barometer.{path.parent.name}.forms")
        yield from (
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, FlaskForm) and value.__module__ == module.__name__
        )


def test_no_form_validator_falls_back_on_an_english_message():
    """WTForms' own messages are English only (its catalogues are not loaded): each
    validator of a form says its problem itself, in French, translated by Babel."""
    from wtforms.fields.core import UnboundField
    from wtforms.validators import Optional

    checked = []
    for form in _form_classes():
        for name, field in vars(form).items():
            if isinstance(field, UnboundField):
                for validator in field.kwargs.get("validators", ()):
                    if isinstance(validator, Optional):  # ends the chain, says nothing
                        continue
                    checked.append((form.__name__, name, type(validator).__name__))
                    assert isinstance(validator.message, LazyString), checked[-1]
    assert ("LoginForm", "email", "Length") in checked
