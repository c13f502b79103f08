"""Cell-level estimates equal the respondent-level functions they stand for.

The cells are built here from a synthetic respondents' frame by plain pandas sums (the
read model builds them in the database); every estimate from the cells must equal what
analysis.estimates, analysis.weighting, analysis.segments and analysis.drivers compute
on the respondents, to rounding.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from analysis import cells as ce
from analysis.drivers import relative_importance
from analysis.estimates import mean, proportion
from analysis.scales import SATISFIED
from analysis.segments import segment_gaps
from analysis.weighting import rake

DRIVERS = ["courtesy", "waiting_time", "clarity"]
KEYS = ["overall", *DRIVERS]
MARGINS = {
    "age_band": {"young": 0.3, "middle": 0.45, "old": 0.25},
    "sex": {"f": 0.52, "m": 0.48},
    "area": {"centre": 0.5, "nord": 0.3, "sud": 0.2},
}
RTOL = 1e-9


def make_respondents(n=4000, seed=0):
    """Respondents with missing profile answers, an area outside the margins, sites,
    months, "non concerné" (NaN) answers, and an older public less satisfied."""
    rng = np.random.default_rng(seed)

    def profile(values, p, missing):
        out = pd.Series(rng.choice(values, n, p=p), dtype="string")
        return out.mask(rng.random(n) < missing)

    frame = pd.DataFrame(
        {
            "period": pd.PeriodIndex(pd.period_range("2024-01", periods=9, freq="M")[rng.integers(0, 9, n)]),
            "site_id": pd.array(rng.choice([1, 2, None], n, p=[0.5, 0.3, 0.2]), dtype="Int64"),
            "age_band": profile(["young", "middle", "old"], [0.4, 0.45, 0.15], 0.05),
            "sex": profile(["f", "m"], [0.6, 0.4], 0.04),
            "area": profile(["centre", "nord", "sud", "outside"], [0.5, 0.25, 0.2, 0.05], 0.03),
            "frequency": profile(["first", "regular"], [0.3, 0.7], 0.05),
        }
    )
    latent = rng.normal(size=n)
    for k, key in enumerate(DRIVERS):
        score = np.clip(np.round(3.4 + 0.8 * latent + rng.normal(0, 0.9 + 0.1 * k, n)), 1, 5)
        score[rng.random(n) < 0.06] = np.nan
        frame[key] = score
    drive = np.nan_to_num(frame[DRIVERS].to_numpy() - 3) @ np.array([0.5, 0.3, 0.15])
    frame["overall"] = np.clip(
        np.round(
            3.5 + drive - 0.8 * (frame["age_band"] == "old").fillna(False).to_numpy(float) + rng.normal(0, 0.7, n)
        ),
        1,
        5,
    )
    return frame


def cells_of(frame):
    """The read model's cells of a respondents' frame, by plain sums."""
    level = ["period", "site_id", *ce.PROFILE]
    parts = [frame.groupby(level, dropna=False, observed=True).size().rename("n").reset_index()]
    parts[0] = parts[0].assign(question_key=ce.RESPONSES, total=0.0, total_sq=0.0, satisfied=0)
    for key in KEYS:
        rows = frame[frame[key].notna()]
        values = rows[key]
        grouped = (
            pd.DataFrame(
                {"n": 1, "total": values, "total_sq": values**2, "satisfied": values.isin(SATISFIED).astype(int)}
            )
            .groupby([rows[c] for c in level], dropna=False, observed=True)
            .sum()
            .reset_index()
        )
        parts.append(grouped.assign(question_key=key))
    return pd.concat(parts, ignore_index=True)


def moments_of(frame):
    """The read model's moments of a respondents' frame."""
    level = ["period", "site_id", *ce.PROFILE]
    complete = frame.dropna(subset=KEYS)
    records = []
    for group, rows in complete.groupby(level, dropna=False, observed=True):
        x = np.column_stack([np.ones(len(rows)), rows[KEYS].to_numpy(dtype=float)])
        m = x.T @ x
        records.append((*group, tuple(KEYS), len(rows), m[np.triu_indices(len(KEYS) + 1)]))
    return pd.DataFrame(records, columns=[*level, "variables", "n", "moments"])


@pytest.fixture(scope="module")
def respondents():
    return make_respondents()


@pytest.fixture(scope="module")
def raked(respondents):
    """The respondents raked to the margins, and the same raking on cells."""
    recoded, margins = ce.complete_margins(respondents, MARGINS)
    on_units = rake(recoded, margins)
    on_cells = ce.rake_cells(cells_of(respondents), MARGINS)
    return recoded, on_units, on_cells


def as_tuple(est):
    return [est.value, est.se, est.ci_low, est.ci_high, est.n, est.n_eff, est.deff]


def test_raking_on_cells_gives_each_respondent_the_weight_raking_on_respondents_gives(respondents, raked):
    recoded, on_units, on_cells = raked
    assert set(on_cells.margins["age_band"]) == {"young", "middle", "old", ce.UNKNOWN}
    assert_allclose(on_cells.weights_for(respondents), on_units.weights.to_numpy(), rtol=RTOL)
    # The unknown group keeps its sample share; the known ones take the margins' proportions.
    unknown = respondents["age_band"].isna().mean()
    assert on_cells.margins["age_band"][ce.UNKNOWN] == pytest.approx(unknown)
    assert sum(on_cells.margins["sex"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("statistic", ["mean", "satisfied"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    ("by", "grain"), [((), "month"), ("period", "month"), ("period", "quarter"), ("site_id", "month"), ("sex", "month")]
)
def test_group_estimates_equal_the_respondent_level_ones(respondents, raked, statistic, weighted, by, grain):
    recoded, on_units, on_cells = raked
    frame = ce.with_period(respondents, grain)
    cells = ce.with_period(cells_of(respondents), grain)
    for key in ("overall", "waiting_time"):
        result = ce.estimates(cells, key, by=by, statistic=statistic, raking=on_cells if weighted else None)
        groups = [()] if not by else [(g,) for g in sorted(frame[by].dropna().unique())]
        assert len(result.table) == len(groups)
        for group in groups:
            inside = np.ones(len(frame), dtype=bool) if not group else (frame[by] == group[0]).fillna(False).to_numpy()
            # A domain of the scope: the whole sample, the value missing outside the group.
            domain = frame.assign(**{key: frame[key].where(inside)})
            weights = on_units if weighted else None
            if statistic == "mean":
                expected = mean(domain, key, weights=weights)
            else:
                expected = proportion(domain, key, success=list(SATISFIED), weights=weights)
            got = result.get(*group)
            assert_allclose(as_tuple(got), as_tuple(expected), rtol=RTOL)
            assert got.flag == expected.flag


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("statistic", ["mean", "satisfied"])
def test_segment_gaps_equal_the_respondent_level_ones(respondents, raked, weighted, statistic):
    _, on_units, on_cells = raked
    by = ["age_band", "sex", "frequency"]
    success = list(SATISFIED) if statistic == "satisfied" else None
    expected = segment_gaps(respondents, "overall", by, weights=on_units if weighted else None, success=success)
    got = ce.segment_gaps(
        cells_of(respondents), "overall", by, statistic=statistic, raking=on_cells if weighted else None
    )
    assert list(got.columns) == list(expected.columns)
    assert got[["column", "category", "flag", "under_served"]].equals(
        expected[["column", "category", "flag", "under_served"]]
    )
    numbers = ["n", "n_eff", "estimate", "se", "rest_estimate", "rest_se", "gap", "gap_se", "ci_low", "p"]
    assert_allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=RTOL)
    assert got.set_index(["column", "category"]).loc[("age_band", "old"), "under_served"]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("method", ["lmg", "relative_weights"])
def test_relative_importance_from_moments_equals_the_respondent_level_one(respondents, raked, weighted, method):
    _, on_units, on_cells = raked
    drivers = ["clarity", "courtesy", "waiting_time"]  # another order than stored
    expected = relative_importance(
        respondents, "overall", drivers, method=method, weights=on_units.weights if weighted else None
    )
    got = ce.relative_importance(
        moments_of(respondents), "overall", drivers, method=method, raking=on_cells if weighted else None
    )
    assert list(got.index) == drivers
    assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=RTOL)
    assert got.attrs["n"] == expected.attrs["n"]
    assert got.attrs["r2"] == pytest.approx(expected.attrs["r2"], rel=RTOL)


def test_too_few_rows_and_constant_drivers_are_refused_as_on_respondents(respondents):
    few = respondents.dropna(subset=KEYS).head(4)
    with pytest.raises(ValueError, match="only 4 complete rows"):
        ce.relative_importance(moments_of(few), "overall", DRIVERS)
    flat = respondents.assign(clarity=respondents["clarity"].where(respondents["clarity"].isna(), 3.0))
    with pytest.raises(ValueError, match="driver 'clarity' is constant"):
        ce.relative_importance(moments_of(flat), "overall", DRIVERS)


def test_a_margin_category_without_respondent_is_an_error(respondents):
    cells = cells_of(respondents[respondents["age_band"] != "old"])
    with pytest.raises(ValueError, match="'old' has a target but no respondent"):
        ce.rake_cells(cells, MARGINS)


def test_suppression_follows_the_project_rules(respondents):
    small = cells_of(respondents.head(25))
    est = ce.estimate(small, "overall")
    assert est.n <= 25 and est.flag in ("hidden", "suppressed")
    assert not est.publishable


def test_periods_at_a_coarser_grain():
    cells = pd.DataFrame({"period": pd.PeriodIndex(["2024-01", "2024-05", "2025-02"], freq="M")})
    assert list(ce.with_period(cells, "quarter")["period"].astype(str)) == ["2024Q1", "2024Q2", "2025Q1"]
    assert list(ce.with_period(cells, "year")["period"].astype(str)) == ["2024", "2024", "2025"]
    with pytest.raises(ValueError, match="grain"):
        ce.with_period(cells, "week")


def test_a_grouping_column_without_any_value_gives_no_group(respondents):
    cells = cells_of(respondents.assign(site_id=pd.array([None] * len(respondents), dtype="Int64")))
    assert ce.estimates(cells, "overall", by="site_id").table.empty
    assert ce.estimate(cells, "overall").n == respondents["overall"].notna().sum()


def test_no_response_at_all_is_an_estimate_never_shown(respondents):
    empty = cells_of(respondents).iloc[0:0]
    est = ce.estimate(empty, "overall", statistic="satisfied")
    assert est.n == 0 and est.flag == "hidden" and np.isnan(est.value)
    assert ce.estimates(empty, "overall", by="period").table.empty
    with pytest.raises(ValueError, match="no '_responses' rows"):
        ce.estimate(cells_of(respondents).query("question_key != @ce.RESPONSES"), "overall")


@pytest.mark.parametrize("weighted", [False, True])
def test_share_intervals_are_the_delete_a_group_jackknife_of_the_lmg_shares(respondents, raked, weighted):
    _, _, on_cells = raked
    raking = on_cells if weighted else None
    moments = moments_of(respondents)
    got = ce.share_intervals(moments, "overall", DRIVERS, raking=raking, groups=10, level=0.9)
    full = ce.relative_importance(moments, "overall", DRIVERS, raking=raking)
    assert_allclose(got["share"].to_numpy(), full["share"].to_numpy(), rtol=RTOL)
    # Each replicate refitted from the moments without one group of rows.
    group = np.arange(len(moments)) % 10
    replicates = np.array(
        [
            ce.relative_importance(moments[group != g], "overall", DRIVERS, raking=raking)["share"].to_numpy()
            for g in range(10)
        ]
    )
    se = np.sqrt(9 / 10 * ((replicates - replicates.mean(axis=0)) ** 2).sum(axis=0))
    half = stats.t.ppf(0.95, 9) * se
    assert_allclose(got["share_low"].to_numpy(), full["share"].to_numpy() - half, rtol=1e-7)
    assert_allclose(got["share_high"].to_numpy(), full["share"].to_numpy() + half, rtol=1e-7)
    assert (got["share_low"] < got["share"]).all() and (got["share"] < got["share_high"]).all()
    # Each driver's weighted mean over the complete rows (respondents), and its jackknife.
    complete = respondents.dropna(subset=KEYS)
    w = raking.weights_for(complete) if weighted else np.ones(len(complete))
    expected = [np.average(complete[d].to_numpy(dtype=float), weights=w) for d in DRIVERS]
    assert_allclose(got["mean"].to_numpy(), expected, rtol=RTOL)
    rows = moments_of(respondents)
    sums = []
    for g in range(10):
        part = rows[group != g]
        pw = raking.weights_for(part) if weighted else np.ones(len(part))
        m = np.stack(part["moments"].to_numpy())
        sums.append([(pw * m[:, 2 + j]).sum() / (pw * m[:, 0]).sum() for j in range(len(DRIVERS))])
    sums = np.asarray(sums)
    half = stats.t.ppf(0.95, 9) * np.sqrt(9 / 10 * ((sums - sums.mean(axis=0)) ** 2).sum(axis=0))
    assert_allclose(got["mean_low"].to_numpy(), got["mean"].to_numpy() - half, rtol=1e-7)
    assert_allclose(got["mean_high"].to_numpy(), got["mean"].to_numpy() + half, rtol=1e-7)


def test_share_intervals_need_as_many_rows_as_groups(respondents):
    moments = moments_of(respondents).head(12)
    got = ce.share_intervals(moments, "overall", DRIVERS, groups=20)
    assert got["share"].notna().all() and got["share_low"].isna().all() and got["share_high"].isna().all()
    assert got["mean"].notna().all() and got["mean_low"].isna().all() and got["mean_high"].isna().all()


def as_read_model(cells, *, reverse=False):
    """The cells as the read model gives them: text columns as categoricals (categories
    sorted; ``reverse``: in another order, as a frame built elsewhere may have them)."""
    out = cells.copy()
    for column in [*ce.PROFILE, "question_key"]:
        categories = sorted(out[column].dropna().unique(), reverse=reverse)
        out[column] = pd.Categorical(out[column].astype(object), categories=categories)
    return out


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_columns_give_the_same_results_as_text_ones(respondents, weighted, reverse):
    cells = ce.with_period(cells_of(respondents), "quarter")
    coded = as_read_model(cells, reverse=reverse)
    raking = ce.rake_cells(cells, MARGINS) if weighted else None
    coded_raking = ce.rake_cells(coded, MARGINS) if weighted else None
    if weighted:
        assert coded_raking.margins == raking.margins
        assert coded_raking.unit_weights.index.equals(raking.unit_weights.index)
        assert_allclose(coded_raking.unit_weights.to_numpy(), raking.unit_weights.to_numpy(), rtol=RTOL)
        assert_allclose(coded_raking.weights_for(coded), raking.weights_for(cells), rtol=RTOL)
    for statistic in ("mean", "satisfied"):
        for by in ("period", "sex", ["period", "age_band"]):
            columns = [by] if isinstance(by, str) else by
            # Groups in the categories' order: compared by their values.
            got, expected = (
                table.astype({c: object for c in columns}).sort_values(columns, ignore_index=True)
                for table in (
                    ce.estimates(coded, "overall", by=by, statistic=statistic, raking=coded_raking).table,
                    ce.estimates(cells, "overall", by=by, statistic=statistic, raking=raking).table,
                )
            )
            assert got[columns].equals(expected[columns])
            assert list(got["flag"]) == list(expected["flag"])
            numbers = ["value", "se", "ci_low", "ci_high", "n", "n_eff", "deff"]
            assert_allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=RTOL)
        got = ce.segment_gaps(coded, "overall", list(ce.PROFILE), statistic=statistic, raking=coded_raking)
        expected = ce.segment_gaps(cells, "overall", list(ce.PROFILE), statistic=statistic, raking=raking)
        assert (
            got[["column", "category", "flag", "under_served"]]
            .astype(object)
            .equals(expected[["column", "category", "flag", "under_served"]].astype(object))
        )
        numbers = ["n", "n_eff", "estimate", "se", "rest_estimate", "rest_se", "gap", "gap_se", "p", "p_adjusted"]
        assert_allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=RTOL)


def test_a_category_of_the_margins_recoded_to_unknown_keeps_the_respondents_of_both(respondents):
    # "outside" is not among the area margins: with the missing areas it makes UNKNOWN.
    raking = ce.rake_cells(cells_of(respondents), MARGINS)
    outside = respondents["area"].isin(["outside"]).fillna(False) | respondents["area"].isna()
    assert raking.margins["area"][ce.UNKNOWN] == pytest.approx(outside.mean())
    areas = raking.unit_weights.index.get_level_values("area")
    assert set(areas) == {"centre", "nord", "sud", ce.UNKNOWN}
    assert raking.raking.base_weights.sum() == len(respondents)


@pytest.mark.parametrize("span", [10, 10**9])
def test_dense_codes_are_the_inverse_and_the_values_of_numpy_unique(span):
    values = np.random.default_rng(3).integers(-span, span, 5000)
    codes, distinct = ce._dense_codes(values)
    expected, inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(distinct, expected) and np.array_equal(codes, inverse)
    assert ce._dense_codes(values[:0])[0].size == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_estimates_by_a_column_of_many_values_equal_the_respondent_level_ones(weighted):
    # A thousand sites: the design's combinations are too many for a table of them all.
    frame = make_respondents(n=3000, seed=4)
    frame["site_id"] = pd.array(np.random.default_rng(4).integers(0, 1000, len(frame)), dtype="Int64")
    cells = cells_of(frame)
    recoded, margins = ce.complete_margins(frame, MARGINS)
    on_units = rake(recoded, margins) if weighted else None
    on_cells = ce.rake_cells(cells, MARGINS) if weighted else None
    result = ce.estimates(cells, "overall", by="site_id", raking=on_cells)
    assert len(result.table) == frame["site_id"].nunique()
    for site in frame["site_id"].value_counts().index[:3]:
        domain = frame.assign(overall=frame["overall"].where((frame["site_id"] == site).to_numpy()))
        assert_allclose(as_tuple(result.get(site)), as_tuple(mean(domain, "overall", weights=on_units)), rtol=RTOL)


def permuted(moments, every=2):
    """The same moments with every other row's variables stored in another order."""
    out = moments.copy()
    size = len(KEYS) + 1
    upper = np.triu_indices(size)
    order = [0, 1, *range(size - 1, 1, -1)]  # overall first, the drivers reversed
    for i in range(0, len(out), every):
        full = np.zeros((size, size))
        full[upper] = out.at[i, "moments"]
        full = full + np.triu(full, 1).T
        out.at[i, "moments"] = full[np.ix_(order, order)][upper]
        out.at[i, "variables"] = tuple(np.array(["", *KEYS], dtype=object)[order][1:])
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_moments_stored_in_several_variable_orders_give_the_same_intervals(respondents, raked, weighted):
    _, _, on_cells = raked
    raking = on_cells if weighted else None
    moments = moments_of(respondents)
    mixed = permuted(moments)
    assert mixed["variables"].nunique() == 2
    got = ce.share_intervals(mixed, "overall", DRIVERS, raking=raking, groups=10)
    expected = ce.share_intervals(moments, "overall", DRIVERS, raking=raking, groups=10)
    assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=RTOL)
    assert got.attrs["n"] == expected.attrs["n"]
    assert got.attrs["r2"] == pytest.approx(expected.attrs["r2"], rel=RTOL)
