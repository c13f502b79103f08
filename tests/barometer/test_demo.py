"""The demo command: realistic data written like real responses, planted effects found.

The analyses of analysis/ must find every effect the command's help lists, and flag
none of the services it lists as without effect.
"""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from analysis.estimates import grouped_means, grouped_proportions
from analysis.ipa import bootstrap_ci, quadrants
from analysis.segments import segment_gaps
from analysis.trends import adjust, trends
from barometer import demo
from barometer.extensions import db
from barometer.frames import responses_frame
from barometer.models import Allocation, PopulationMargin, Response, Service, User
from surveys.schema import DEFAULT_ROOT, load_bundle
from tests.conftest import _make_app, empty_tables
from tests.helpers import edit_yaml

FLAGGED_QUADRANTS = {"possible_overkill", "concentrate_here"}


@pytest.fixture(scope="module")
def demo_app(_schema):
    """One demo history (24 months, 1,500 responses a month) shared by this module, with
    the moment its run started."""
    app = _make_app(_schema)
    started = datetime.now(UTC)
    result = app.test_cli_runner().invoke(args=["barometer", "demo", "--seed", "1", "--per-month", "1500"])
    assert result.exit_code == 0, result.output
    yield app, result.output, started
    empty_tables(app)


def test_demo_fills_history_budgets_margins_and_accounts(demo_app):
    app, output, _ = demo_app
    with app.app_context():
        assert responses_frame(keys=["overall"])["period"].nunique() == 24
        total = db.session.execute(select(func.count()).select_from(Response)).scalar_one()
        assert 24 * 1300 < total < 24 * 1700
        n_services = db.session.execute(select(func.count()).select_from(Service)).scalar_one()
        assert db.session.execute(select(func.count()).select_from(Allocation)).scalar_one() == 3 * n_services
        assert db.session.execute(select(func.count()).select_from(PopulationMargin)).scalar_one() == 12
        assert db.session.execute(select(func.count()).select_from(User)).scalar_one() == 3
    assert f"{total} réponses enregistrées sur 24 mois" in output
    # A second run refuses to add to a database that already has responses.
    again = app.test_cli_runner().invoke(args=["barometer", "demo"])
    assert again.exit_code == 1 and "déjà des réponses" in again.output


def test_analyses_find_every_planted_effect_and_nothing_else(demo_app):
    app, _, _ = demo_app
    with app.app_context():
        frame = responses_frame()
    planted = {p.kind: p for p in demo.PLANTED}
    controls = sorted(set(frame["service"]) - demo.PLANTED_SERVICES)
    assert len(controls) >= 20

    # Importance-performance: over-quality and under-served attributes.
    flagged = {}
    for service, rows in frame.groupby("service"):
        drivers = demo_drivers(rows)
        ci = bootstrap_ci(rows, "overall", drivers, n_boot=200, seed=1)
        q = quadrants(ci["performance"], ci["importance"], ci=ci)
        flagged[service] = set(q.index[q["quadrant"].isin(FLAGGED_QUADRANTS)])
        if service == planted["over_quality"].service:
            assert q.loc[planted["over_quality"].target, "quadrant"] == "possible_overkill"
        if service == planted["under_served"].service:
            assert q.loc[planted["under_served"].target, "quadrant"] == "concentrate_here"
    assert {s: flagged[s] for s in controls if flagged[s]} == {}

    # Trends: monthly means with SEs, WLS slope per service, BH across services.
    monthly = grouped_means(frame, "overall", ["service", "period"])
    slopes = trends(monthly, by="service").set_index("service")
    declining = planted["declining_trend"].service
    assert slopes.loc[declining, "significant"] and slopes.loc[declining, "slope"] < 0
    assert not slopes.loc[controls, "significant"].any()

    # Publics: every category of every profile column against the rest, in every
    # service; the FDR is controlled over all these tests at once (services x publics).
    gaps = pd.concat(
        segment_gaps(rows, "overall", ["age_band", "sex", "area"]).assign(service=service)
        for service, rows in frame.groupby("service")
    ).reset_index(drop=True)
    family = adjust(gaps["p"])
    gaps["under_served"] = (
        (gaps["gap"] < 0) & family["reject"].to_numpy() & ~gaps["flag"].isin(["suppressed", "hidden"])
    )
    public = planted["less_satisfied_public"]
    hit = gaps[(gaps.service == public.service) & (gaps.column == public.dimension) & (gaps.category == public.target)]
    assert hit["under_served"].item()
    assert gaps[gaps.service.isin(controls) & gaps.under_served].empty


def test_no_response_is_dated_after_the_run_started(demo_app):
    app, _, started = demo_app
    with app.app_context():
        first, last = db.session.execute(select(func.min(Response.submitted_at), func.max(Response.submitted_at))).one()
    first, last = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (first, last))
    # Stored times are truncated to the hour: a response of a moment later in the
    # current hour would still be stored at or before `started`, hence the start's hour.
    assert last <= started.replace(minute=0, second=0, microsecond=0)
    # As the help says, the history is made of the full months before the current one.
    this_month = started.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert last < this_month
    assert first >= this_month.replace(year=this_month.year - 2)


def test_generated_history_stops_before_the_month_of_its_end(demo_app, monkeypatch):
    app, _, _ = demo_app
    generated = []
    monkeypatch.setattr(demo, "store_responses", lambda subs: generated.extend(subs) or len(subs))
    with app.app_context():
        demo.generate(seed=2, months=2, per_month=300, end=datetime(2024, 3, 15, 10, 30, tzinfo=UTC))
    stamps = [s.submitted_at for s in generated]
    assert datetime(2024, 1, 1, tzinfo=UTC) <= min(stamps) and max(stamps) < datetime(2024, 3, 1, tzinfo=UTC)
    assert {(t.year, t.month) for t in stamps} == {(2024, 1), (2024, 2)}


DRIVERS = {d for q in load_bundle(DEFAULT_ROOT).questionnaires.values() for d in q.drivers}


def demo_drivers(rows: pd.DataFrame) -> list[str]:
    """The driver attributes present in a service's frame (core and extension)."""
    return [c for c in rows.columns if c in DRIVERS and rows[c].notna().any()]


def test_frames_treat_not_applicable_and_prefer_not_to_say_as_missing(demo_app):
    app, _, _ = demo_app
    with app.app_context():
        frame = responses_frame(services=["piscine"])
    assert set(frame["service"]) == {"piscine"}
    assert frame["courtesy"].isna().mean() == pytest.approx(0.05, abs=0.02)
    assert "nsp" not in set(frame["age_band"].dropna())
    assert frame["age_band"].isna().mean() == pytest.approx(0.05, abs=0.02)
    assert set(np.unique(frame["overall"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_extension_questions_on_the_areas_get_answers_the_definition_accepts(tree):
    def ask_where(doc):
        doc["questions"].append(
            {
                "key": "visited_from",
                "type": "multiple",
                "section": "more",
                "choices_from": "areas",
                "label": {"fr": "D'où venez-vous ?", "en": "Where do you come from?"},
                "choices": [{"code": "elsewhere", "label": {"fr": "D'ailleurs", "en": "Elsewhere"}}],
            }
        )

    edit_yaml(tree / "questionnaires" / "piscine.yaml", ask_where)
    bundle = load_bundle(tree)
    q = bundle.questionnaires["piscine"]
    areas = bundle.organisations[0].areas
    picks = dict(demo._extras(q, areas))["visited_from"]
    rng = np.random.default_rng(0)
    chosen = [set(picks(rng, {})) for _ in range(200)]
    offered = {c.code for c in areas} | {"elsewhere"}
    assert set().union(*chosen) == offered
    for codes in chosen:
        assert q.clean({"overall": 4, "visited_from": sorted(codes)}, areas=areas)[1] == {}


def test_recommendations_find_the_planted_services_and_move_no_neutral_one(demo_app):
    from analysis.redeploy import recommend, scenarios
    from barometer.models import Policy, Priority

    app, _, _ = demo_app
    with app.app_context():
        frame = responses_frame(keys=["overall"])
        last = db.session.execute(select(func.max(Allocation.year))).scalar_one()
        framework = pd.DataFrame(
            db.session.execute(
                select(
                    Service.slug.label("service"),
                    Policy.slug.label("policy"),
                    Priority.level.label("priority"),
                    Priority.satisfaction_target.label("target"),
                    Priority.floor_eur,
                    Allocation.budget_eur,
                    Allocation.volume,
                )
                .join(Policy, Policy.id == Service.policy_id)
                .join(Priority, Priority.policy_id == Policy.id)
                .join(Allocation, (Allocation.service_id == Service.id) & (Allocation.year == last))
                .where(Service.is_open.is_(True))
            ).all()
        )
    framework[["floor_eur", "budget_eur"]] = framework[["floor_eur", "budget_eur"]].astype(float)
    est = grouped_proportions(frame, "overall", ["service"], success=[4, 5])
    services = framework.merge(est, on="service", how="left").assign(flag=lambda d: d["flag"].fillna("hidden"))
    result = recommend(services)
    rec = result.table.set_index("service")["recommendation"]
    kinds = {p.kind: p.service for p in demo.PLANTED}
    assert rec[kinds["over_quality_service"]] == "reduce"
    assert rec[kinds["under_served_service"]] == "reinforce"
    assert rec[kinds["too_few_responses"]] == "watch"
    controls = sorted(set(rec.index) - demo.PLANTED_SERVICES)
    assert len(controls) >= 20
    assert (rec[controls] == "maintain").all(), rec[controls][rec[controls] != "maintain"]

    # The demo's floors make the even cut's failure visible; the strategic cut avoids it.
    plan = scenarios(services.assign(recommendation=rec.to_numpy()), saving=0.08, reinvest=0.25, elasticity=0.3)
    assert plan.even.below_floor and not plan.strategic.below_floor
    assert plan.strategic.projected_satisfied >= plan.even.projected_satisfied
