import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from statsmodels.stats.proportion import proportion_confint

from analysis.estimates import (
    Estimate,
    SuppressionRules,
    grouped_means,
    grouped_proportions,
    mean,
    proportion,
    total,
)
from analysis.weighting import rake

from .synthetic import make_survey

MARGINS = {"age_band": {"18-34": 0.28, "35-64": 0.47, "65+": 0.25}, "sex": {"F": 0.52, "M": 0.48}}


def test_unweighted_mean_is_textbook(survey):
    # Cochran (1977), Sampling Techniques, eq. 2.12: SE of a mean = s / sqrt(n);
    # the with-replacement linearised SE reduces to it exactly.
    y = survey["overall"]
    est = mean(survey, "overall")
    assert isinstance(est, Estimate)
    assert_allclose(est.value, y.mean())
    assert_allclose(est.se, y.std(ddof=1) / np.sqrt(len(y)))
    assert_allclose(est.deff, 1.0)
    assert est.n == len(y) and est.n_eff == pytest.approx(len(y))
    assert est.flag == "ok" and est.df is None
    assert_allclose(est.ci_high - est.value, 1.959963984540054 * est.se)
    assert_allclose(est.rse, est.se / est.value)


def test_unweighted_proportion_and_wilson(survey):
    y = survey["overall"]
    est = proportion(survey, "overall", success=[4, 5], scale=(1, 5))
    p = y.isin([4, 5]).mean()
    n = len(y)
    assert_allclose(est.value, p)
    assert_allclose(est.se, np.sqrt(p * (1 - p) / (n - 1)))
    # Wilson (1927) on n* = p(1-p)/se^2 = n - 1 here; statsmodels' Wilson as the check.
    lo, hi = proportion_confint(p * (n - 1), n - 1, alpha=0.05, method="wilson")
    assert_allclose([est.ci_low, est.ci_high], [lo, hi], rtol=1e-10)


def test_ratings_stored_as_text_count_like_numbers(survey):
    as_text = survey.assign(overall=survey["overall"].astype(str).where(survey["overall"].notna()))
    numeric = proportion(survey, "overall", success=[4, 5], weights="weight")
    text = proportion(as_text, "overall", success=[4, 5], weights="weight")
    assert_allclose([text.value, text.se], [numeric.value, numeric.se])
    assert text.value > 0.2
    by_group = grouped_proportions(as_text, "overall", "sex", success=[4, 5])
    assert_allclose(by_group["value"], grouped_proportions(survey, "overall", "sex", success=[4, 5])["value"])
    with pytest.raises(ValueError, match="'overall' holds numbers"):
        proportion(survey, "overall", success=["4", "5"])


def test_total_unweighted(survey):
    est = total(survey, "overall")
    y = survey["overall"]
    assert_allclose(est.value, y.sum())
    # Hansen-Hurwitz: var = n/(n-1) sum (y_i - ybar)^2 = n s^2.
    assert_allclose(est.se, np.sqrt(len(y)) * y.std(ddof=1))


def test_missing_values_are_a_domain(survey):
    # Rows without a value stay in the design with zero influence (R survey's subset()).
    y = survey["courtesy"]
    w = survey["weight"]
    dom = y.notna()
    est = mean(survey, "courtesy", weights="weight")
    W = w[dom].sum()
    ybar = (w * y)[dom].sum() / W
    z = np.where(dom, w * (y - ybar) / W, 0.0)
    m = len(survey)
    assert_allclose(est.value, ybar)
    assert_allclose(est.se, np.sqrt(m / (m - 1) * np.sum((z - z.mean()) ** 2)))
    assert est.n == dom.sum()


def test_clustered_mean_uses_t_and_fpc(survey):
    est = mean(survey, "overall", weights="weight", cluster="site")
    with_fpc = mean(survey, "overall", weights="weight", cluster="site", fpc=48)
    assert est.df == 11
    assert_allclose(with_fpc.se, est.se * np.sqrt(1 - 12 / 48))
    half = est.ci_high - est.value
    from scipy import stats

    assert_allclose(half, stats.t.ppf(0.975, 11) * est.se)


def test_raked_domain_equals_full_frame_with_missing(survey):
    r = rake(survey, MARGINS, base_weights="weight")
    sub = survey[survey["area"] == "nord"]
    masked = survey.assign(overall=survey["overall"].where(survey["area"] == "nord"))
    a = mean(sub, "overall", weights=r)
    b = mean(masked, "overall", weights=r)
    assert_allclose([a.value, a.se], [b.value, b.se])


def test_calibrated_se_is_smaller_for_a_raking_variable(survey):
    # A proportion of a raking category is fixed by calibration: its SE vanishes.
    r = rake(survey, MARGINS, base_weights="weight")
    est = proportion(survey, "sex", success=["F"], weights=r)
    assert_allclose(est.value, 0.52)
    assert est.se < 1e-10


def test_grouped_means_equal_mean_per_group():
    frame = make_survey(3000, seed=3)
    frame["month"] = np.random.default_rng(3).integers(1, 4, len(frame))
    table = grouped_means(frame, "courtesy", ["area", "month"], weights="weight")
    assert len(table) == 9
    for row in table.itertuples():
        part = frame[(frame["area"] == row.area) & (frame["month"] == row.month)]
        est = mean(part, "courtesy", weights="weight")
        assert_allclose(
            [row.value, row.se, row.ci_low, row.ci_high, row.n_eff, row.deff, row.rse],
            [est.value, est.se, est.ci_low, est.ci_high, est.n_eff, est.deff, est.rse],
            rtol=1e-9,
        )
        assert row.n == est.n and row.flag == est.flag


def test_grouped_proportions_equal_proportion_per_group():
    frame = make_survey(2000, seed=4)
    table = grouped_proportions(frame, "overall", "age_band", success=[4, 5], weights="weight")
    for row in table.itertuples():
        est = proportion(frame[frame["age_band"] == row.age_band], "overall", success=[4, 5], weights="weight")
        assert_allclose(
            [row.value, row.se, row.ci_low, row.ci_high], [est.value, est.se, est.ci_low, est.ci_high], rtol=1e-9
        )


def test_suppression_rules_defaults():
    rules = SuppressionRules()
    assert rules.flag(9, 9, 0.01) == "hidden"
    assert rules.flag(25, 25, 0.01) == "suppressed"
    assert rules.flag(100, 29, 0.01) == "suppressed"
    assert rules.flag(45, 45, 0.01) == "caution"
    assert rules.flag(200, 150, 0.35) == "caution"
    assert rules.flag(200, 150, 0.05) == "ok"
    assert list(rules.flags([5, 40, 500], [5, 40, 500], [0.1, 0.1, 0.1])) == ["hidden", "caution", "ok"]


def test_flag_of_a_small_domain(survey):
    est = mean(survey.iloc[:8], "overall")
    assert est.flag == "hidden" and not est.publishable
    strict = SuppressionRules(hide_below=5, min_n=5, min_n_eff=5, caution_n=5)
    assert mean(survey.iloc[:8], "overall", rules=strict).flag in ("ok", "caution")


def test_inputs_not_mutated(survey):
    before = survey.copy()
    r = rake(survey, MARGINS, base_weights="weight")
    mean(survey, "overall", weights=r, cluster="site")
    proportion(survey, "overall", success=[4, 5], weights="weight")
    grouped_means(survey, "overall", "area")
    pd.testing.assert_frame_equal(survey, before)


def test_bad_inputs(survey):
    with pytest.raises(ValueError, match="'nope'"):
        mean(survey, "nope")
    bad = survey.assign(overall=survey["overall"].replace(5.0, 6.0))
    with pytest.raises(ValueError, match="'overall'"):
        proportion(bad, "overall", success=[4, 5], scale=(1, 5))
    with pytest.raises(ValueError, match="'overall'"):
        mean(bad, "overall", scale=(1, 5))
    with pytest.raises(ValueError, match="'overall'"):
        proportion(survey, "overall", success=[6], scale=(1, 5))
    with pytest.raises(ValueError, match="'site_x'"):
        mean(survey, "overall", cluster="site_x")
    with pytest.raises(ValueError, match="'weight'"):
        mean(survey.assign(weight=-1.0), "overall", weights="weight")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(1e-3, 1e3))
def test_property_weight_scale_invariance(seed, factor):
    frame = make_survey(150, seed=seed)
    scaled = frame.assign(weight=frame["weight"] * factor)
    for fn, kw in ((mean, {}), (proportion, {"success": [4, 5]})):
        a = fn(frame, "courtesy", weights="weight", cluster="site", **kw)
        b = fn(scaled, "courtesy", weights="weight", cluster="site", **kw)
        assert_allclose(
            [a.value, a.se, a.ci_low, a.ci_high, a.n_eff], [b.value, b.se, b.ci_low, b.ci_high, b.n_eff], rtol=1e-9
        )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_property_row_permutation_invariance(seed):
    frame = make_survey(150, seed=seed)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    r1 = rake(frame, MARGINS, base_weights="weight")
    r2 = rake(shuffled, MARGINS, base_weights="weight")
    a = mean(frame, "clarity", weights=r1, cluster="site")
    b = mean(shuffled, "clarity", weights=r2, cluster="site")
    assert_allclose([a.value, a.se], [b.value, b.se], rtol=1e-9)
    pa = proportion(frame, "clarity", success=[4, 5], weights="weight")
    pb = proportion(shuffled, "clarity", success=[4, 5], weights="weight")
    assert_allclose([pa.value, pa.se], [pb.value, pb.se], rtol=1e-9)


def test_a_total_after_raking_to_shares_is_refused(survey):
    raked = rake(survey, MARGINS)
    assert raked.from_shares
    with pytest.raises(ValueError, match="needs margins given as population totals"):
        total(survey, "overall", weights=raked)
    as_totals = {k: {c: v * 10_000 for c, v in cats.items()} for k, cats in MARGINS.items()}
    assert total(survey, "overall", weights=rake(survey, as_totals)).value > 0


def test_levels_are_fractions(survey):
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        mean(survey, "overall", level=95)
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        proportion(survey, "overall", success=[4, 5], level=95)


def test_clustered_proportion_interval_uses_the_degrees_of_freedom(survey):
    # Korn & Graubard (1998): n* shrinks by (z / t_df)^2 with few PSUs.
    from scipy import stats

    from analysis.estimates import wilson_interval

    est = proportion(survey, "overall", success=[4, 5], cluster="site")
    assert est.df is not None and est.df < 30
    n_star = est.value * (1 - est.value) / est.se**2
    z, t = stats.norm.ppf(0.975), stats.t.ppf(0.975, est.df)
    assert_allclose([est.ci_low, est.ci_high], wilson_interval(est.value, n_star * (z / t) ** 2))
    narrow = wilson_interval(est.value, n_star)
    assert est.ci_high - est.ci_low > narrow[1] - narrow[0]
