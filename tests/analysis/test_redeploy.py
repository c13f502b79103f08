"""Redeployment: recommendations, the allocation-satisfaction elasticity, and the even
versus strategic cut."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.special import expit

from analysis.estimates import grouped_proportions
from analysis.ipa import quadrants
from analysis.redeploy import (
    DEFAULT_ELASTICITY,
    Elasticity,
    UnreachableSaving,
    effort_savings,
    elasticity,
    recommend,
    scenarios,
)

# service, policy, priority, target, true share satisfied, respondents, budget, volume
SERVICES = [
    ("conservatoire", "enseignements-artistiques", 3, 0.55, 0.85, 900, 1_800_000, 1_500),  # over-quality
    ("urbanisme", "urbanisme-reglementaire", 1, 0.70, 0.50, 900, 900_000, 12_000),  # under-served
    ("cimetiere", "cimetieres", 2, 0.55, 0.55, 18, 200_000, 3_000),  # too few responses
    ("voirie", "voirie-eclairage", 2, 0.55, 0.55, 900, 2_000_000, 40_000),
    ("piscine", "piscines", 3, 0.55, 0.56, 900, 1_500_000, 5_000),  # costly but not over target
    ("mediatheque", "lecture-publique", 3, 0.55, 0.54, 900, 700_000, 30_000),
    ("logement", "habitat-logement", 1, 0.55, 0.55, 900, 600_000, 8_000),
    ("marche", "marches-halles", 3, 0.55, 0.57, 900, 150_000, 25_000),
]
NEUTRAL = ["voirie", "piscine", "mediatheque", "logement", "marche"]


def responses(rows, seed=0):
    """One respondent per row: their service and a 1-5 overall rating whose share of
    4-5 is the service's true share."""
    rng = np.random.default_rng(seed)
    out = []
    for slug, _, _, _, p, n, _, _ in rows:
        satisfied = rng.random(n) < p
        out.append(
            pd.DataFrame(
                {"service": slug, "overall": np.where(satisfied, rng.integers(4, 6, n), rng.integers(1, 4, n))}
            )
        )
    return pd.concat(out, ignore_index=True)


def service_frame(rows=SERVICES, seed=0, **extra):
    """What the read model gives recommend(): estimates of % satisfied by service, with
    the strategic framework and the allocations."""
    est = grouped_proportions(responses(rows, seed), "overall", ["service"], success=[4, 5])
    meta = pd.DataFrame(
        rows, columns=["service", "policy", "priority", "target", "true", "respondents", "budget_eur", "volume"]
    )
    frame = meta.merge(est, on="service").drop(columns=["true", "respondents"])
    return frame.assign(**extra)


def test_recommend_finds_over_quality_under_served_too_few_and_moves_no_neutral_service():
    result = recommend(service_frame())
    rec = result.table.set_index("service")["recommendation"]
    assert rec["conservatoire"] == "reduce"
    assert rec["urbanisme"] == "reinforce"
    assert rec["cimetiere"] == "watch"
    assert (rec[NEUTRAL] == "maintain").all(), rec[NEUTRAL]
    assert sorted(rec.unique()) == sorted({"reduce", "reinforce", "watch", "maintain"})


def test_each_recommendation_has_one_french_sentence_with_its_numbers_and_json_evidence():
    result = recommend(service_frame(), labels={"waiting_time": "délais", "a75_plus": "75 ans et plus"})
    items = {item["service"]: item for item in json.loads(json.dumps(result.to_list()))}
    assert set(items) == {row[0] for row in SERVICES}
    over = items["conservatoire"]
    assert set(over) == {"service", "recommendation", "reason", "evidence"}
    assert f"{100 * over['evidence']['satisfied']:.0f} % d'usagers satisfaits" in over["reason"]
    assert "au-dessus de la cible de 55 %" in over["reason"] and "sur une politique secondaire" in over["reason"]
    assert "1\u202f200 € par usager" in over["reason"]  # 1,800,000 € / 1,500 users
    assert over["evidence"]["high_cost"] and over["evidence"]["over_quality"]
    assert "sous la cible de 70 %" in items["urbanisme"]["reason"]
    assert "politique essentielle" in items["urbanisme"]["reason"]
    assert items["cimetiere"]["reason"].startswith("Pas assez de réponses pour conclure (18 réponses")
    for item in items.values():
        assert item["reason"].count(".") == 1 and item["reason"].endswith(".")
        assert "nan" not in item["reason"] and "None" not in item["reason"]


def test_a_suppressed_cell_is_never_tested_nor_recommended_from():
    # Even far below its target on an essential policy: too few responses say nothing.
    rows = [*SERVICES[:2], ("cimetiere", "cimetieres", 1, 0.9, 0.1, 25, 200_000, 3_000), *SERVICES[3:]]
    table = recommend(service_frame(rows)).table.set_index("service")
    assert table.loc["cimetiere", "recommendation"] == "watch"
    assert np.isnan(table.loc["cimetiere", "p_target"])


def test_reduce_needs_a_secondary_policy_and_a_high_cost_per_user():
    important = [("conservatoire", "enseignements-artistiques", 2, *SERVICES[0][3:]), *SERVICES[1:]]
    table = recommend(service_frame(important)).table.set_index("service")
    assert table.loc["conservatoire", "recommendation"] == "maintain"
    assert table.loc["conservatoire", "over_quality"]
    assert "mais sur une politique importante" in table.loc["conservatoire", "reason"]

    cheap = [("conservatoire", "enseignements-artistiques", 3, 0.55, 0.85, 900, 100_000, 50_000), *SERVICES[1:]]
    table = recommend(service_frame(cheap)).table.set_index("service")
    assert table.loc["conservatoire", "recommendation"] == "maintain"
    assert "coût par usager qui n'est pas élevé" in table.loc["conservatoire", "reason"]


def test_over_quality_against_the_policy_peers_when_no_target_is_set():
    rows = [
        ("navette", "transports", 3, np.nan, 0.85, 900, 1_000_000, 2_000),
        ("transport-demande", "transports", 3, np.nan, 0.55, 900, 300_000, 20_000),
        ("bus-scolaire", "transports", 3, np.nan, 0.56, 900, 200_000, 30_000),
    ]
    table = recommend(service_frame(rows)).table.set_index("service")
    assert table.loc["navette", "recommendation"] == "reduce"
    assert "au-dessus des services de la même politique" in table.loc["navette", "reason"]
    peers = [e["satisfied"] for e in table.loc[["transport-demande", "bus-scolaire"], "evidence"]]
    assert_allclose(table.loc["navette", "evidence"]["peer_mean"], np.mean(peers))
    assert (table.loc[["transport-demande", "bus-scolaire"], "recommendation"] == "maintain").all()


def test_peers_given_by_the_caller_replace_those_of_the_frame():
    rows = [("navette", "transports", 3, np.nan, 0.85, 900, 1_000_000, 2_000), SERVICES[3]]
    alone = recommend(service_frame(rows)).table.set_index("service")
    assert alone.loc["navette", "recommendation"] == "maintain"  # no target, no peer: nothing to compare
    ev = alone.loc["navette", "evidence"]
    assert ev["target"] is None and ev["peer_mean"] is None
    assert alone.loc["navette", "reason"] == (
        f"{100 * ev['satisfied']:.0f} % d'usagers satisfaits (IC 95 % : {100 * ev['ci'][0]:.0f} %–"
        f"{100 * ev['ci'][1]:.0f} %), sans cible fixée ni écart significatif aux services de la même politique : "
        "à maintenir."
    )
    given = service_frame(rows, peer_value=[0.6, np.nan], peer_se=[0.01, np.nan])
    table = recommend(given).table.set_index("service")
    assert table.loc["navette", "recommendation"] == "reduce"
    assert_allclose(table.loc["navette", "evidence"]["peer_mean"], 0.6)


def test_a_public_left_behind_reinforces_a_high_priority_service_even_at_target():
    frame = service_frame()
    frame["under_served_publics"] = [["a75_plus"] if s == "logement" else [] for s in frame["service"]]
    frame["under_served_attributes"] = [["waiting_time"] if s == "urbanisme" else [] for s in frame["service"]]
    table = recommend(frame, labels={"a75_plus": "75 ans et plus", "waiting_time": "délais"}).table.set_index("service")
    assert table.loc["logement", "recommendation"] == "reinforce"
    assert "public nettement moins satisfait : 75 ans et plus" in table.loc["logement", "reason"]
    assert "ce qui compte le plus et est mal noté : délais" in table.loc["urbanisme", "reason"]


def fixed(rows):
    """Estimates given directly (value, se) rather than simulated."""
    return pd.DataFrame(
        [
            {
                "service": s,
                "policy": f"p-{s}",
                "priority": 3,
                "target": 0.5,
                "value": v,
                "se": se,
                "n": 2000,
                "n_eff": 2000,
                "flag": "ok",
                "cost_per_user": c,
            }
            for s, v, se, c in rows
        ]
    )


def test_significance_is_controlled_for_the_false_discovery_rate_across_services():
    # One service 6 points above its target with z = 2.1 (raw p = 0.036) among twenty
    # at their target: Benjamini-Hochberg over the family leaves it unflagged.
    # Beside one clear difference (b, far below), its test survives the adjustment.
    alone = fixed([("a", 0.56, 0.06 / 2.1, 100.0), ("b", 0.4, 0.01, 1.0)])
    assert recommend(alone).table.set_index("service").loc["a", "recommendation"] == "reduce"
    crowd = fixed([("a", 0.56, 0.06 / 2.1, 100.0)] + [(f"n{i}", 0.5 + 0.001 * i, 0.02, 1.0) for i in range(20)])
    table = recommend(crowd).table.set_index("service")
    assert table.loc["a", "p_target"] < 0.05 < table.loc["a", "p_target_adjusted"]
    assert table.loc["a", "recommendation"] == "maintain"


def test_a_significant_but_small_gap_does_not_count():
    frame = fixed([("a", 0.53, 0.005, 100.0), ("b", 0.5, 0.01, 1.0)])
    table = recommend(frame).table.set_index("service")
    assert table.loc["a", "p_target_adjusted"] < 1e-6
    assert table.loc["a", "recommendation"] == "maintain"
    assert recommend(frame, min_gap=0.02).table.set_index("service").loc["a", "recommendation"] == "reduce"


def test_recommend_refuses_overlapping_levels_and_missing_columns():
    with pytest.raises(ValueError, match="must not share"):
        recommend(service_frame(), reduce_levels=(2, 3), reinforce_levels=(1, 2))
    with pytest.raises(ValueError, match="'flag'"):
        recommend(service_frame().drop(columns="flag"))


def test_effort_savings_names_attributes_far_above_their_weight():
    perf = pd.Series({"courtesy": 4.7, "waiting_time": 2.3, "clarity": 3.8, "ease": 3.9, "outcome": 4.4})
    imp = pd.Series({"courtesy": 0.02, "waiting_time": 0.40, "clarity": 0.18, "ease": 0.20, "outcome": 0.08})
    ci = pd.DataFrame(
        {
            "perf_low": perf - 0.05,
            "perf_high": perf + 0.05,
            "imp_low": imp - 0.01,
            "imp_high": imp + 0.01,
        }
    )
    ci.loc["outcome", "imp_low"], ci.loc["outcome", "imp_high"] = 0.0, 0.3  # crosses: uncertain
    out = effort_savings(quadrants(perf, imp, ci=ci), labels={"courtesy": "accueil"})
    assert list(out.index) == ["courtesy"]
    assert_allclose(out.loc["courtesy", "excess"], 4.7 - perf.mean())
    assert out.loc["courtesy", "reason"].startswith("Accueil : noté 4,7 sur 5")
    assert "un effort qui peut être allégé" in out.loc["courtesy", "reason"]
    # What is done well is what matters: no effort to save.
    aligned = quadrants(pd.Series({"a": 3.0, "b": 4.0, "c": 4.5}), pd.Series({"a": 0.1, "b": 0.3, "c": 0.5}))
    assert effort_savings(aligned).empty


# Elasticity -------------------------------------------------------------------------


def panel(eps=0.4, services=40, years=5, n=1500, seed=3):
    """Services × years: budgets that change, a satisfaction that follows them with
    elasticity `eps` on the odds, and a common yearly shock that falls as budgets rise
    (which year effects must keep off the budget)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(services):
        level = rng.normal(0.2, 0.6)
        base = rng.uniform(2e5, 3e6)
        for t in range(years):
            budget = base * np.exp(0.05 * t + rng.normal(0, 0.15))
            p = expit(level - 0.15 * t + eps * np.log(budget / base))
            hat = rng.binomial(n, p) / n
            rows.append((f"s{s}", 2020 + t, budget, hat, np.sqrt(hat * (1 - hat) / n)))
    return pd.DataFrame(rows, columns=["service", "year", "budget_eur", "value", "se"])


def test_elasticity_recovers_a_known_elasticity_within_its_interval():
    est = elasticity(panel(eps=0.4))
    assert est.source == "estimated" and est.estimated
    assert est.ci_low < 0.4 < est.ci_high
    assert est.ci_high - est.ci_low < 0.4  # informative, not just wide
    assert (est.n_services, est.n_years, est.n_obs) == (40, 5, 200)
    assert "effets fixes service et année" in est.reason


def test_elasticity_falls_back_to_the_stated_default_with_too_little_history():
    two_years = panel()[lambda d: d.year < 2022]
    est = elasticity(two_years)
    assert est.source == "default" and not est.estimated
    assert (est.value, est.ci_low, est.ci_high) == DEFAULT_ELASTICITY
    assert est.reason.startswith("historique de 2 année(s), il en faut 3")
    few = panel(services=3)
    assert elasticity(few).source == "default"
    assert "3 service(s) dont le budget a varié" in elasticity(few).reason


def test_elasticity_ignores_services_whose_budget_never_changed_and_suppressed_years():
    data = panel()
    data.loc[data.service == "s0", "budget_eur"] = 1e6
    data.loc[data.index[:3], "value"] = np.nan
    est = elasticity(data)
    assert est.n_services == 39


# Scenarios ------------------------------------------------------------------------


def allocations(seed=0):
    """The demo-like commune of SERVICES with recommendations and floors such that an
    8 % even cut breaks some floors."""
    frame = service_frame(seed=seed)
    rec = recommend(frame).table["recommendation"].to_numpy()
    floor_share = frame["priority"].map({1: 0.95, 2: 0.93, 3: 0.5})
    return frame.assign(recommendation=rec, floor_eur=(frame["budget_eur"] * floor_share).round(2))


def cents(x):
    return int(round(x * 100))


def assert_exact(solution, total_after):
    assert sum(cents(a) for a in solution.services["after"]) == cents(total_after)
    assert cents(solution.total_after) == cents(total_after)


def test_both_solutions_save_exactly_the_target_to_the_cent():
    frame = allocations()
    total = frame["budget_eur"].sum()
    for saving in (0.08, 123_456.78, 0.0317):
        result = scenarios(frame, saving=saving, elasticity=0.3)
        expected = round(total * saving, 2) if saving < 1 else saving
        assert cents(result.saving) == cents(expected)
        for solution in (result.even, result.strategic):
            assert_exact(solution, total - expected)


def test_the_even_cut_breaks_floors_and_the_strategic_cut_does_not_and_projects_higher():
    result = scenarios(allocations(), saving=0.08, elasticity=Elasticity(0.3, 0.1, 0.5, 0.1, "estimated", "", 8, 3, 24))
    even, strategic = result.even, result.strategic
    shares = even.services["after"] / even.services["before"]
    assert_allclose(shares, 0.92, atol=1e-6)  # the same share for every service
    assert set(even.below_floor) == {"urbanisme-reglementaire", "voirie-eclairage", "cimetieres", "habitat-logement"}
    assert strategic.below_floor == []
    assert (strategic.policies["after"] >= strategic.policies["floor"] - 1e-9).all()
    assert strategic.projected_satisfied >= even.projected_satisfied
    # Over-quality goes first: the over-quality service gives the most; under-served is not cut.
    change = strategic.services.set_index("service")["change"]
    assert change.idxmin() == "conservatoire"
    assert change["urbanisme"] == 0
    low, high = strategic.projected_satisfied_range
    assert low <= strategic.projected_satisfied <= high


def test_the_strategic_cut_reinvests_exactly_its_share_in_under_served_services():
    frame = allocations()
    result = scenarios(frame, saving=0.05, reinvest=0.25, elasticity=0.3)
    change = result.strategic.services.set_index("service")["change"]
    assert cents(change["urbanisme"]) == cents(0.25 * result.saving)
    assert cents(result.reinvested) == cents(0.25 * result.saving)
    assert_exact(result.strategic, frame["budget_eur"].sum() - result.saving)
    assert (change.drop("urbanisme") <= 0).all()


def test_an_unreachable_saving_is_refused_with_its_reason():
    frame = allocations()
    with pytest.raises(UnreachableSaving) as refused:
        scenarios(frame, saving=0.4, elasticity=0.3)
    # (one service per policy here; the under-served one is never cut)
    cuttable = frame[frame["recommendation"] != "reinforce"]
    reachable = sum(b - f for b, f in zip(cuttable["budget_eur"], cuttable["floor_eur"], strict=True) if b > f)
    assert refused.value.reason.startswith("économie inatteignable : ")
    assert "sans descendre sous le plancher d'au moins une politique" in refused.value.reason
    # Without caps, what can be saved is what every policy has above its floor.
    with pytest.raises(UnreachableSaving) as refused:
        scenarios(frame, saving=0.4, elasticity=0.3, max_cut={"reduce": 1, 1: 1, 2: 1, 3: 1})
    assert_allclose(refused.value.reachable, reachable, atol=0.01)
    # With loose floors, the maximum cut per priority level is the reason.
    loose = frame.assign(floor_eur=0.0)
    with pytest.raises(UnreachableSaving, match="au-delà de la baisse maximale de son niveau de priorité"):
        scenarios(loose, saving=0.4, elasticity=0.3)


def test_scenarios_serialise_to_the_json_of_the_command():
    elast = Elasticity(0.3, 0.0, 0.6, None, "default", "hypothèse", 0, 0, 0)
    result = scenarios(allocations(), saving=0.08, reinvest=0.1, elasticity=elast)
    data = json.loads(json.dumps(result.to_dict()))
    assert {"total_before", "saving", "solutions"} <= set(data)
    assert set(data["solutions"]) == {"even", "strategic"}
    for s in data["solutions"].values():
        assert {"total_after", "projected_satisfied", "projected_satisfied_range", "policies", "services"} <= set(s)
        assert {"policy", "before", "after", "floor", "below_floor"} <= set(s["policies"][0])
        assert set(s["services"][0]) == {"service", "before", "after"}
        assert len(s["projected_satisfied_range"]) == 2
    assert data["elasticity"]["source"] == "default"
    # With the low end (no effect), the even cut projects today's satisfaction.
    assert_allclose(data["sensitivity"]["low"]["even"]["projected_satisfied"], data["satisfied_before"])
    # A pure cut hurts more the more satisfaction follows the budget.
    assert data["sensitivity"]["high"]["even"]["projected_satisfied"] < data["solutions"]["even"]["projected_satisfied"]
    assert len(data["sensitivity"]["high"]["strategic"]["services"]) == len(data["solutions"]["strategic"]["services"])


@st.composite
def commune(draw):
    n = draw(st.integers(2, 10))
    n_pol = draw(st.integers(1, min(n, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    policies = [f"p{i}" for i in range(n_pol)] + [f"p{rng.integers(n_pol)}" for _ in range(n - n_pol)]
    frame = pd.DataFrame(
        {
            "service": [f"s{i}" for i in range(n)],
            "policy": policies,
            "budget_eur": np.round(rng.uniform(1e4, 5e6, n), 2),
            "volume": rng.integers(100, 100_000, n),
            "value": rng.uniform(0.2, 0.95, n),
            "recommendation": rng.choice(["maintain", "reduce", "reinforce", "watch"], n, p=[0.5, 0.2, 0.15, 0.15]),
        }
    )
    levels = {p: int(rng.integers(1, 4)) for p in set(policies)}
    floor_share = {p: (float(rng.uniform(0, 1.05)) if rng.random() < 0.8 else np.nan) for p in set(policies)}
    budget_p = frame.groupby("policy")["budget_eur"].sum()
    frame["priority"] = frame["policy"].map(levels)
    frame["floor_eur"] = [
        round(budget_p[p] * floor_share[p], 2) if floor_share[p] == floor_share[p] else np.nan for p in policies
    ]
    return frame


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(frame=commune(), saving=st.floats(0.005, 0.3), reinvest=st.sampled_from([0.0, 0.2, 0.5]), eps=st.floats(0, 0.9))
def test_property_exact_saving_floors_bounds_and_no_worse_than_a_feasible_even_cut(frame, saving, reinvest, eps):
    try:
        result = scenarios(frame, saving=saving, reinvest=reinvest, elasticity=eps)
    except UnreachableSaving as exc:
        assert exc.reachable < exc.requested
        return
    total = frame["budget_eur"].sum()
    for solution in (result.even, result.strategic):
        assert_exact(solution, total - result.saving)
    s = result.strategic.services
    pol = result.strategic.policies.set_index("policy")
    before_p = frame.groupby("policy")["budget_eur"].sum()
    floors = frame.groupby("policy")["floor_eur"].first()
    for p, row in pol.iterrows():
        if floors[p] == floors[p]:
            assert cents(row["after"]) >= min(cents(floors[p]), cents(before_p[p]))
    reinforce = (frame["recommendation"] == "reinforce").to_numpy()
    assert (s["change"][reinforce] >= 0).all()
    if reinforce.any():
        assert cents(s["change"][reinforce].sum()) == cents(result.reinvested)
    assert (s["change"][~reinforce] <= 1e-9).all()
    even = result.even
    even_fits = not even.below_floor and not reinforce.any() and result.saving / total <= 0.1 and result.reinvested == 0
    if even_fits:
        assert result.strategic.projected_satisfied >= even.projected_satisfied - 1e-7


@settings(max_examples=40, deadline=None, derandomize=True)
@given(frame=commune(), saving=st.floats(0.01, 0.6))
def test_property_a_saving_is_refused_exactly_when_the_floors_cannot_allow_it(frame, saving):
    frame = frame.assign(recommendation="maintain")
    free = {"reduce": 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    budget_p = frame.groupby("policy")["budget_eur"].sum()
    floors = frame.groupby("policy")["floor_eur"].first().fillna(0)
    room = (budget_p - floors).clip(lower=0).sum()
    asked = round(budget_p.sum() * saving, 2)
    if abs(asked - room) < 0.05:
        return
    if asked > room:
        with pytest.raises(UnreachableSaving, match="plancher"):
            scenarios(frame, saving=saving, elasticity=0.3, max_cut=free)
    else:
        result = scenarios(frame, saving=saving, elasticity=0.3, max_cut=free)
        pol = result.strategic.policies
        assert (pol["below_floor"] == pol["below_floor_before"]).all()  # only those already below
        assert (pol.loc[pol["below_floor_before"], "after"] == pol.loc[pol["below_floor_before"], "before"]).all()


def test_when_the_even_cut_is_allowed_the_strategic_cut_projects_strictly_more():
    # No floor broken, no under-served service, a cut within every maximum: the even
    # cut is one of the plans the optimisation weighs, and services differ in what a
    # euro buys, so the optimum is strictly better.
    frame = allocations().assign(recommendation="maintain", floor_eur=0.0)
    result = scenarios(frame, saving=0.05, elasticity=0.3)
    assert result.even.below_floor == []
    assert result.strategic.projected_satisfied > result.even.projected_satisfied + 1e-4
