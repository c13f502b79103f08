"""The director's steering on the demo commune: recommendations and scenarios from the
command line, and the /pilotage pages (who may see them, what they show, their exports)."""

from __future__ import annotations

import io
import json
import re
from html import unescape

import pandas as pd
import pytest
from numpy.testing import assert_allclose
from openpyxl import load_workbook
from sqlalchemy import delete, select

from analysis.cells import complete_margins
from analysis.estimates import proportion
from analysis.scales import SATISFIED
from analysis.weighting import rake
from barometer import demo
from barometer.extensions import db
from barometer.frames import responses_frame
from barometer.models import Allocation, Answer, Organisation, OrganisationKind, Response, Role, Service, User
from barometer.respond import services as respond_services
from barometer.results import population_margins, rebuild_service
from barometer.steering.services import clear_cache
from tests.conftest import _make_app, empty_tables
from tests.helpers import NEIGHBOUR, NEIGHBOUR_DIRECTOR, add_neighbour

PASSWORD = "un mot de passe assez long"


@pytest.fixture(scope="module")
def steering_app(_schema):
    """A short demo (6 months, 2,000 responses a month) with its budgets and priorities,
    the demo's accounts, and a director of another organisation."""
    clear_cache()  # another test's database had other data under the same versions
    app = _make_app(_schema, RATELIMIT_ENABLED=False)  # many sign-ins from one address
    result = app.test_cli_runner().invoke(args=["barometer", "demo", "--months", "6", "--per-month", "2000"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        other = Organisation(slug="autre-commune", name="Autre commune", kind=OrganisationKind.commune, areas=[])
        db.session.add(other)
        db.session.flush()
        for email in ("admin@demo.invalid", "direction@demo.invalid", "piscine@demo.invalid"):
            db.session.execute(select(User).where(User.email == email)).scalar_one().set_password(PASSWORD)
        stranger = User(email="dgs@autre.invalid", role=Role.director, organisation_id=other.id)
        everywhere = User(email="admin@partout.invalid", role=Role.admin)
        for user in (stranger, everywhere):
            user.set_password(PASSWORD)
            db.session.add(user)
        db.session.commit()
    yield app
    empty_tables(app)
    clear_cache()


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=["barometer", *args])


@pytest.fixture(scope="module")
def recommendations(steering_app):
    result = invoke(steering_app, "recommend", "--format", "json")
    assert result.exit_code == 0, result.output
    return {r["service"]: r for r in json.loads(result.output)}


def neutral_services(app) -> list[str]:
    with app.app_context():
        slugs = db.session.execute(select(Service.slug)).scalars().all()
    return sorted(set(slugs) - demo.PLANTED_SERVICES)


# ------------------------------------------------------------------ command line


def test_recommend_finds_the_planted_services_and_moves_no_neutral_one(steering_app, recommendations):
    assert recommendations["conservatoire"]["recommendation"] == "reduce"
    assert recommendations["urbanisme"]["recommendation"] == "reinforce"
    assert recommendations["cimetiere"]["recommendation"] == "watch"
    neutral = neutral_services(steering_app)
    assert len(neutral) > 20
    moved = {s: recommendations[s]["recommendation"] for s in neutral}
    assert not {s: r for s, r in moved.items() if r in ("reduce", "reinforce")}, moved


def test_each_recommendation_says_why_in_french_with_its_evidence(recommendations):
    over = recommendations["conservatoire"]
    assert "sur-qualité" in over["reason"] and "par usager" in over["reason"]
    assert over["evidence"]["over_quality"] and over["evidence"]["high_cost"]
    assert over["evidence"]["priority"] == 3
    under = recommendations["urbanisme"]
    assert "besoins mal couverts" in under["reason"]
    assert under["evidence"]["below_target"] and under["evidence"]["target"] == pytest.approx(0.70)
    few = recommendations["cimetiere"]
    assert few["evidence"]["flag"] in ("suppressed", "hidden") and few["evidence"]["satisfied"] is None
    assert "Pas assez de réponses" in few["reason"]


def test_the_share_satisfied_is_the_raked_estimate_on_the_respondents(steering_app, recommendations):
    """The read model's cells, raked to the organisation's margins, give the number the
    respondents' frame gives (raked the same way)."""
    with steering_app.app_context():
        frame = responses_frame(services=["conservatoire"])
        org = db.session.execute(select(Organisation).where(Organisation.slug == demo.DEMO_ORGANISATION)).scalar_one()
        margins = population_margins(org.id)
    assert margins
    recoded, completed = complete_margins(frame, margins)
    expected = proportion(recoded, "overall", success=list(SATISFIED), weights=rake(recoded, completed))
    got = recommendations["conservatoire"]["evidence"]
    assert got["n"] == expected.n == len(frame)
    assert_allclose(
        [got["satisfied"], got["se"], *got["ci"]], [expected.value, expected.se, expected.ci_low, expected.ci_high]
    )


def test_the_text_format_lists_each_recommendation_with_its_sentence(steering_app, recommendations):
    result = invoke(steering_app, "recommend")
    assert result.exit_code == 0, result.output
    assert "Réduire (sur-qualité) : 1" in result.output
    assert f"  - conservatoire : {recommendations['conservatoire']['reason']}" in result.output
    assert f"  - urbanisme : {recommendations['urbanisme']['reason']}" in result.output


@pytest.mark.parametrize("saving", ["0.08", "1500000"])
def test_scenario_json_has_both_solutions_and_saves_exactly_the_saving(steering_app, recommendations, saving):
    result = invoke(steering_app, "scenario", "--saving", saving, "--reinvest", "0.25", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = round(data["total_before"] * float(saving), 2) if float(saving) < 1 else float(saving)
    assert data["saving"] == pytest.approx(expected, abs=0.01)
    assert set(data["solutions"]) == {"even", "strategic"}
    for name, sol in data["solutions"].items():
        assert sol["total_after"] == pytest.approx(data["total_before"] - data["saving"], abs=0.005), name
        assert sum(s["after"] for s in sol["services"]) == pytest.approx(sol["total_after"], abs=0.05)
        low, high = sol["projected_satisfied_range"]
        assert low <= sol["projected_satisfied"] <= high
        assert {"policy", "before", "after", "floor", "below_floor"} <= set(sol["policies"][0])
        assert {"service", "before", "after"} <= set(sol["services"][0])
    even, strategic = data["solutions"]["even"], data["solutions"]["strategic"]
    assert not [p for p in strategic["policies"] if p["below_floor"]]
    if float(saving) < 1:  # 8 % of everything breaks the essential policies' floors (95 %)
        assert [p["policy"] for p in even["policies"] if p["below_floor"]]
    after = {s["service"]: s["after"] for s in strategic["services"]}
    before = {s["service"]: s["before"] for s in strategic["services"]}
    assert after["conservatoire"] < before["conservatoire"]
    # The under-served are never cut, and share exactly the reinvested quarter of the saving.
    reinforced = [s for s, r in recommendations.items() if r["recommendation"] == "reinforce"]
    assert "urbanisme" in reinforced
    assert all(after[s] >= before[s] for s in reinforced)
    gained = sum(after[s] - before[s] for s in reinforced)
    assert data["reinvested"] == pytest.approx(0.25 * data["saving"], abs=0.01)
    assert gained == pytest.approx(data["reinvested"], abs=0.01)


def test_a_scenario_asked_again_follows_a_changed_budget(steering_app):
    """Scenarios are kept by the figures they rest on: asked again after a budget
    changed, the answer is the new budget's, and back again after it is restored."""

    def total_before() -> float:
        result = invoke(steering_app, "scenario", "--saving", "0.05", "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["total_before"]

    first = total_before()
    assert total_before() == first  # the same answer, asked twice
    with steering_app.app_context():
        year = db.session.execute(select(Allocation.year).order_by(Allocation.year.desc())).scalars().first()
        allocation = (
            db.session.execute(select(Allocation).where(Allocation.year == year).order_by(Allocation.service_id))
            .scalars()
            .first()
        )
        kept, allocation_id = allocation.budget_eur, allocation.id
        allocation.budget_eur = kept + 1000
        db.session.commit()
    try:
        assert total_before() == pytest.approx(first + 1000, abs=0.005)
    finally:
        with steering_app.app_context():
            db.session.get(Allocation, allocation_id).budget_eur = kept
            db.session.commit()
    assert total_before() == first


def test_an_unreachable_saving_exits_non_zero_with_its_reason(steering_app):
    result = invoke(steering_app, "scenario", "--saving", "0.5", "--format", "json")
    assert result.exit_code == 1
    assert "économie inatteignable" in result.output and "plancher" in result.output
    assert not result.output.lstrip().startswith("{")


def test_scenario_refuses_a_saving_that_is_not_a_number(steering_app):
    result = invoke(steering_app, "scenario", "--saving", "beaucoup")
    assert result.exit_code == 2
    assert "n'est pas un montant" in result.output


def test_steering_commands_refuse_a_year_without_allocations(steering_app):
    result = invoke(steering_app, "recommend", "--year", "1990")
    assert result.exit_code == 1
    assert "aucune allocation" in result.output


# ------------------------------------------------------------------ pages

ACCOUNTS = {
    "manager": "piscine@demo.invalid",
    "director": "direction@demo.invalid",
    "admin": "admin@demo.invalid",
    "admin_everywhere": "admin@partout.invalid",
    "director_elsewhere": "dgs@autre.invalid",
}


def csrf(client, url="/connexion"):
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def clients(steering_app):
    """A signed-in client per account, and an anonymous one."""
    out = {"anonymous": steering_app.test_client()}
    for role, email in ACCOUNTS.items():
        client = steering_app.test_client()
        page = client.post("/connexion", data={"email": email, "password": PASSWORD, "csrf_token": csrf(client)})
        assert page.status_code == 302, role
        out[role] = client
    return out


def post_scenario(client, **data):
    form = {"saving": "8 %", "reinvest": "25", "year": "", "name": "", "run": "1", **data}
    if not form["year"]:
        form["year"] = re.search(
            r'<option selected value="(\d+)"', client.get("/pilotage/scenarios").get_data(as_text=True)
        ).group(1)
    form["csrf_token"] = csrf(client, "/pilotage/scenarios")
    return client.post("/pilotage/scenarios", data={k: v for k, v in form.items() if v is not None})


@pytest.fixture(scope="module")
def saved(clients):
    """A scenario the demo's director saved: its id."""
    page = post_scenario(clients["director"], name="Budget -8 %", save="1", run=None)
    assert page.status_code == 302, page.get_data(as_text=True)
    return int(page.location.rsplit("/", 1)[1])


def text_of(page) -> str:
    """A page's visible text, tags removed."""
    html = page.get_data(as_text=True)
    html = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"[ \t\r\n]+", " ", text).strip()  # non-breaking spaces kept, as written


def urls(scenario_id):
    return [
        "/pilotage/",
        "/pilotage/scenarios",
        f"/pilotage/scenarios/{scenario_id}",
        f"/pilotage/scenarios/comparer?id={scenario_id}",
        f"/pilotage/scenarios/{scenario_id}.xlsx",
        "/pilotage/tableau",
        "/pilotage/tableau.xlsx",
    ]


@pytest.mark.parametrize("index", range(7))
def test_only_directors_and_admins_reach_each_steering_page(clients, saved, index):
    url = urls(saved)[index]
    anonymous = clients["anonymous"].get(url)
    assert anonymous.status_code == 302 and anonymous.location.startswith("/connexion")
    refused = clients["manager"].get(url)
    assert refused.status_code == 403
    assert not re.search(r"\d\s?%|€", text_of(refused))  # no number of the director's pages
    for role in ("director", "admin", "admin_everywhere"):
        assert clients[role].get(url).status_code == 200, role
    # A director of another organisation sees the pages of their own scope, not this one's scenario.
    elsewhere = clients["director_elsewhere"].get(url)
    assert elsewhere.status_code == (404 if str(saved) in url else 200)


def test_a_manager_cannot_run_a_scenario(clients):
    client = clients["manager"]
    page = client.post("/pilotage/scenarios", data={"saving": "8 %", "csrf_token": csrf(client, "/rapports/")})
    assert page.status_code == 403


def test_the_overview_lists_the_over_quality_and_under_served_services(clients, recommendations):
    text = text_of(clients["director"].get("/pilotage/"))
    reduce = text[
        text.index("Réduire (sur-qualité)") : text.index(
            "Renforcer (besoins mal couverts)", text.index("Réduire (sur-qualité)")
        )
    ]
    assert "Conservatoire de musique et de danse" in reduce
    assert recommendations["conservatoire"]["reason"] in reduce
    reinforce = text[text.index("Renforcer (besoins mal couverts)", text.index("Réduire (sur-qualité)")) :]
    assert "Service urbanisme (permis de construire)" in reinforce.split("À surveiller")[0]
    assert "Cimetière et concessions" in reinforce.split("À surveiller")[1].split("Alertes")[0]


def test_the_heatmap_is_an_image_with_its_numbers_in_a_table(clients, recommendations):
    html = clients["director"].get("/pilotage/").get_data(as_text=True)
    assert re.search(r'<img class="heat" src="data:image/svg\+xml;base64,[^"]+" alt="[^"]+tableau', html)
    table = html[html.index('<caption id="heat-caption">') :]
    table = table[: table.index("</table>")]
    assert '<th scope="col">' in table and '<th scope="row">Enseignements artistiques (conservatoire)</th>' in table
    # The conservatoire is its policy's only service: the policy's share is its own.
    share = round(100 * recommendations["conservatoire"]["evidence"]["satisfied"])
    assert f"{share}\xa0% (+{share - 51} pt)" in table
    assert "non publié" in table  # the cemetery's policy: too few responses


def test_an_organisation_without_budgets_sees_no_number(clients):
    text = text_of(clients["director_elsewhere"].get("/pilotage/"))
    assert "Aucune allocation" in text
    assert "Conservatoire" not in text and not re.search(r"\d\s?%", text)


def test_the_board_gives_objective_indicator_allocation_deadline_and_status(clients, recommendations):
    page = clients["director"].get("/pilotage/tableau")
    text = text_of(page)
    assert page.status_code == 200
    row = text[text.index("Service : Service urbanisme") :][:200]
    ev = recommendations["urbanisme"]["evidence"]
    assert f"{round(100 * ev['satisfied'])}\xa0%" in row and "70\xa0%" in row
    assert "en retard" in row  # far below its target, the whole interval under it
    assert "pas assez de données" in text[text.index("Service : Cimetière") :][:200]
    html = page.get_data(as_text=True)
    assert '<th scope="col">Statut</th>' in html and "<caption" in html


def test_the_board_exports_as_a_spreadsheet_with_its_numbers(clients, recommendations):
    page = clients["director"].get("/pilotage/tableau.xlsx")
    assert page.status_code == 200 and page.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(page.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    service = next(r for r in rows if r[1] == "Service urbanisme (permis de construire)")
    assert service[header.index("Part de satisfaits")] == pytest.approx(
        recommendations["urbanisme"]["evidence"]["satisfied"]
    )
    assert service[header.index("Objectif (part de satisfaits)")] == pytest.approx(0.70)
    assert isinstance(service[header.index("Allocation (€)")], float)


def test_exports_neutralise_text_a_spreadsheet_would_run(steering_app, clients):
    with steering_app.app_context():
        service = db.session.execute(select(Service).where(Service.slug == "musee")).scalar_one()
        name, service.name = service.name, '=HYPERLINK("http://example.org","x")'
        db.session.commit()
    try:
        sheet = load_workbook(io.BytesIO(clients["director"].get("/pilotage/tableau.xlsx").data)).active
        names = [r[1] for r in sheet.iter_rows(values_only=True)]
        assert '\'=HYPERLINK("http://example.org","x")' in names
        assert not [n for n in names if isinstance(n, str) and n.startswith(("=", "+", "-", "@"))]
    finally:
        with steering_app.app_context():
            db.session.execute(select(Service).where(Service.slug == "musee")).scalar_one().name = name
            db.session.commit()


def test_a_scenario_shows_both_solutions_side_by_side(clients, steering_app):
    page = post_scenario(clients["director"])
    assert page.status_code == 200
    text = text_of(page)
    for words in (
        "Réduction uniforme",
        "Réduction stratégique",
        "Politiques sous leur plancher",
        "Élasticité utilisée",
    ):
        assert words in text
    assert "sous le plancher" in text[text.index("Allocation et satisfaction projetée par politique") :]
    cli = json.loads(
        invoke(steering_app, "scenario", "--saving", "0.08", "--reinvest", "0.25", "--format", "json").output
    )
    saving = f"{cli['saving']:,.0f}".replace(",", "\u202f")
    assert f"économie : {saving}\xa0€" in text


def test_scenario_form_errors_are_said_in_french_and_keep_the_input(clients):
    page = post_scenario(clients["director"], saving="beaucoup", reinvest="150")
    assert page.status_code == 422
    text = text_of(page)
    assert "Il y a un problème" in text
    assert "Indiquez un montant en euros (par exemple 1 500 000) ou un pourcentage du budget total" in text
    assert "Indiquez une part entre 0 et 100" in text
    assert 'value="beaucoup"' in page.get_data(as_text=True)
    unnamed = post_scenario(clients["director"], save="1", run=None)
    assert unnamed.status_code == 422
    assert "Donnez un nom au scénario pour l'enregistrer." in text_of(unnamed)


def test_scenario_form_errors_in_english(clients):
    client = clients["director"]
    token = csrf(client, "/pilotage/scenarios?lang=en")
    page = client.post(
        "/pilotage/scenarios?lang=en", data={"saving": "", "reinvest": "x", "csrf_token": token, "run": "1"}
    )
    assert page.status_code == 422
    text = text_of(page)
    assert "There is a problem" in text and "Indiquez" not in text


def test_an_unreachable_saving_is_refused_with_its_reason(clients):
    page = post_scenario(clients["director"], saving="50 %")
    assert page.status_code == 422
    text = text_of(page)
    assert "Économie refusée" in text and "économie inatteignable" in text and "plancher" in text
    assert "Réduction stratégique" not in text.split("Économie refusée")[1].split("Scénarios enregistrés")[0]


def test_saved_scenarios_are_listed_compared_and_exported(clients, saved, steering_app):
    client = clients["director"]
    listed = client.get("/pilotage/scenarios").get_data(as_text=True)
    assert f'href="/pilotage/scenarios/{saved}"' in listed and "Budget -8 %" in listed
    shown = text_of(client.get(f"/pilotage/scenarios/{saved}"))
    assert "Scénario « Budget -8 % »" in shown and "Réduction stratégique" in shown
    other = post_scenario(client, saving="1 000 000", reinvest="0", name="Un million", save="1", run=None)
    other_id = int(other.location.rsplit("/", 1)[1])
    compared = text_of(client.get(f"/pilotage/scenarios/comparer?id={saved}&id={other_id}"))
    assert "Budget -8 %" in compared and "Un million" in compared and "1\u202f000\u202f000\xa0€" in compared
    book = load_workbook(io.BytesIO(client.get(f"/pilotage/scenarios/{saved}.xlsx").data))
    assert book.sheetnames == ["Synthèse", "Politiques", "Services"]
    summary = dict(book["Synthèse"].iter_rows(values_only=True))
    cli = json.loads(
        invoke(steering_app, "scenario", "--saving", "0.08", "--reinvest", "0.25", "--format", "json").output
    )
    assert summary["Économie (€)"] == pytest.approx(cli["saving"])
    assert summary["Scénario"] == "'Budget -8 %" or summary["Scénario"] == "Budget -8 %"
    services = list(book["Services"].iter_rows(values_only=True))
    conservatoire = next(r for r in services if r[0] == "Conservatoire de musique et de danse")
    assert conservatoire[5] < conservatoire[3]  # the strategic cut takes from over-quality


# ------------------------------------------------------------------ attributes


def planted_target(kind: str) -> str:
    return next(p.target for p in demo.PLANTED if p.kind == kind)


def test_recommend_json_names_the_planted_attributes_and_none_elsewhere(steering_app, recommendations):
    over = recommendations["conservatoire"]
    assert over["evidence"]["effort_savings"] == [planted_target("over_quality_service")]
    assert over["evidence"]["under_served_attributes"] == []
    assert "Effort qui peut être allégé : les horaires et l'accessibilité, très bien noté" in over["reason"]
    under = recommendations["urbanisme"]
    assert under["evidence"]["under_served_attributes"] == [planted_target("under_served_service")]
    assert under["evidence"]["effort_savings"] == []
    assert "ce qui compte le plus et est mal noté : le délai ou le temps d'attente" in under["reason"]
    neutral = neutral_services(steering_app)
    named = {
        s: recommendations[s]["evidence"]["effort_savings"] + recommendations[s]["evidence"]["under_served_attributes"]
        for s in neutral
    }
    assert {s: keys for s, keys in named.items() if keys} == {}


def attribute_rows(page) -> dict[str, list[str]]:
    """The overview's table of attributes: service name -> its cells."""
    html = page.get_data(as_text=True)
    table = html[html.index('<caption id="attributes-caption">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table, flags=re.S)
    return {unescape(name): [unescape(c) for c in re.findall(r"<td>(.*?)</td>", cells)] for name, cells in rows}


def test_the_overview_names_where_effort_can_be_saved_and_what_is_under_served(steering_app, clients):
    with steering_app.app_context():
        names = dict(db.session.execute(select(Service.slug, Service.name)).all())
    rows = attribute_rows(clients["director"].get("/pilotage/"))
    assert rows[names["conservatoire"]] == ["Réduire (sur-qualité)", "Les horaires et l'accessibilité", "aucun"]
    assert rows[names["urbanisme"]] == ["Renforcer (besoins mal couverts)", "aucun", "Le délai ou le temps d'attente"]
    assert not set(rows) & {names[s] for s in neutral_services(steering_app)}
    english = attribute_rows(clients["director"].get("/pilotage/?lang=en"))
    assert english[names["conservatoire"]] == ["Reduce (over-quality)", "Opening hours and accessibility", "none"]


# ------------------------------------------------------------------ several organisations


@pytest.fixture
def neighbour(steering_app):
    """A second organisation beside the demo commune (`add_neighbour`), removed afterwards:
    the year of its budgets."""
    clear_cache()
    year = add_neighbour(steering_app, PASSWORD)
    yield year
    with steering_app.app_context():
        ids = db.session.execute(select(Service.id).join(Organisation).where(Organisation.slug == NEIGHBOUR))
        ids = list(ids.scalars())
        answered = select(Response.id).where(Response.service_id.in_(ids))
        db.session.execute(delete(Answer).where(Answer.response_id.in_(answered)))
        db.session.execute(delete(Response).where(Response.service_id.in_(ids)))
        for service_id in ids:
            rebuild_service(db.session.connection(), service_id)
        db.session.execute(delete(Allocation).where(Allocation.service_id.in_(ids)))
        db.session.execute(delete(User).where(User.email == NEIGHBOUR_DIRECTOR))
        db.session.execute(delete(Service).where(Service.id.in_(ids)))
        db.session.execute(delete(Organisation).where(Organisation.slug == NEIGHBOUR))
        db.session.commit()
    respond_services.clear_cache()
    clear_cache()


def across_rows(page) -> tuple[list[str], dict[str, list[str]]]:
    """The table of the same policy in each organisation: its organisations (column
    groups) and, by policy, the text of its cells."""
    html = page.get_data(as_text=True)
    table = html[html.index('<caption id="across-caption">') :]
    table = table[: table.index("</table>")]
    organisations = [unescape(o) for o in re.findall(r'<th scope="colgroup" colspan="2">(.*?)</th>', table)]
    rows = re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table, flags=re.S)
    cells = {
        unescape(name): [
            re.sub(r"[ \t\r\n]+", " ", unescape(re.sub(r"<[^>]+>", " ", c))).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        ]
        for name, row in rows
    }
    return organisations, cells


def test_a_scope_of_one_organisation_has_no_comparison_across_organisations(clients):
    for role in ("director", "admin", "admin_everywhere"):
        html = clients[role].get("/pilotage/").get_data(as_text=True)
        assert "La même politique dans chaque collectivité" not in html, role


def test_the_same_policy_is_compared_across_the_organisations_of_the_scope(steering_app, clients, neighbour):
    with steering_app.app_context():
        pool, library = (
            db.session.execute(select(Service).where(Service.slug == slug)).scalar_one()
            for slug in ("piscine", "mediatheque")
        )
        pool_policy, library_policy = pool.policy.name, library.policy.name
        demo_name = pool.organisation.name
        demo_pool = db.session.execute(
            select(Allocation).where(Allocation.service_id == pool.id, Allocation.year == neighbour)
        ).scalar_one()
    page = clients["admin_everywhere"].get("/pilotage/")
    text = text_of(page)
    assert "La même politique dans chaque collectivité" in text
    organisations, rows = across_rows(page)
    assert organisations == sorted([demo_name, "Communauté voisine"])
    # Only the policies both organisations carry out.
    assert set(rows) == {pool_policy, library_policy}
    ours = organisations.index("Communauté voisine")
    theirs = 1 - ours
    target, *cells = rows[pool_policy]
    assert target == "51\xa0%"  # the policy's target, as the framework sets it
    share, cost = cells[2 * ours : 2 * ours + 2]
    expected = proportion(pd.DataFrame({"overall": [5, 4] * 20 + [2] * 20}), "overall", success=list(SATISFIED))
    assert share == f"67\xa0% IC 95 % : {round(100 * expected.ci_low)}\xa0% à {round(100 * expected.ci_high)}\xa0%"
    assert cost == "50\xa0€"
    # The demo's pool: its own share (the policy's only service there) and budget per user.
    demo_share, demo_cost = cells[2 * theirs : 2 * theirs + 2]
    evidence = json.loads(invoke(steering_app, "recommend", "--format", "json").output)
    satisfied = next(r for r in evidence if r["service"] == "piscine")["evidence"]["satisfied"]
    assert demo_share.startswith(f"{round(100 * satisfied)}\xa0% IC 95")
    assert demo_cost == f"{float(demo_pool.budget_eur) / demo_pool.volume:,.0f}".replace(",", "\u202f") + "\xa0€"
    # 12 responses: the share is withheld, and the cell says why.
    library_cells = rows[library_policy][1:]
    assert library_cells[2 * ours] == "non publié : moins de 30 réponses"
    assert library_cells[2 * ours + 1] == "30\xa0€"
    html = page.get_data(as_text=True)
    assert (
        '<th scope="col" rowspan="2">Politique</th>' in html
        and '<th scope="col" class="num">Budget par usager</th>' in html
    )
    # Beside another organisation's, a service is named with its own organisation's name.
    assert f"Conservatoire de musique et de danse ({demo_name})" in attribute_rows(page)


def test_a_director_sees_no_other_organisation_in_the_comparison(steering_app, clients, neighbour):
    text = text_of(clients["director"].get("/pilotage/"))
    assert "La même politique dans chaque collectivité" not in text
    assert "Communauté voisine" not in text and "(voisine)" not in text
    client = steering_app.test_client()
    page = client.post(
        "/connexion", data={"email": NEIGHBOUR_DIRECTOR, "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert page.status_code == 302
    text = text_of(client.get("/pilotage/"))
    assert "(voisine)" in text  # its own library, too few responses: to watch
    assert "La même politique dans chaque collectivité" not in text
    assert "Conservatoire" not in text and "Saint-Aubin" not in text
