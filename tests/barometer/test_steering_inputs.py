"""The director's inputs in the browser: the budgets and the strategic framework edited
in place or imported from a file, checked whole, within the director's organisation,
and seen at once by the steering pages."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal

import pytest
from babel.numbers import format_decimal
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from barometer import demo
from barometer.extensions import db
from barometer.loader import load_surveys
from barometer.models import (
    Allocation,
    Organisation,
    OrganisationKind,
    Policy,
    Priority,
    Questionnaire,
    Role,
    Service,
    User,
)
from barometer.steering.services import clear_cache
from surveys.schema import DEFAULT_ROOT

PASSWORD = "un mot de passe assez long"
LAST_YEAR = 2025
#: The other organisation: a pool (its policy shared with the demo commune's pool) and
#: a school (a policy the demo commune has no service in).
OTHER_POOL, OTHER_SCHOOL = "piscine-voisine", "ecole-voisine"
OTHER_BUDGET = Decimal("777777.00")


@pytest.fixture
def app(app_factory):
    """The demo commune's services with two years of budgets and its framework, another
    organisation with its own budget, and an account of each role."""
    clear_cache()  # another test's database had other data under the same versions
    app = app_factory(RATELIMIT_ENABLED=False)  # several sign-ins from one address
    with app.app_context():
        load_surveys(DEFAULT_ROOT)
        demo.add_budgets(seed=1, years=2, last_year=LAST_YEAR)
        demo.add_users()
        other = Organisation(slug="voisine", name="Commune voisine", kind=OrganisationKind.commune, areas=[])
        db.session.add(other)
        db.session.flush()
        core = db.session.execute(select(Questionnaire).where(Questionnaire.key == "core")).scalar_one()
        for slug, policy in ((OTHER_POOL, "piscines"), (OTHER_SCHOOL, "ecoles")):
            policy_id = db.session.execute(select(Policy.id).where(Policy.slug == policy)).scalar_one()
            service = Service(
                slug=slug,
                name=f"Service voisin {slug}",
                organisation_id=other.id,
                policy_id=policy_id,
                questionnaire_id=core.id,
            )
            db.session.add(service)
            db.session.flush()
            db.session.add(
                Allocation(service_id=service.id, year=LAST_YEAR, budget_eur=OTHER_BUDGET, staff_fte=3, volume=900)
            )
        for user in db.session.execute(select(User)).scalars():
            user.set_password(PASSWORD)
        for user in (
            User(email="dgs@voisine.invalid", role=Role.director, organisation_id=other.id),
            User(email="admin@partout.invalid", role=Role.admin),
        ):
            user.set_password(PASSWORD)
            db.session.add(user)
        db.session.commit()
    yield app
    clear_cache()


ACCOUNTS = {
    "director": "direction@demo.invalid",
    "admin": "admin@demo.invalid",
    "admin_everywhere": "admin@partout.invalid",
    "manager": "piscine@demo.invalid",
    "director_elsewhere": "dgs@voisine.invalid",
}


def token(client, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def sign_in(app, role: str):
    client = app.test_client()
    page = client.post(
        "/connexion", data={"email": ACCOUNTS[role], "password": PASSWORD, "csrf_token": token(client, "/connexion")}
    )
    assert page.status_code == 302, role
    return client


@pytest.fixture
def director(app):
    return sign_in(app, "director")


def text_of(page) -> str:
    """A page's visible text, tags removed."""
    html = page.get_data(as_text=True)
    html = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&amp;", "&").replace("&#34;", '"')
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def form_data(page) -> dict[str, str]:
    """The fields of the page's first POST form as the browser would send them untouched."""
    html = page.get_data(as_text=True)
    form = re.search(
        r'<form method="post" action="/pilotage/(?:budgets|priorites)[^"]*" novalidate>(.*?)</form>', html, re.S
    )
    data = {}
    for name, value in re.findall(r'<input [^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(1)):
        data[name] = value.replace("&#39;", "'")
    for name, options in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', form.group(1), re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', options)
        data[name] = chosen.group(1) if chosen else ""
    for name in re.findall(r'<input [^>]*name="([^"]+)"[^>]*type="(?:text|date)"(?![^>]*value=)', form.group(1)):
        data.setdefault(name, "")
    data.pop("save", None)
    return data


def row_of(data: dict, key: str, slug: str) -> str:
    """The prefix (``rows-3``) of the row for a service or policy slug."""
    return next(
        name.removesuffix(f"-{key}") for name, value in data.items() if name.endswith(f"-{key}") and value == slug
    )


def allocations(app) -> dict[tuple[str, int], tuple]:
    with app.app_context():
        rows = db.session.execute(
            select(Service.slug, Allocation.year, Allocation.budget_eur, Allocation.staff_fte, Allocation.volume).join(
                Service, Service.id == Allocation.service_id
            )
        ).all()
    return {(slug, year): (budget, fte, volume) for slug, year, budget, fte, volume in rows}


def priorities(app) -> dict[str, tuple]:
    with app.app_context():
        rows = db.session.execute(
            select(
                Policy.slug, Priority.level, Priority.floor_eur, Priority.satisfaction_target, Priority.deadline
            ).join(Policy, Policy.id == Priority.policy_id)
        ).all()
    return {slug: tuple(values) for slug, *values in rows}


def euros(value) -> str:
    """An amount as the board writes it in French."""
    return f"{format_decimal(value, '#,##0', locale='fr')}\xa0€"


def upload(client, url: str, rows, suffix: str = ".csv", *, page: str | None = None):
    """Send a file of `rows` (the header first) through the upload form of a page (by
    default the one the form is on)."""
    if suffix == ".xlsx":
        book = Workbook()
        for row in rows:
            book.active.append(row)
        buffer = io.BytesIO()
        book.save(buffer)
        content = buffer.getvalue()
    else:
        out = io.StringIO()
        csv.writer(out, delimiter=";").writerows(rows)
        content = out.getvalue().encode("utf-8")
    data = {
        "fichier-csrf_token": token(client, page or url.rsplit("/", 1)[0]),
        "fichier-file": (io.BytesIO(content), f"budgets{suffix}"),
    }
    return client.post(url, data=data, content_type="multipart/form-data")


PRIORITY_HEADER = ["policy", "priority", "floor_eur", "target_satisfied", "deadline"]
PAGES = [
    "/pilotage/budgets",
    "/pilotage/priorites",
    "/pilotage/budgets/modele.xlsx",
    "/pilotage/budgets/modele.csv",
    "/pilotage/priorites/modele.xlsx",
    "/pilotage/priorites/modele.csv",
]


# ------------------------------------------------------------------ who may come


def test_only_directors_and_admins_reach_the_input_pages(app):
    anonymous = app.test_client()
    manager = sign_in(app, "manager")
    director = sign_in(app, "director")
    for url in PAGES:
        page = anonymous.get(url)
        assert page.status_code == 302 and page.location.startswith("/connexion"), url
        refused = manager.get(url)
        assert refused.status_code == 403, url
        text = text_of(refused)
        assert "€" not in text and "Piscine" not in text and not re.search(r"\d{4,}", text), url
        for role in ("admin", "admin_everywhere"):
            assert sign_in(app, role).get(url).status_code == 200, (role, url)
        assert director.get(url).status_code == 200, url


def test_a_manager_cannot_change_a_budget(app, director):
    data = form_data(director.get("/pilotage/budgets"))
    row = row_of(data, "service", "piscine")
    data[f"{row}-budget_eur"] = "1"
    manager = sign_in(app, "manager")
    data["csrf_token"] = token(manager, "/rapports/")
    before = allocations(app)
    assert manager.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data).status_code == 403
    rows = [["service", "year", "budget_eur", "fte", "volume"], ["piscine", LAST_YEAR, "1", "1", ""]]
    assert upload(manager, "/pilotage/budgets/import", rows, page="/rapports/").status_code == 403
    assert allocations(app) == before


# ------------------------------------------------------------------ budgets


def test_the_budgets_page_shows_the_latest_year_with_each_services_figures(app, director):
    page = director.get("/pilotage/budgets")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    budget, fte, volume = allocations(app)[("piscine", LAST_YEAR)]
    data = form_data(page)
    row = row_of(data, "service", "piscine")
    assert data[f"{row}-budget_eur"] == f"{budget.normalize():f}".replace(".", ",")
    assert data[f"{row}-fte"] == f"{fte.normalize():f}".replace(".", ",")
    assert data[f"{row}-volume"] == str(volume)
    assert f"<h1>Budgets des services {LAST_YEAR}</h1>" in html
    # Each input is named by its column and its service, for a screen reader.
    assert f'<label class="sr" for="{row}-budget_eur">Budget (€) – Piscine municipale</label>' in html
    cost = format_decimal(budget / volume, "#,##0.00", locale="fr")
    assert f"{cost} €" in text_of(page)
    # Only the demo commune's services.
    assert OTHER_POOL not in html and "Service voisin" not in html
    assert '<a href="/pilotage/budgets" aria-current="page">Budgets</a>' in html
    assert '<a href="/pilotage/priorites">Référentiel stratégique</a>' in html


def test_a_director_edits_a_budget_and_sees_it_on_the_board_and_in_scenarios(app, director):
    board = text_of(director.get("/pilotage/tableau"))  # the steering's cache is warm
    before = allocations(app)[("piscine", LAST_YEAR)]
    assert euros(before[0]) in board
    data = form_data(director.get("/pilotage/budgets"))
    row = row_of(data, "service", "piscine")
    data[f"{row}-budget_eur"] = "1 234 567,5"
    data[f"{row}-volume"] = "40000"
    page = director.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data)
    assert page.status_code == 302 and page.location == f"/pilotage/budgets?annee={LAST_YEAR}"
    after = director.get(page.location)
    assert "1 allocation enregistrée." in text_of(after)
    assert allocations(app)[("piscine", LAST_YEAR)] == (Decimal("1234567.50"), before[1], 40000)
    board = director.get("/pilotage/tableau")
    row = text_of(board)[text_of(board).index("Service : Piscine municipale") :][:300]
    assert euros(Decimal("1234567.5")) in row
    # The scenario's budgets are the new ones: the even cut takes 10 % of each.
    scenario = director.post(
        "/pilotage/scenarios",
        data={
            "saving": "10 %",
            "reinvest": "0",
            "year": str(LAST_YEAR),
            "run": "1",
            "csrf_token": token(director, "/pilotage/scenarios"),
        },
    )
    assert scenario.status_code == 200
    text = text_of(scenario)
    piscine = text[text.index("Piscine municipale", text.index("Réduction uniforme")) :][:200]
    assert euros(Decimal("1234567.5")) in piscine and euros(Decimal("1234567.5") * Decimal("0.9")) in piscine


def test_a_budget_written_by_another_process_shows_at_once(app, director):
    """The steering caches keep estimates, never budgets: a budget changed elsewhere (by
    another worker, or the command line) is on the next page."""
    assert euros(OTHER_BUDGET) not in text_of(director.get("/pilotage/tableau"))
    with app.app_context():
        service = db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one()
        allocation = db.session.execute(
            select(Allocation).where(Allocation.service_id == service.id, Allocation.year == LAST_YEAR)
        ).scalar_one()
        allocation.budget_eur = Decimal("4242424")
        db.session.commit()
    board = text_of(director.get("/pilotage/tableau"))
    assert euros(4242424) in board[board.index("Service : Piscine municipale") :][:300]


BAD_BUDGETS = [
    # (column, value typed, the message shown)
    ("budget_eur", "-5000", "montant négatif : « -5000 »"),
    ("budget_eur", "beaucoup", "valeur non numérique : « beaucoup »"),
    ("budget_eur", "", "valeur manquante"),
    (
        "budget_eur",
        "1.234,5",
        "nombre ambigu : « 1.234,5 » (écrire 1234,56 ou 1234.56, sans séparateur de milliers)",
    ),
    ("fte", "-1", "montant négatif : « -1 »"),
    ("fte", "", "valeur manquante"),
    ("volume", "12,5", "nombre entier attendu : « 12,5 »"),
    ("volume", "-3", "valeur négative : « -3 »"),
]


@pytest.mark.parametrize(("column", "value", "message"), BAD_BUDGETS)
def test_each_bad_budget_value_is_refused_with_its_message_and_nothing_changes(app, director, column, value, message):
    before = allocations(app)
    data = form_data(director.get("/pilotage/budgets"))
    good, bad = row_of(data, "service", "mediatheque"), row_of(data, "service", "piscine")
    data[f"{good}-budget_eur"] = "1000"  # a good change beside the bad one
    data[f"{bad}-{column}"] = value
    page = director.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data)
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert f'<p class="error" id="{bad}-{column}-error">{message}</p>' in html
    assert re.search(
        rf'aria-describedby="{bad}-{column}-error" aria-invalid="true" [^>]*value="{re.escape(value)}"', html
    )
    summary = html[html.index('id="error-summary"') :]
    assert f'<a href="#{bad}-{column}">Piscine municipale, ' in summary and message in summary
    assert not re.search(r"allocations? enregistrées?\.", text_of(page))
    assert allocations(app) == before


def test_bad_values_are_told_in_english_on_the_english_page(app, director):
    data = form_data(director.get("/pilotage/budgets?lang=en"))
    row = row_of(data, "service", "piscine")
    data[f"{row}-budget_eur"] = "-5"
    data[f"{row}-volume"] = "lots"
    html = director.post(f"/pilotage/budgets?annee={LAST_YEAR}&lang=en", data=data).get_data(as_text=True)
    assert "negative amount: « -5 »" in html and "not a number: « lots »" in html
    assert "montant négatif" not in html


def test_a_service_left_empty_gets_no_allocation(app, director):
    with app.app_context():
        service = db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one()
        db.session.execute(Allocation.__table__.delete().where(Allocation.service_id == service.id))
        db.session.commit()
    data = form_data(director.get("/pilotage/budgets"))
    row = row_of(data, "service", "piscine")
    assert (data[f"{row}-budget_eur"], data[f"{row}-fte"], data[f"{row}-volume"]) == ("", "", "")
    page = director.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data)
    assert page.status_code == 302
    assert "Aucune modification : rien à enregistrer." in text_of(director.get(page.location))
    assert ("piscine", LAST_YEAR) not in allocations(app)
    # A volume alone is not an allocation: its budget and staff are asked for.
    data[f"{row}-volume"] = "100"
    page = director.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data)
    assert page.status_code == 422
    assert f'<p class="error" id="{row}-budget_eur-error">valeur manquante</p>' in page.get_data(as_text=True)


def test_a_new_year_starts_from_last_years_figures_and_is_saved_only_when_asked(app, director):
    page = director.get("/pilotage/budgets")
    assert f'href="/pilotage/budgets?annee={LAST_YEAR + 1}"' in page.get_data(as_text=True)
    page = director.get(f"/pilotage/budgets?annee={LAST_YEAR + 1}")
    assert f"les chiffres de {LAST_YEAR} sont repris comme point de départ" in text_of(page)
    data = form_data(page)
    row = row_of(data, "service", "piscine")
    budget, fte, volume = allocations(app)[("piscine", LAST_YEAR)]
    assert data[f"{row}-budget_eur"] == f"{budget.normalize():f}".replace(".", ",")
    assert (LAST_YEAR + 1) not in {year for _slug, year in allocations(app)}  # nothing saved yet
    data[f"{row}-budget_eur"] = "2000000"
    page = director.post(f"/pilotage/budgets?annee={LAST_YEAR + 1}", data=data)
    assert page.status_code == 302
    with app.app_context():
        demo_services = len(
            db.session.execute(
                select(Service.id).join(Organisation).where(Organisation.slug == demo.DEMO_ORGANISATION)
            ).all()
        )
    assert f"{demo_services} allocations enregistrées." in text_of(director.get(page.location))
    saved = allocations(app)
    assert saved[("piscine", LAST_YEAR + 1)] == (Decimal("2000000.00"), fte, volume)
    assert (OTHER_POOL, LAST_YEAR + 1) not in saved
    # The new year is the one steered by default now.
    assert f"Tableau de bord des indicateurs {LAST_YEAR + 1}" in text_of(director.get("/pilotage/tableau"))


def test_a_year_that_is_not_one_is_not_found(director):
    assert director.get("/pilotage/budgets?annee=deux-mille").status_code == 404
    assert director.get("/pilotage/budgets?annee=12").status_code == 404


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(app, director):
    before = allocations(app)
    data = form_data(director.get("/pilotage/budgets"))
    data[f"{row_of(data, 'service', 'piscine')}-budget_eur"] = "1"
    del data["csrf_token"]
    assert director.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=data).status_code == 400
    page = director.post(
        "/pilotage/budgets/import",
        data={"fichier-file": (io.BytesIO(b"service;year;budget_eur;fte\npiscine;2025;1;1\n"), "b.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 400
    assert allocations(app) == before


# ------------------------------------------------------------------ another organisation


def test_a_director_of_another_organisation_neither_sees_nor_changes_ours(app, director):
    ours = form_data(director.get("/pilotage/budgets"))
    ours[f"{row_of(ours, 'service', 'piscine')}-budget_eur"] = "1"
    before = allocations(app)
    stranger = sign_in(app, "director_elsewhere")
    page = stranger.get("/pilotage/budgets")
    html = page.get_data(as_text=True)
    assert OTHER_POOL in html and "Service voisin" in html
    assert "Piscine municipale" not in html and 'value="piscine"' not in html
    data = form_data(page)
    assert {v for k, v in data.items() if k.endswith("-service")} == {OTHER_POOL, OTHER_SCHOOL}
    # Our row slipped into their form: refused whole.
    ours["csrf_token"] = data["csrf_token"]
    assert stranger.post(f"/pilotage/budgets?annee={LAST_YEAR}", data=ours).status_code == 400
    # Our service in their file: unknown to them, and nothing of the file imported.
    page = upload(
        stranger,
        "/pilotage/budgets/import",
        [
            ["service", "year", "budget_eur", "fte", "volume"],
            [OTHER_POOL, LAST_YEAR, "1", "1", ""],
            ["piscine", LAST_YEAR, "1", "1", ""],
        ],
    )
    assert page.status_code == 422
    assert "Ligne 3, colonne service : service inconnu : « piscine »" in text_of(page)
    assert allocations(app) == before
    # Their templates hold their services only.
    sheet = load_workbook(io.BytesIO(stranger.get("/pilotage/budgets/modele.xlsx").data)).active
    assert sorted(r[0] for r in sheet.iter_rows(min_row=2, values_only=True)) == [OTHER_SCHOOL, OTHER_POOL]
    assert "Piscine municipale" not in stranger.get("/pilotage/budgets/modele.csv").get_data(as_text=True)


def test_a_policy_another_organisation_shares_is_shown_but_not_changed(app, director):
    stranger = sign_in(app, "director_elsewhere")
    before = priorities(app)
    page = stranger.get("/pilotage/priorites")
    data = form_data(page)
    # Their own policy is theirs to set; the pools' is the demo commune's too.
    assert {v for k, v in data.items() if k.endswith("-policy")} == {"ecoles"}
    text = text_of(page)
    assert "Politiques communes à plusieurs collectivités" in text
    assert "Lecture publique" not in text  # a policy of ours alone
    data[f"{row_of(data, 'policy', 'ecoles')}-priority"] = "2"
    assert stranger.post("/pilotage/priorites", data={**data, "rows-9-policy": "piscines"}).status_code == 400
    page = upload(
        stranger,
        "/pilotage/priorites/import",
        [PRIORITY_HEADER, ["ecoles", 2, "", "", ""], ["piscines", 1, "", "", ""], ["lecture-publique", 1, "", "", ""]],
    )
    text = text_of(page)
    assert "Ligne 3, colonne policy : politique commune à plusieurs collectivités : « piscines »" in text
    assert "Ligne 4, colonne policy : politique inconnue : « lecture-publique »" in text
    assert priorities(app) == before
    # Their own policy is saved.
    assert stranger.post("/pilotage/priorites", data=data).status_code == 302
    assert priorities(app)["ecoles"] == (2, None, None, None)
    # The demo commune's director cannot change the pools' framework either; an account
    # that covers every organisation can.
    ours = form_data(director.get("/pilotage/priorites"))
    assert "piscines" not in ours.values() and "lecture-publique" in ours.values()
    assert (
        sign_in(app, "admin_everywhere").get("/pilotage/priorites").get_data(as_text=True).count('value="piscines"')
        == 1
    )


# ------------------------------------------------------------------ priorities


def test_a_director_sets_a_policys_framework_and_the_board_follows(app, director):
    page = director.get("/pilotage/priorites")
    assert page.status_code == 200
    data = form_data(page)
    row = row_of(data, "policy", "lecture-publique")
    level, floor, target, deadline = priorities(app)["lecture-publique"]
    assert data[f"{row}-priority"] == str(level)
    assert data[f"{row}-target"] == f"{Decimal(str(target)) * 100:f}".rstrip("0").rstrip(".").replace(".", ",")
    assert data[f"{row}-deadline"] == deadline.isoformat()
    html = page.get_data(as_text=True)
    assert f'<input autocomplete="off" id="{row}-deadline" name="{row}-deadline" type="date"' in html
    data.update(
        {
            f"{row}-priority": "3",
            f"{row}-floor_eur": "500000",
            f"{row}-target": "72,5 %",
            f"{row}-deadline": "2027-06-30",
        }
    )
    page = director.post("/pilotage/priorites", data=data)
    assert page.status_code == 302
    assert "1 priorité enregistrée." in text_of(director.get(page.location))
    assert priorities(app)["lecture-publique"] == (3, Decimal("500000.00"), 0.725, date(2027, 6, 30))
    board = text_of(director.get("/pilotage/tableau"))
    policy = board[board.index("Politique : Lecture publique") :][:300]
    assert "72\xa0%" in policy  # the target, as the board rounds it
    assert "30 juin 2027" in policy


BAD_PRIORITIES = [
    ("priority", "4", "priorité invalide : « 4 »"),
    ("priority", "", "valeur manquante"),
    ("floor_eur", "-1", "montant négatif : « -1 »"),
    ("floor_eur", "un million", "valeur non numérique : « un million »"),
    ("target", "120", "pourcentage hors de l'intervalle 0–100 : « 120 »"),
    ("target", "beaucoup", "valeur non numérique : « beaucoup »"),
    ("deadline", "31/12/2027", "date invalide : « 31/12/2027 » (format AAAA-MM-JJ attendu)"),
    ("deadline", "2027-02-30", "date invalide : « 2027-02-30 »"),
]


@pytest.mark.parametrize(("column", "value", "message"), BAD_PRIORITIES)
def test_each_bad_framework_value_is_refused_with_its_message_and_nothing_changes(
    app, director, column, value, message
):
    before = priorities(app)
    data = form_data(director.get("/pilotage/priorites"))
    good, bad = row_of(data, "policy", "musees-patrimoine"), row_of(data, "policy", "lecture-publique")
    data[f"{good}-floor_eur"] = "1"
    data[f"{bad}-{column}"] = value
    page = director.post("/pilotage/priorites", data=data)
    assert page.status_code == 422
    html = page.get_data(as_text=True).replace("&#39;", "'")
    assert re.search(rf'<p class="error" id="{bad}-{column}-error">{re.escape(message)}', html)
    assert f'<a href="#{bad}-{column}">Lecture publique' in html[html.index('id="error-summary"') :]
    assert priorities(app) == before


# ------------------------------------------------------------------ files


def test_an_upload_with_one_bad_row_imports_nothing_and_names_every_error(app, director):
    before = allocations(app)
    rows = [
        ["service", "year", "budget_eur", "fte", "volume"],
        ["piscine", LAST_YEAR, "1000", "2", "30"],
        ["mediatheque", LAST_YEAR, "-5", "2", "30"],
        ["musee", LAST_YEAR, "1000", "beaucoup", ""],
    ]
    page = upload(director, "/pilotage/budgets/import", rows)
    assert page.status_code == 422
    text = text_of(page)
    assert "Fichier refusé : rien n'a été importé" in text
    assert "2 erreurs à corriger" in text
    assert "Ligne 3, colonne budget_eur : montant négatif : « -5 »" in text
    assert "Ligne 4, colonne fte : valeur non numérique : « beaucoup »" in text
    html = page.get_data(as_text=True)
    assert '<div class="summary" role="alert" tabindex="-1" id="file-errors">' in html
    assert allocations(app) == before


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_good_upload_imports_and_the_board_shows_it(app, director, suffix):
    rows = [
        ["service", "name", "year", "budget_eur", "fte", "volume"],
        ["piscine", "Piscine municipale", LAST_YEAR, "987654", "20", "50000"],
        ["mediatheque", "Médiathèque", LAST_YEAR, "", "", ""],  # left empty: unchanged
    ]
    before = allocations(app)
    page = upload(director, "/pilotage/budgets/import", rows, suffix)
    assert page.status_code == 302
    assert "1 allocation enregistrée." in text_of(director.get(page.location))
    after = allocations(app)
    assert after[("piscine", LAST_YEAR)] == (Decimal("987654.00"), Decimal("20.00"), 50000)
    assert after[("mediatheque", LAST_YEAR)] == before[("mediatheque", LAST_YEAR)]
    board = text_of(director.get("/pilotage/tableau"))
    assert euros(987654) in board[board.index("Service : Piscine municipale") :][:300]


def test_an_upload_of_the_framework_imports_it(app, director):
    rows = [
        ["policy", "priority", "floor_eur", "target_satisfied", "deadline"],
        ["lecture-publique", 1, "", "0,8", "2028-01-31"],
    ]
    page = upload(director, "/pilotage/priorites/import", rows)
    assert page.status_code == 302
    assert priorities(app)["lecture-publique"] == (1, None, 0.8, date(2028, 1, 31))
    refused = upload(director, "/pilotage/priorites/import", [rows[0], ["lecture-publique", 1, "", "80", ""]])
    assert refused.status_code == 422
    assert "Ligne 2, colonne target_satisfied : part hors de l'intervalle 0–1 : « 80 » (80 % s'écrit 0,8)" in (
        text_of(refused)
    )


def test_an_upload_without_a_file_or_of_another_format_says_so(app, director):
    page = director.post(
        "/pilotage/budgets/import",
        data={"fichier-csrf_token": token(director, "/pilotage/budgets")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422
    assert '<a href="#fichier-file">Fichier CSV ou XLSX — Choisissez un fichier CSV ou XLSX à importer.</a>' in (
        page.get_data(as_text=True)
    )
    page = director.post(
        "/pilotage/budgets/import",
        data={"fichier-csrf_token": token(director, "/pilotage/budgets"), "fichier-file": (io.BytesIO(b"x"), "b.ods")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422
    assert "Fichier : format non reconnu (.ods) : .csv ou .xlsx attendu" in text_of(page)


def test_the_templates_hold_the_columns_and_the_current_figures(app, director):
    budget, fte, volume = allocations(app)[("piscine", LAST_YEAR)]
    page = director.get("/pilotage/budgets/modele.xlsx")
    assert page.status_code == 200 and page.mimetype.endswith("spreadsheetml.sheet")
    assert f'filename="allocations-{LAST_YEAR}.xlsx"' in page.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(page.data)).active.iter_rows(values_only=True))
    assert rows[0] == ("service", "name", "year", "budget_eur", "fte", "volume")
    piscine = next(r for r in rows if r[0] == "piscine")
    assert piscine[1:] == ("Piscine municipale", LAST_YEAR, float(budget), float(fte), volume)
    page = director.get("/pilotage/budgets/modele.csv")
    assert page.mimetype == "text/csv"
    lines = page.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "service;name;year;budget_eur;fte;volume"
    assert f"piscine;Piscine municipale;{LAST_YEAR};{budget.normalize():f};".replace(".", ",") in page.data.decode(
        "utf-8-sig"
    )
    prio = list(load_workbook(io.BytesIO(director.get("/pilotage/priorites/modele.xlsx").data)).active.values)
    assert prio[0] == ("policy", "name", "priority", "floor_eur", "target_satisfied", "deadline")
    level, floor, target, _deadline = priorities(app)["lecture-publique"]
    assert next(r for r in prio if r[0] == "lecture-publique")[2:5] == (level, float(floor), target)
    assert "piscines" not in [r[0] for r in prio]  # shared with another organisation


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_template_imports_back_as_it_is(app, director, fmt):
    before = allocations(app)
    content = director.get(f"/pilotage/budgets/modele.{fmt}").data
    page = director.post(
        "/pilotage/budgets/import",
        data={
            "fichier-csrf_token": token(director, "/pilotage/budgets"),
            "fichier-file": (io.BytesIO(content), f"modele.{fmt}"),
        },
        content_type="multipart/form-data",
    )
    assert page.status_code == 302
    assert "Aucune modification : rien à enregistrer." in text_of(director.get(page.location))
    assert allocations(app) == before


def test_the_templates_neutralise_text_a_spreadsheet_would_run(app, director):
    formula = '=HYPERLINK("http://example.org","x")'
    with app.app_context():
        db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one().name = formula
        db.session.execute(select(Policy).where(Policy.slug == "lecture-publique")).scalar_one().name = "@SUM(A1)"
        db.session.commit()
    budgets = load_workbook(io.BytesIO(director.get("/pilotage/budgets/modele.xlsx").data)).active
    assert next(r for r in budgets.values if r[0] == "piscine")[1] == "'" + formula
    assert budgets.cell(row=2, column=2).data_type == "s"
    lines = director.get("/pilotage/budgets/modele.csv").data.decode("utf-8-sig")
    assert "piscine;'=HYPERLINK" in lines.replace('"', "")
    policies = director.get("/pilotage/priorites/modele.csv").data.decode("utf-8-sig")
    assert "lecture-publique;'@SUM(A1);" in policies
    assert not [c for r in budgets.values for c in r if isinstance(c, str) and c.startswith(("=", "+", "-", "@"))]


def test_a_file_too_large_is_refused_with_the_size_allowed(app, director):
    before = allocations(app)
    rows = [["service", "year", "budget_eur", "fte", "volume"]] + [["piscine", LAST_YEAR, "1", "1", "1"]] * 6000
    page = upload(director, "/pilotage/budgets/import", rows)
    assert page.status_code == 413
    assert "Le fichier dépasse 64 Ko, la taille maximale d'un envoi : rien n'a été importé." in text_of(page)
    assert allocations(app) == before


def test_the_priority_levels_offered_are_those_the_analysis_knows():
    from analysis.redeploy import PRIORITY_LABELS
    from barometer.steering.forms import PRIORITY_CHOICES

    offered = {int(c.value): str(c.label) for c in PRIORITY_CHOICES if c.value}
    assert offered == {level: f"{level} – {label}" for level, label in PRIORITY_LABELS.items()}


def test_a_target_is_shown_as_the_percentage_typed(app, director):
    with app.app_context():
        policy = db.session.execute(select(Policy).where(Policy.slug == "lecture-publique")).scalar_one()
        db.session.execute(
            select(Priority).where(Priority.policy_id == policy.id)
        ).scalar_one().satisfaction_target = 0.29  # 0.29 × 100 is 28.999999999999996 in floating point
        db.session.commit()
    data = form_data(director.get("/pilotage/priorites"))
    assert data[f"{row_of(data, 'policy', 'lecture-publique')}-target"] == "29"
    data = form_data(director.get("/pilotage/priorites?lang=en"))
    row = row_of(data, "policy", "lecture-publique")
    data[f"{row}-target"] = "72.5"
    assert director.post("/pilotage/priorites?lang=en", data=data).status_code == 302
    assert form_data(director.get("/pilotage/priorites"))[f"{row}-target"] == "72,5"
