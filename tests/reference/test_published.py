"""Published numbers reproduced by analysis/ (sources cited at each test).

The published data sets live outside the repository, in the shared reference folder
beside it. A test that reads them is skipped when that folder is absent, unless
REFERENCE=required, in which case it fails: CI sets it so that a missing folder cannot
pass silently.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis.drivers import relative_importance
from analysis.estimates import mean, total
from analysis.trends import adjust
from analysis.weighting import rake

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def reference_folder(folder: Path, required: bool) -> Path:
    """`folder` if it exists; otherwise skip the test, or fail it when the data is required."""
    if not folder.is_dir():
        reason = "the shared reference data folder is absent"
        if required:
            pytest.fail(reason + " (REFERENCE=required)", pytrace=False)
        pytest.skip(reason)
    return folder


@pytest.fixture(scope="module")
def reference():
    return reference_folder(REFERENCE, os.environ.get("REFERENCE") == "required")


@pytest.fixture(scope="module")
def apiclus1(reference):
    return pd.read_csv(reference / "apiclus1.csv")


@pytest.fixture(scope="module")
def raked(apiclus1):
    # Margins of R survey's rake() help page: stype and sch.wide population totals.
    margins = {
        "stype": {"E": 4421, "H": 755, "M": 1018},
        "sch.wide": {"No": 1072, "Yes": 5122},
    }
    return rake(apiclus1, margins, base_weights="pw")


def test_swiss_lmg(reference):
    # Grömping (2006), relaimpo, JSS 17(1): calc.relimp(swiss, type="lmg").
    swiss = pd.read_csv(reference / "swiss.csv")
    drivers = ["Agriculture", "Examination", "Education", "Catholic", "Infant.Mortality"]
    result = relative_importance(swiss, "Fertility", drivers, method="lmg")
    assert list(result.index) == drivers
    assert_allclose(
        result["importance"].to_numpy(),
        [0.05709122, 0.17117303, 0.26013468, 0.10557015, 0.11276592],
        atol=1e-6,
    )
    assert_allclose(result.attrs["r2"], 0.7067350, atol=1e-6)
    assert_allclose(result["share"].sum(), 1.0, rtol=1e-12)
    assert result.attrs["n"] == 47


def test_apiclus1_unraked_mean(apiclus1):
    # R survey: svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1);
    # svymean(~api00, dclus1) -> 644.17, SE 23.542.
    est = mean(apiclus1, "api00", weights="pw", cluster="dnum", fpc="fpc")
    assert_allclose(est.value, 644.17, atol=0.01)
    assert_allclose(est.se, 23.542, atol=0.001)
    assert est.df == 14


def test_apiclus1_raked_mean(apiclus1, raked):
    # R survey, rake() help page and test rakecheck: svymean(~api00, rclus1)
    # -> 641.23, SE 23.704.
    est = mean(apiclus1, "api00", weights=raked, cluster="dnum", fpc="fpc")
    assert_allclose(est.value, 641.23, atol=0.01)
    assert_allclose(est.se, 23.704, atol=0.001)
    assert raked.converged


def test_apiclus1_raked_total(apiclus1, raked):
    # R survey, rake() help page: svytotal(~enroll, rclus1) -> 3,647,280.
    est = total(apiclus1, "enroll", weights=raked, cluster="dnum", fpc="fpc")
    assert abs(est.value - 3_647_280) < 1


def test_apiclus1_fixed_weights_se_differs(apiclus1, raked):
    # Treating the raked weights as fixed design weights ignores calibration:
    # the SE is no longer R survey's 23.704.
    est = mean(apiclus1, "api00", weights=raked.weights, cluster="dnum", fpc="fpc")
    assert_allclose(est.value, 641.23, atol=0.01)
    assert abs(est.se - 23.704) > 0.05


def test_benjamini_hochberg_paper():
    # Benjamini & Hochberg (1995), JRSS B 57(1), p. 296: 15 p-values; at q = 0.05
    # BH rejects 4 hypotheses, Bonferroni and Holm reject 3.
    p = [
        0.0001,
        0.0004,
        0.0019,
        0.0095,
        0.0201,
        0.0278,
        0.0298,
        0.0344,
        0.0459,
        0.3240,
        0.4262,
        0.5719,
        0.6528,
        0.7590,
        1.000,
    ]
    bh = adjust(p, method="fdr_bh", alpha=0.05)
    assert bh["reject"].sum() == 4
    assert bh["reject"].iloc[:4].all()
    assert adjust(p, method="bonferroni", alpha=0.05)["reject"].sum() == 3
    assert adjust(p, method="holm", alpha=0.05)["reject"].sum() == 3
    # Adjusted p-values are monotone in the raw p-values.
    assert np.all(np.diff(bh["p_adjusted"].to_numpy()) >= 0)


def test_the_reference_folder_is_skipped_only_when_absent_and_not_required(tmp_path):
    assert reference_folder(tmp_path, required=True) == tmp_path
    with pytest.raises(pytest.skip.Exception):
        reference_folder(tmp_path / "absent", required=False)
    with pytest.raises(pytest.fail.Exception, match="REFERENCE=required"):
        reference_folder(tmp_path / "absent", required=True)
