import numpy as np
import pytest
from numpy.testing import assert_allclose

from analysis.estimates import mean, proportion
from analysis.segments import segment_gaps
from analysis.trends import adjust
from analysis.weighting import rake

from .synthetic import make_survey


def _frame(seed=0, n=3000):
    frame = make_survey(n, seed=seed)
    # The over-65s are clearly less satisfied; the other publics are not.
    old = frame["age_band"] == "65+"
    frame.loc[old, "overall"] = np.clip(frame.loc[old, "overall"] - 1, 1, 5)
    return frame


def test_segment_and_rest_match_domain_estimates():
    frame = _frame()
    table = segment_gaps(frame, "overall", "age_band", weights="weight")
    row = table.set_index("category").loc["65+"]
    seg = mean(frame.assign(overall=frame["overall"].where(frame["age_band"] == "65+")), "overall", weights="weight")
    rest = mean(frame.assign(overall=frame["overall"].where(frame["age_band"] != "65+")), "overall", weights="weight")
    assert_allclose([row["estimate"], row["se"]], [seg.value, seg.se])
    assert_allclose([row["rest_estimate"], row["rest_se"]], [rest.value, rest.se])
    # Disjoint domains of an unclustered sample are uncorrelated (Lumley, 2010, 5.2).
    assert_allclose(row["gap_se"], np.hypot(seg.se, rest.se))
    assert row["under_served"]
    assert not table.set_index("category").loc[["18-34", "35-64"], "under_served"].any()


def test_bh_across_all_categories_and_columns():
    frame = _frame(seed=1)
    table = segment_gaps(frame, "overall", ["age_band", "area", "sex"], success=[4, 5], weights="weight")
    assert len(table) == 3 + 3 + 2
    assert_allclose(table["p_adjusted"], adjust(table["p"])["p_adjusted"])
    row = table[(table["column"] == "age_band") & (table["category"] == "65+")].iloc[0]
    seg = proportion(frame[frame["age_band"] == "65+"], "overall", success=[4, 5], weights="weight")
    assert_allclose(row["estimate"], seg.value)


def test_small_segment_is_not_flagged_under_served():
    frame = _frame(seed=2)
    frame.loc[frame.index[:12], "area"] = "îlot"
    frame.loc[frame.index[:12], "overall"] = 1.0
    table = segment_gaps(frame, "overall", "area").set_index("category")
    assert table.loc["îlot", "flag"] == "suppressed"
    assert table.loc["îlot", "gap"] < 0 and table.loc["îlot", "p_adjusted"] < 0.05
    assert not table.loc["îlot", "under_served"]


def test_clustered_and_raked_segments():
    frame = _frame(seed=3)
    r = rake(frame, {"sex": {"F": 0.5, "M": 0.5}}, base_weights="weight")
    table = segment_gaps(frame, "overall", "age_band", weights=r, cluster="site")
    seg = mean(
        frame.assign(overall=frame["overall"].where(frame["age_band"] == "65+")), "overall", weights=r, cluster="site"
    )
    row = table.set_index("category").loc["65+"]
    assert_allclose([row["estimate"], row["se"]], [seg.value, seg.se])


def test_segment_bad_input():
    frame = _frame()
    with pytest.raises(ValueError, match="'quartier'"):
        segment_gaps(frame, "overall", "quartier")
    with pytest.raises(ValueError, match="'overall'"):
        segment_gaps(frame.assign(overall=frame["overall"] + 3), "overall", "sex", scale=(1, 5))
