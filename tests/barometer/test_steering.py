"""The director's steering on the demo commune: recommendations and scenarios from the
command line, and the /pilotage pages (who may see them, what they show, their exports)."""

from __future__ import annotations

import json

import pytest
from numpy.testing import assert_allclose
from sqlalchemy import select

from analysis.cells import complete_margins
from analysis.estimates import proportion
from analysis.scales import SATISFIED
from analysis.weighting import rake
from barometer import demo
from barometer.extensions import db
from barometer.frames import responses_frame
from barometer.models import Organisation, OrganisationKind, Role, Service, User
from barometer.results import population_margins
from tests.conftest import _make_app, empty_tables

PASSWORD = "un mot de passe assez long"


@pytest.fixture(scope="module")
def steering_app(_schema):
    """A short demo (6 months, 2,000 responses a month) with its budgets and priorities,
    the demo's accounts, and a director of another organisation."""
    app = _make_app(_schema)
    result = app.test_cli_runner().invoke(args=["barometer", "demo", "--months", "6", "--per-month", "2000"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        other = Organisation(slug="autre-commune", name="Autre commune", kind=OrganisationKind.commune, areas=[])
        db.session.add(other)
        db.session.flush()
        for email in ("admin@demo.invalid", "direction@demo.invalid", "piscine@demo.invalid"):
            db.session.execute(select(User).where(User.email == email)).scalar_one().set_password(PASSWORD)
        stranger = User(email="dgs@autre.invalid", role=Role.director, organisation_id=other.id)
        stranger.set_password(PASSWORD)
        db.session.add(stranger)
        db.session.commit()
    yield app
    empty_tables(app)


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
