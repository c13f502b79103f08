"""Small helpers for tests that drive the survey through HTTP."""

import re
from pathlib import Path

import yaml
from sqlalchemy import func, select

from barometer.extensions import db
from barometer.models import Response
from barometer.respond.services import get_survey
from barometer.storage import Submission

#: Every question of the pool's survey answered, as a form sends them.
VALID = {
    "overall": "4",
    "courtesy": "5",
    "waiting_time": "2",
    "clarity": "na",
    "recommend": "8",
    "important_attributes": ["waiting_time", "ease"],
    "comment": "Écrivez-moi : marie.curie@example.fr ou 06 11 22 33 44",
    "crowding": "1",
    "crowding_time": "evening",
    "age_band": "a30_44",
    "sex": "f",
    "area": "nord",
    "frequency": "regular",
}


def form_tokens(html: str) -> dict[str, str]:
    """The hidden one-time token of a rendered survey page, as form data."""
    return {"token": re.search(r'name="token" value="([^"]*)"', html).group(1)}


def checked(html: str, name: str, value: str) -> bool:
    """Whether the page shows `value` ticked for question `name`."""
    return re.search(rf'name="{name}" id="{name}-\d+" value="{value}" checked', html) is not None


def errors(html: str) -> list[str]:
    """The error messages shown next to fields."""
    return re.findall(r'<p class="error" id="[^"]+">([^<]+)</p>', html)


def count_rows(app, model=Response) -> int:
    """How many rows the table of `model` holds."""
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def open_form(client, url: str = "/s/piscine", **headers) -> tuple[str, dict[str, str]]:
    """Open a survey as a resident would: its page and the form's tokens."""
    page = client.get(url, headers=headers)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html, form_tokens(html)


def edit_yaml(path: Path, change) -> None:
    """Rewrite a definition file after `change(document)` edits it in place."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def question_of(doc: dict, key: str) -> dict:
    """The question `key` of a questionnaire document."""
    return next(q for q in doc["questions"] if q["key"] == key)


def service_of(doc: dict, slug: str) -> dict:
    """The service `slug` of a services document."""
    return next(s for s in doc["services"] if s["slug"] == slug)


def valid_submission(app, slug: str, token: str, answers: dict | None = None, **fields) -> Submission:
    """A valid response to a service's survey, ready to store: `answers` as a form sends
    them (by default overall 5 and courtesy 4), `fields` to set on the Submission."""
    with app.app_context():
        context = get_survey(slug)
        cleaned, errors = context.questionnaire.clean(answers or {"overall": "5", "courtesy": "4"}, areas=context.areas)
    assert errors == {}
    return Submission(
        **{
            "service_id": context.service_id,
            "version_id": context.version_id,
            "token": token,
            "questionnaire": context.questionnaire,
            "answers": cleaned,
            **fields,
        }
    )
