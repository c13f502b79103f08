"""Small helpers for tests that drive the survey through HTTP."""

import re
from datetime import UTC, datetime
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


#: The second organisation `add_neighbour` makes, and its director's e-mail.
NEIGHBOUR = "communaute-voisine"
NEIGHBOUR_DIRECTOR = "dgs@voisine.invalid"


def add_neighbour(app, password: str) -> int:
    """A second organisation beside the demo commune (which must be loaded with its
    budgets), for comparisons across organisations: a pool of the demo pool's policy (40
    of 60 users satisfied, 50 € per user) and a library of the demo library's policy (12
    responses, 30 € per user), with budgets and responses in the demo's last budget year,
    and a director (`NEIGHBOUR_DIRECTOR`, ``password``). Returns that year."""
    from barometer.models import Allocation, Organisation, OrganisationKind, Role, Service, User
    from barometer.respond.services import new_token
    from barometer.storage import store_responses

    with app.app_context():
        demo_services = {s.slug: s for s in db.session.execute(select(Service)).scalars()}
        year = db.session.execute(select(func.max(Allocation.year))).scalar_one()
        org = Organisation(slug=NEIGHBOUR, name="Communauté voisine", kind=OrganisationKind.epci, areas=[])
        db.session.add(org)
        db.session.flush()
        for slug, model, budget, volume in (
            ("piscine-voisine", "piscine", 500_000, 10_000),
            ("mediatheque-voisine", "mediatheque", 90_000, 3_000),
        ):
            like = demo_services[model]
            service = Service(
                slug=slug,
                name=f"{like.name} (voisine)",
                organisation_id=org.id,
                policy_id=like.policy_id,
                questionnaire_id=like.questionnaire_id,
            )
            db.session.add(service)
            db.session.flush()
            db.session.add(Allocation(service_id=service.id, year=year, budget_eur=budget, staff_fte=5, volume=volume))
        director = User(email=NEIGHBOUR_DIRECTOR, role=Role.director, organisation_id=org.id)
        director.set_password(password)
        db.session.add(director)
        db.session.commit()
    # Dated in the year steered, before now.
    when = min(datetime.now(UTC), datetime(year, 12, 31, tzinfo=UTC)).replace(minute=0, second=0, microsecond=0)
    for slug, scores in (("piscine-voisine", [5, 4] * 20 + [2] * 20), ("mediatheque-voisine", [4] * 12)):
        answers = [{"overall": str(o), "courtesy": str(o), "waiting_time": "3"} for o in scores]
        subs = [valid_submission(app, slug, new_token(), a, submitted_at=when) for a in answers]
        with app.app_context():
            store_responses(subs)
    return year
