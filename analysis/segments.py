"""Publics ("publics cibles") that are significantly less satisfied than the rest.

References
----------
Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley, section 2.4
(domain estimation) and 5.2 (comparing domains).

Benjamini, Y. & Hochberg, Y. (1995). *JRSS B*, 57(1), 289-300.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis._design import check_level, make_design
from analysis.estimates import (
    DEFAULT_RULES,
    SuppressionRules,
    _normal_quantile,
    _rse,
    _success_hits,
    _success_set,
    _values,
)
from analysis.scales import check_scale
from analysis.trends import _adjusted

__all__ = ["segment_gaps"]


def _domain_mean(w, y, dom):
    wd = w * dom
    total = wd.sum()
    n = int(dom.sum())
    if n == 0:
        return np.nan, np.zeros_like(w), 0, 0.0
    ybar = float(np.dot(wd, y) / total)
    return ybar, dom * (y - ybar) / total, n, float(total**2 / np.dot(wd, wd))


def segment_gaps(
    frame: pd.DataFrame,
    outcome,
    by,
    *,
    weights=None,
    cluster=None,
    fpc=None,
    success=None,
    alpha: float = 0.05,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
    scale: tuple[int, int] | None = None,
    method: str = "fdr_bh",
) -> pd.DataFrame:
    r"""Each category of ``by`` against the rest of the respondents.

    For segment :math:`s` and rest :math:`r` (respondents with a value of ``outcome``
    and a known, different category), the gap is :math:`\hat\theta_s - \hat\theta_r`
    (means, or shares of ``success`` answers). Both are Hájek domain estimates of the
    same sample, so the gap is linearised as one statistic,
    :math:`u_i^{gap} = u_i^{s} - u_i^{r}`, and its variance is computed with the same
    design as :func:`analysis.estimates.mean` (weights, raking, clusters, fpc). This
    includes the covariance that clusters or calibration induce between the two
    domains; for a simple weighted sample it equals
    :math:`\sqrt{SE_s^2 + SE_r^2}` since disjoint domains are then uncorrelated.
    The p-value is two-sided (normal, or t with n_psu - 1 df when clustered);
    p-values are adjusted by Benjamini-Hochberg across every category of every ``by``
    column tested.

    Parameters
    ----------
    frame : pandas.DataFrame
        Respondents; not modified.
    outcome : str
        Outcome column.
    by : str or sequence of str
        Profile columns (e.g. ``age_band``, ``area``). Rows with a missing category are
        in neither the segment nor the rest.
    weights, cluster, fpc
        As in :func:`analysis.estimates.mean`.
    success : sequence, optional
        When given, compare shares of these answers (e.g. ``[4, 5]``) instead of means.
    alpha : float
        FDR level.
    rules : SuppressionRules, optional
        Thresholds for the segment's flag.
    scale : (int, int), optional
        Declared scale of ``outcome``.

    Returns
    -------
    pandas.DataFrame
        One row per (column, category): ``column, category, n, estimate, se, flag,
        rest_estimate, rest_se, gap, gap_se, ci_low, ci_high, p, p_adjusted,
        under_served``, where ``under_served`` means gap < 0, adjusted p < ``alpha``
        and a segment flag that is neither "suppressed" nor "hidden".

    References
    ----------
    Lumley (2010), 2.4 and 5.2; Benjamini & Hochberg (1995).
    """
    columns = [by] if isinstance(by, str) or not isinstance(by, Sequence) else list(by)
    for c in columns:
        if c not in frame.columns:
            raise ValueError(f"segment column {c!r} is not in the frame")
    if outcome not in frame.columns:
        raise ValueError(f"outcome {outcome!r} is not in the frame")
    check_scale(frame[outcome], scale, column=outcome)
    if success is None:
        yv = _values(frame, outcome)
        notna = yv.notna().to_numpy()
        y_rows = yv.fillna(0.0).to_numpy()
    else:
        succ = _success_set(success, scale, outcome)
        notna = frame[outcome].notna().to_numpy()
        y_rows = _success_hits(frame, outcome, succ)
    design = make_design(frame, weights=weights, cluster=cluster, fpc=fpc)
    w = design.weights
    y = np.zeros(design.size)
    y[design.rows] = y_rows

    records, scores = [], []
    for c in columns:
        cats = frame[c]
        known = cats.notna().to_numpy()
        for cat in sorted(pd.unique(cats.dropna()), key=lambda v: (str(type(v)), v)):
            seg_rows = notna & known & (cats == cat).to_numpy()
            rest_rows = notna & known & ~(cats == cat).to_numpy()
            seg = np.zeros(design.size, dtype=bool)
            rest = np.zeros(design.size, dtype=bool)
            seg[design.rows] = seg_rows
            rest[design.rows] = rest_rows
            est_s, u_s, n_s, neff_s = _domain_mean(w, y, seg)
            est_r, u_r, n_r, _ = _domain_mean(w, y, rest)
            records.append((c, cat, n_s, neff_s, est_s, est_r, n_r))
            scores.extend([u_s, u_r, u_s - u_r])
    if not records:
        raise ValueError(f"no category to compare in {columns!r}")
    var = design.variance(np.column_stack(scores)).reshape(-1, 3)
    se = np.sqrt(np.maximum(var, 0.0))
    ref = stats.t(design.df) if design.df else stats.norm
    return gaps_table(records, se, ref=ref, level=level, rules=rules, method=method, alpha=alpha)


def gaps_table(records, se: np.ndarray, *, ref, level: float, rules, method: str, alpha: float) -> pd.DataFrame:
    """The gaps frame from each comparison's counts and estimates (`records`: column,
    category, n, n_eff, estimate, rest estimate, rest n) and the standard errors of the
    segment, the rest and the gap (`se`, one row each): CI with `ref`'s critical value,
    two-sided p, FDR-adjusted p, publication flag and the under-served verdict.

    Shared by `segment_gaps` and `analysis.cells.segment_gaps`, so both decide alike.
    """
    check_level(level)
    names = ["column", "category", "n", "n_eff", "estimate", "rest_estimate", "rest_n"]
    # Computed on arrays, the frame built once: one Series per step cost more than the
    # statistics themselves (a report computes this table for every service).
    record = dict(zip(names, [list(values) for values in zip(*records, strict=True)] or [[]] * len(names), strict=True))
    n, n_eff, rest_n = (np.asarray(record[c]) for c in ("n", "n_eff", "rest_n"))
    estimate, rest_estimate = (np.asarray(record[c], dtype=float) for c in ("estimate", "rest_estimate"))
    se = np.asarray(se, dtype=float)
    gap = estimate - rest_estimate
    gap_se = se[:, 2]
    q = 0.5 + level / 2.0
    crit = _normal_quantile(q) if ref is stats.norm else ref.ppf(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.abs(gap / gap_se)
    testable = (n >= 2) & (rest_n >= 2) & np.isfinite(stat)
    p = np.where(testable, 2 * ref.sf(np.where(testable, stat, 0.0)), np.nan)
    p_adjusted = _adjusted(p, method=method, alpha=alpha)[0]
    flag = (rules or DEFAULT_RULES).flags(n, n_eff, _rse(estimate, se[:, 0]))
    with np.errstate(invalid="ignore"):
        under_served = (gap < 0) & (p_adjusted < alpha) & (flag != "suppressed") & (flag != "hidden")
    return pd.DataFrame(
        {
            "column": record["column"],
            "category": record["category"],
            "n": record["n"],
            "n_eff": record["n_eff"],
            "estimate": record["estimate"],
            "se": se[:, 0],
            "flag": flag,
            "rest_estimate": record["rest_estimate"],
            "rest_se": se[:, 1],
            "gap": gap,
            "gap_se": gap_se,
            "ci_low": gap - crit * gap_se,
            "ci_high": gap + crit * gap_se,
            "p": p,
            "p_adjusted": p_adjusted,
            "under_served": under_served,
        }
    )
