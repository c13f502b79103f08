"""English is complete: every interface text of the code and templates is translated."""

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

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
    translated = {m.id for m in catalogue if m.id and m.string and not m.fuzzy}
    source = _source_messages()
    assert len(source) > 60
    assert sorted(source - translated) == []
