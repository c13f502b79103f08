import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from analysis.weighting import rake

from .synthetic import make_survey

MARGINS = {
    "age_band": {"18-34": 0.28, "35-64": 0.47, "65+": 0.25},
    "sex": {"F": 0.52, "M": 0.48},
}


def _weighted_margin(frame, weights, column):
    return weights.groupby(frame[column]).sum()


def test_rake_reproduces_shares_and_keeps_total(survey):
    r = rake(survey, MARGINS, base_weights="weight")
    total = survey["weight"].sum()
    for column, cats in MARGINS.items():
        got = _weighted_margin(survey, r.weights, column)
        for cat, share in cats.items():
            assert_allclose(got[cat], share * total, rtol=1e-9)
    assert r.weights.index.equals(survey.index)
    assert r.converged and r.iterations >= 1
    assert_allclose(r.n_eff, r.weights.sum() ** 2 / (r.weights**2).sum())
    assert_allclose(r.deff, len(survey) / r.n_eff)
    assert r.min_weight == r.weights.min() and r.max_weight == r.weights.max()


def test_rake_does_not_mutate(survey):
    before = survey.copy()
    rake(survey, MARGINS, base_weights="weight")
    pd.testing.assert_frame_equal(survey, before)


def test_rake_totals(survey):
    margins = {"sex": {"F": 5200, "M": 4800}, "area": {"centre": 3000, "nord": 3000, "sud": 4000}}
    r = rake(survey, margins)
    assert_allclose(r.weights.sum(), 10_000, rtol=1e-9)
    assert_allclose(_weighted_margin(survey, r.weights, "area")["sud"], 4000, rtol=1e-9)


TRIM_MARGINS = {
    "age_band": {"18-34": 0.4, "35-64": 0.4, "65+": 0.2},
    "sex": {"F": 0.6, "M": 0.4},
    "area": {"centre": 0.2, "nord": 0.4, "sud": 0.4},
}


def test_trimming_bounds_and_margins(survey):
    untrimmed = rake(survey, TRIM_MARGINS)
    assert untrimmed.ratio.max() > 1.8 and untrimmed.ratio.min() < 0.5
    r = rake(survey, TRIM_MARGINS, trim=(0.5, 1.8))
    assert r.trimmed
    assert r.ratio.max() <= 1.8 * (1 + 1e-12) and r.ratio.min() >= 0.5 * (1 - 1e-12)
    for column, cats in TRIM_MARGINS.items():
        got = _weighted_margin(survey, r.weights, column)
        for cat, share in cats.items():
            assert_allclose(got[cat], share * len(survey), rtol=1e-8)


def test_infeasible_trim_bounds(survey):
    # No weights within (0.7, 1.5) of the base weight meet these margins (checked by LP).
    with pytest.raises(ValueError, match="trim bounds"):
        rake(survey, TRIM_MARGINS, trim=(0.7, 1.5), max_iter=200)


def test_margin_category_absent_from_sample(survey):
    margins = {"age_band": {"18-34": 0.2, "35-64": 0.4, "65+": 0.3, "15-17": 0.1}}
    with pytest.raises(ValueError, match="age_band") as info:
        rake(survey, margins)
    assert "15-17" in str(info.value)


def test_sample_category_absent_from_margins(survey):
    margins = {"area": {"centre": 0.5, "nord": 0.5}}
    with pytest.raises(ValueError, match="area") as info:
        rake(survey, margins)
    assert "sud" in str(info.value)


def test_margins_with_different_totals(survey):
    margins = {"sex": {"F": 520, "M": 480}, "area": {"centre": 300, "nord": 300, "sud": 500}}
    with pytest.raises(ValueError, match="different totals") as info:
        rake(survey, margins)
    assert "sex" in str(info.value) and "area" in str(info.value)


def test_missing_value_in_raking_column(survey):
    frame = survey.assign(sex=survey["sex"].where(survey.index != 5))
    with pytest.raises(ValueError, match="'sex'"):
        rake(frame, {"sex": {"F": 0.5, "M": 0.5}})


def test_incompatible_margins_do_not_pass_silently():
    # Everyone young is a man and everyone old a woman: 80% men and 50% young cannot both hold.
    frame = pd.DataFrame({"age": ["y"] * 5 + ["o"] * 5, "sex": ["M"] * 5 + ["F"] * 5})
    margins = {"age": {"y": 0.5, "o": 0.5}, "sex": {"M": 0.8, "F": 0.2}}
    with pytest.raises(ValueError, match="did not converge"):
        rake(frame, margins, max_iter=50)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    young=st.floats(0.1, 0.6),
    women=st.floats(0.3, 0.7),
    centre=st.floats(0.1, 0.5),
)
def test_property_raked_weights_reproduce_margins(seed, young, women, centre):
    frame = make_survey(200, seed=seed)
    margins = {
        "age_band": {"18-34": young, "35-64": (1 - young) * 0.6, "65+": (1 - young) * 0.4},
        "sex": {"F": women, "M": 1 - women},
        "area": {"centre": centre, "nord": (1 - centre) / 2, "sud": (1 - centre) / 2},
    }
    r = rake(frame, margins, base_weights="weight")
    total = frame["weight"].sum()
    for column, cats in margins.items():
        got = _weighted_margin(frame, r.weights, column)
        for cat, share in cats.items():
            assert abs(got[cat] / (share * total) - 1) < 1e-8
