import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis.drivers import relative_importance
from analysis.ipa import QUADRANT_LABELS, bootstrap_ci, quadrants

from .synthetic import ATTRIBUTES, make_survey


def _series(values):
    return pd.Series(values, index=list("abcd"), dtype=float)


def test_four_quadrants_with_mean_crosshairs():
    # Martilla & James (1977): the four quadrants around data-centred crosshairs (Bacon, 2003).
    perf = _series([2.0, 4.0, 2.0, 4.0])
    imp = _series([0.4, 0.4, 0.1, 0.1])
    out = quadrants(perf, imp)
    assert out.attrs["crosshairs"] == (3.0, 0.25)
    assert list(out["quadrant"]) == ["concentrate_here", "keep_up", "low_priority", "possible_overkill"]
    assert set(out["quadrant"]) <= set(QUADRANT_LABELS)


def test_ties_go_to_the_high_side():
    perf = _series([3.0, 2.0, 4.0, 3.0])  # mean 3.0: a and d sit on the crosshair
    imp = _series([0.25, 0.5, 0.0, 0.25])  # mean 0.25: a and d sit on it too
    out = quadrants(perf, imp)
    assert out.loc["a", "quadrant"] == "keep_up"
    assert out.loc["d", "quadrant"] == "keep_up"
    assert out.loc["b", "quadrant"] == "concentrate_here"
    assert out.loc["c", "quadrant"] == "possible_overkill"


def test_uncertain_when_ci_crosses_a_crosshair():
    perf = _series([2.0, 4.0, 2.0, 4.0])
    imp = _series([0.4, 0.4, 0.1, 0.1])
    ci = pd.DataFrame(
        {
            "perf_low": [1.5, 2.5, 1.5, 3.0],  # b crosses x0 = 3; d starts on it: not crossing
            "perf_high": [2.5, 4.5, 2.9, 4.5],
            "imp_low": [0.3, 0.3, 0.05, 0.05],
            "imp_high": [0.5, 0.5, 0.26, 0.2],  # c crosses y0 = 0.25
        },
        index=list("abcd"),
    )
    out = quadrants(perf, imp, ci=ci)
    assert list(out["quadrant"]) == ["concentrate_here", "uncertain", "uncertain", "possible_overkill"]


def test_bad_intervals_never_classify_silently():
    perf = _series([2.0, 4.0, 2.0, 4.0])
    imp = _series([0.4, 0.4, 0.1, 0.1])
    ci = pd.DataFrame({"perf_low": perf - 0.1, "perf_high": perf + 0.1, "imp_low": imp - 0.01, "imp_high": imp + 0.01})
    ci.loc["a", "perf_low"] = np.nan
    assert list(quadrants(perf, imp, ci=ci)["quadrant"]) == [
        "uncertain",
        "keep_up",
        "low_priority",
        "possible_overkill",
    ]
    ci.loc["a", "perf_low"] = 2.5  # above perf_high
    with pytest.raises(ValueError, match="'a' has perf_low above perf_high"):
        quadrants(perf, imp, ci=ci)
    with pytest.raises(ValueError, match="performance of attribute 'b' is not finite"):
        quadrants(_series([2.0, np.inf, 2.0, 4.0]), imp)


def test_median_and_scale_centres():
    perf = _series([1.0, 2.0, 2.5, 5.0])
    imp = _series([0.1, 0.2, 0.3, 0.4])
    med = quadrants(perf, imp, centre="median")
    assert med.attrs["crosshairs"] == (2.25, 0.25)
    scale = quadrants(perf, imp, centre="scale", midpoint=3)
    assert scale.attrs["crosshairs"] == (3.0, 0.25)
    assert list(scale["quadrant"]) == ["low_priority", "low_priority", "concentrate_here", "keep_up"]
    both = quadrants(perf, imp, centre="scale", midpoint=(2.0, 0.15))
    assert both.attrs["crosshairs"] == (2.0, 0.15)
    with pytest.raises(ValueError, match="midpoint"):
        quadrants(perf, imp, centre="scale")


def test_mismatched_attributes():
    with pytest.raises(ValueError, match="'d'"):
        quadrants(_series([1, 2, 3, 4]), pd.Series([0.1, 0.2, 0.3, 0.4], index=list("abce")))


def test_bootstrap_ci_is_seeded_and_consistent():
    frame = make_survey(1500, seed=8)
    a = bootstrap_ci(frame, "overall", ATTRIBUTES, n_boot=100, seed=42)
    b = bootstrap_ci(frame, "overall", ATTRIBUTES, n_boot=100, seed=42)
    pd.testing.assert_frame_equal(a, b)
    shares = relative_importance(frame, "overall", ATTRIBUTES)["share"]
    assert_allclose(a["importance"].to_numpy(), shares.to_numpy())
    assert_allclose(a["performance"].to_numpy(), frame[ATTRIBUTES].mean().to_numpy())
    assert (a["perf_low"] <= a["performance"]).all() and (a["performance"] <= a["perf_high"]).all()
    assert (a["imp_low"] <= a["importance"]).all() and (a["importance"] <= a["imp_high"]).all()
    out = quadrants(a["performance"], a["importance"], ci=a)
    assert set(out["quadrant"]) <= set(QUADRANT_LABELS)


def test_bootstrap_replicate_matches_direct_computation():
    # The vectorised replicate equals LMG recomputed on the resampled rows.
    frame = make_survey(300, seed=9).dropna().reset_index(drop=True)
    rng = np.random.default_rng(0)
    from analysis.ipa import _replicate_counts

    counts = _replicate_counts(rng, 1, len(frame))[0]
    resampled = frame.loc[frame.index.repeat(counts.astype(int))]
    direct = relative_importance(resampled, "overall", ATTRIBUTES)["share"]
    weighted = relative_importance(frame.assign(c=counts)[counts > 0], "overall", ATTRIBUTES, weights="c")
    assert_allclose(direct.to_numpy(), weighted["share"].to_numpy(), rtol=1e-9)


def test_a_resample_with_a_constant_attribute_is_left_out_of_the_intervals():
    # One respondent of 15 rates "a" apart from the others: about a third of the
    # resamples leave them out, "a" is constant there and has no correlation. Those
    # resamples are dropped, and the intervals come from the others.
    frame = make_survey(15, seed=4).dropna().reset_index(drop=True)
    frame["a"] = 5.0
    frame.loc[0, "a"] = 1.0
    ci = bootstrap_ci(frame, "overall", ["a", *ATTRIBUTES[:2]], n_boot=200, seed=1)
    assert np.isfinite(ci[["perf_low", "perf_high", "imp_low", "imp_high"]].to_numpy()).all()
    assert (ci["imp_low"] <= ci["imp_high"]).all()
