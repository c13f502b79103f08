import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats

from analysis.estimates import Estimate
from analysis.trends import adjust, compare_periods, trend, trends


def _est(value, se):
    return Estimate(value, se, value - 2 * se, value + 2 * se, 100, 100.0, 1.0, "ok", se / value)


def test_compare_periods():
    change = compare_periods(_est(0.60, 0.03), _est(0.68, 0.04))
    assert_allclose(change.delta, 0.08)
    assert_allclose(change.se, 0.05)
    assert_allclose(change.z, 1.6)
    assert_allclose(change.p, 2 * stats.norm.sf(1.6))
    assert_allclose([change.ci_low, change.ci_high], [0.08 - 1.959964 * 0.05, 0.08 + 1.959964 * 0.05], rtol=1e-6)


def _periods(seed=0, t=8, slope=0.02):
    rng = np.random.default_rng(seed)
    se = rng.uniform(0.03, 0.08, t)
    return pd.DataFrame({"period": np.arange(t), "value": 3 + slope * np.arange(t) + rng.normal(0, se), "se": se})


def test_trend_is_wls_with_inverse_variance_weights():
    # Extra noise between periods (scale > 1): statsmodels' WLS with its estimated scale.
    frame = _periods()
    frame["value"] += np.random.default_rng(5).normal(0, 0.15, len(frame))
    result = trend(frame)
    fit = sm.WLS(frame["value"], sm.add_constant(frame["period"]), weights=1 / frame["se"] ** 2).fit()
    assert fit.scale > 1
    assert_allclose([result.slope, result.se, result.p], [fit.params.iloc[1], fit.bse.iloc[1], fit.pvalues.iloc[1]])
    lo, hi = fit.conf_int().iloc[1]
    assert_allclose([result.ci_low, result.ci_high], [lo, hi])
    assert result.n_periods == 8 and result.df == 6


def test_trend_is_never_more_precise_than_sampling_error():
    # Periods closer to the line than their SEs imply (scale < 1): the scale is floored at 1.
    frame = _periods()
    frame["value"] = 3 + 0.02 * frame["period"] + 0.1 * (frame["value"] - 3 - 0.02 * frame["period"])
    fit = sm.WLS(frame["value"], sm.add_constant(frame["period"]), weights=1 / frame["se"] ** 2).fit()
    assert fit.scale < 1
    result = trend(frame)
    assert_allclose(result.se, trend(frame, known_variance=True).se)
    assert result.df == 6
    assert_allclose(result.p, 2 * stats.t.sf(abs(result.slope / result.se), 6))


def test_trend_known_variance():
    frame = _periods(seed=1)
    result = trend(frame, known_variance=True)
    w = 1 / frame["se"] ** 2
    xc = frame["period"] - np.average(frame["period"], weights=w)
    assert_allclose(result.se, 1 / np.sqrt(np.sum(w * xc**2)))
    assert result.df is None


def test_trends_vectorised_equals_trend_per_series():
    frames = [_periods(seed=s, slope=s / 50).assign(service=f"s{s}") for s in range(6)]
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[3, "value"] = np.nan  # a suppressed period is dropped
    table = trends(frame, by="service")
    for row in table.itertuples():
        one = trend(frame[frame["service"] == row.service])
        assert_allclose(
            [row.slope, row.se, row.ci_low, row.ci_high, row.p],
            [one.slope, one.se, one.ci_low, one.ci_high, one.p],
            rtol=1e-8,
        )
        assert row.n_periods == one.n_periods
    assert_allclose(table["p_adjusted"], adjust(table["p"])["p_adjusted"])
    assert table["significant"].dtype == bool


def test_adjust_keeps_missing_values():
    out = adjust(pd.Series([0.01, np.nan, 0.04], index=["a", "b", "c"]))
    assert np.isnan(out.loc["b", "p_adjusted"])
    assert_allclose(out.loc[["a", "c"], "p_adjusted"], [0.02, 0.04])
    assert not out.loc["b", "reject"]


def test_trend_bad_input():
    with pytest.raises(ValueError, match="'se'"):
        trend(_periods().drop(columns="se"))
    with pytest.raises(ValueError, match="at least 3"):
        trend(_periods(t=2))
    with pytest.raises(ValueError, match="positive"):
        trend(_periods().assign(se=0.0))


def test_bad_period_tables_are_refused():
    frame = _periods()
    frame.loc[2, "se"] = np.inf
    with pytest.raises(ValueError, match="'se' must be positive and finite"):
        trend(frame)
    doubled = pd.concat([_periods().assign(service="a"), _periods().assign(service="b")])
    with pytest.raises(ValueError, match="index has duplicates"):
        trends(doubled, by="service")
    assert trends(doubled.reset_index(drop=True), by="service")["n_periods"].tolist() == [8, 8]
