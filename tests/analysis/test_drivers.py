from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from statsmodels.miscmodels.ordinal_model import OrderedModel

from analysis.drivers import ordinal_logit, penalty_reward, relative_importance

from .synthetic import ATTRIBUTES, make_survey


def _random_frame(n=300, p=6, seed=0):
    rng = np.random.default_rng(seed)
    cov = 0.4 * np.ones((p, p)) + 0.6 * np.eye(p)
    x = rng.multivariate_normal(np.zeros(p), cov, size=n)
    y = x @ rng.uniform(0, 1, p) + rng.normal(0, 1.5, n)
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(p)])
    frame["y"] = y
    frame["w"] = rng.uniform(0.3, 3.0, n)
    return frame


def _brute_force_lmg(frame, outcome, drivers, weights=None):
    """Shapley value of R² by refitting (W)LS on every subset (Lindeman et al., 1980)."""
    p = len(drivers)
    y = frame[outcome].to_numpy()
    w = np.ones(len(frame)) if weights is None else frame[weights].to_numpy()
    r2 = {(): 0.0}
    for k in range(1, p + 1):
        for s in combinations(range(p), k):
            x = sm.add_constant(frame[[drivers[j] for j in s]].to_numpy())
            r2[s] = sm.WLS(y, x, weights=w).fit().rsquared
    out = np.zeros(p)
    for j in range(p):
        others = [i for i in range(p) if i != j]
        for k in range(p):
            for s in combinations(others, k):
                weight = factorial(k) * factorial(p - k - 1) / factorial(p)
                out[j] += weight * (r2[tuple(sorted(s + (j,)))] - r2[s])
    return out


def test_lmg_matches_brute_force_refits():
    frame = _random_frame()
    drivers = [f"x{j}" for j in range(6)]
    result = relative_importance(frame, "y", drivers)
    assert_allclose(result["importance"].to_numpy(), _brute_force_lmg(frame, "y", drivers), rtol=1e-9)
    full = sm.OLS(frame["y"], sm.add_constant(frame[drivers])).fit().rsquared
    assert_allclose(result.attrs["r2"], full, rtol=1e-10)


def test_weighted_lmg_matches_brute_force_wls():
    frame = _random_frame(seed=1)
    drivers = [f"x{j}" for j in range(5)]
    result = relative_importance(frame, "y", drivers, weights="w")
    assert_allclose(result["importance"].to_numpy(), _brute_force_lmg(frame, "y", drivers, "w"), rtol=1e-9)


def test_relative_weights_sum_to_r2_and_track_lmg():
    frame = _random_frame(seed=2)
    drivers = [f"x{j}" for j in range(6)]
    rw = relative_importance(frame, "y", drivers, method="relative_weights")
    lmg = relative_importance(frame, "y", drivers)
    assert_allclose(rw["importance"].sum(), lmg.attrs["r2"], rtol=1e-10)
    assert (rw["importance"] >= 0).all()
    # Johnson (2000) reports relative weights within a few points of the LMG shares.
    assert np.max(np.abs(rw["share"] - lmg["share"])) < 0.05


def test_more_than_fifteen_drivers():
    frame = _random_frame(n=200, p=16, seed=3)
    drivers = [f"x{j}" for j in range(16)]
    with pytest.raises(ValueError, match="relative_weights"):
        relative_importance(frame, "y", drivers)
    rw = relative_importance(frame, "y", drivers, method="relative_weights")
    assert_allclose(rw["share"].sum(), 1.0)


def test_non_concerne_is_dropped_listwise(survey):
    result = relative_importance(survey, "overall", ATTRIBUTES)
    complete = survey[["overall", *ATTRIBUTES]].dropna()
    assert result.attrs["n"] == len(complete)
    assert_allclose(
        result["importance"].to_numpy(), relative_importance(complete, "overall", ATTRIBUTES)["importance"].to_numpy()
    )
    assert list(result.index) == ATTRIBUTES


def test_driver_errors(survey):
    with pytest.raises(ValueError, match="'courtesy'"):
        relative_importance(survey.assign(courtesy=3.0), "overall", ATTRIBUTES)
    with pytest.raises(ValueError, match="'overall_x'"):
        relative_importance(survey, "overall_x", ATTRIBUTES)
    with pytest.raises(ValueError, match="6 are needed|at least 6"):
        relative_importance(survey.dropna().head(5), "overall", ATTRIBUTES)
    with pytest.raises(ValueError, match="'courtesy'"):
        ordinal_logit(survey.assign(courtesy=2.0), "overall", ATTRIBUTES)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.integers(1, 7), n=st.integers(15, 80))
def test_property_lmg_nonnegative_and_sums_to_r2(seed, p, n):
    frame = _random_frame(n=n, p=p, seed=seed)
    drivers = [f"x{j}" for j in range(p)]
    result = relative_importance(frame, "y", drivers, weights="w")
    assert (result["importance"] >= -1e-12).all()
    full = sm.WLS(frame["y"], sm.add_constant(frame[drivers]), weights=frame["w"]).fit().rsquared
    assert_allclose(result["importance"].sum(), full, rtol=1e-8, atol=1e-12)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    again = relative_importance(shuffled, "y", drivers, weights="w")
    assert_allclose(again["importance"].to_numpy(), result["importance"].to_numpy(), rtol=1e-9, atol=1e-13)


def test_ordinal_logit_matches_statsmodels():
    frame = make_survey(800, seed=5).dropna()
    result = ordinal_logit(frame, "overall", ATTRIBUTES)
    endog = pd.Series(pd.Categorical(frame["overall"], ordered=True))
    model = OrderedModel(endog.to_numpy(), frame[ATTRIBUTES].to_numpy(), distr="logit")
    fit = model.fit(method="bfgs", maxiter=2000, disp=False)
    assert_allclose(result.coef.to_numpy(), fit.params[:4], rtol=1e-6)
    assert_allclose(result.se.to_numpy(), fit.bse[:4], rtol=1e-6)
    assert_allclose(result.cutpoints.to_numpy(), model.transform_threshold_params(fit.params)[1:-1], rtol=1e-6)
    assert np.all(np.diff(result.cutpoints.to_numpy()) > 0)
    assert_allclose(result.deviance, -2 * fit.llf, rtol=1e-8)
    assert_allclose(result.odds_ratios, np.exp(result.coef))
    assert result.converged and not result.weighted and result.n == len(frame)


def test_weighted_ordinal_logit_equals_expanded_data():
    # Integer weights give the same pseudo-ML estimates as duplicating rows.
    frame = make_survey(400, seed=6).dropna()
    frame["k"] = np.random.default_rng(6).integers(1, 4, len(frame)).astype(float)
    weighted = ordinal_logit(frame, "overall", ATTRIBUTES, weights="k")
    expanded = frame.loc[frame.index.repeat(frame["k"].astype(int))].reset_index(drop=True)
    plain = ordinal_logit(expanded, "overall", ATTRIBUTES)
    assert_allclose(weighted.coef.to_numpy(), plain.coef.to_numpy(), rtol=1e-4, atol=1e-6)
    assert_allclose(weighted.cutpoints.to_numpy(), plain.cutpoints.to_numpy(), rtol=1e-4, atol=1e-6)
    assert weighted.weighted and (weighted.se > 0).all()


def test_ordinal_logit_outcome_outside_scale(survey):
    bad = survey.assign(overall=survey["overall"].replace(1.0, 0.0))
    with pytest.raises(ValueError, match="'overall'"):
        ordinal_logit(bad, "overall", ATTRIBUTES)


def test_penalty_reward_classifies_asymmetric_effects():
    # Matzler et al. (2004): a basic factor hurts when poor and adds little when excellent;
    # an excitement factor the reverse.
    rng = np.random.default_rng(7)
    n = 4000
    basic = rng.integers(1, 6, n)
    excite = rng.integers(1, 6, n)
    linear = rng.integers(1, 6, n)
    y = (
        3
        - 1.0 * np.isin(basic, [1, 2])
        + 0.1 * (basic == 5)
        + 1.0 * (excite == 5)
        - 0.1 * np.isin(excite, [1, 2])
        + 0.5 * (linear == 5)
        - 0.5 * np.isin(linear, [1, 2])
        + rng.normal(0, 0.5, n)
    )
    frame = pd.DataFrame({"basic": basic, "excite": excite, "linear": linear, "overall": np.clip(np.round(y), 1, 5)})
    result = penalty_reward(frame, "overall", ["basic", "excite", "linear"])
    assert result.loc["basic", "category"] == "basic"
    assert result.loc["excite", "category"] == "excitement"
    assert result.loc["linear", "category"] == "performance"
    r = result.loc["basic"]
    assert_allclose(r["ia"], (r["reward"] - r["penalty"]) / (r["reward"] + r["penalty"]))


def test_penalty_reward_outside_scale(survey):
    bad = survey.assign(clarity=survey["clarity"].replace(5.0, 7.0))
    with pytest.raises(ValueError, match="'clarity'"):
        penalty_reward(bad, "overall", ATTRIBUTES)


def test_grouped_importance_equals_relative_importance_per_group():
    from analysis.drivers import grouped_importance

    frame = make_survey(2400, seed=10)
    frame.loc[frame["area"] == "sud", "clarity"] = 3.0  # a constant driver in one group
    table = grouped_importance(frame, "overall", ATTRIBUTES, "area", weights="weight")
    for area in ("centre", "nord"):
        part = table[table["area"] == area].set_index("driver")
        one = relative_importance(frame[frame["area"] == area], "overall", ATTRIBUTES, weights="weight")
        assert_allclose(part["importance"].to_numpy(), one["importance"].to_numpy(), rtol=1e-9)
        assert part["n"].iloc[0] == one.attrs["n"]
    assert table.loc[table["area"] == "sud", "importance"].isna().all()
