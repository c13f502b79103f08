"""Change between periods, trend slopes, and multiple-testing control.

References
----------
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical
and powerful approach to multiple testing. *JRSS B*, 57(1), 289-300.

Holm, S. (1979). A simple sequentially rejective multiple test procedure.
*Scandinavian Journal of Statistics*, 6(2), 65-70.

Draper, N. R. & Smith, H. (1998). *Applied Regression Analysis*, 3rd ed. Wiley, ch. 9
(weighted least squares).

Kish, L. (1965). *Survey Sampling*. Wiley, section 12.4 (comparisons between
independent samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = ["Change", "Trend", "adjust", "compare_periods", "trend", "trends"]


@dataclass(frozen=True)
class Change:
    """Change between two period estimates.

    Attributes
    ----------
    delta : float
        ``b - a``.
    se : float
        ``sqrt(se_a**2 + se_b**2)``.
    z, p : float
        Wald statistic and its two-sided normal p-value.
    ci_low, ci_high : float
        Normal confidence interval of ``delta``.
    level : float
    """

    delta: float
    se: float
    z: float
    p: float
    ci_low: float
    ci_high: float
    level: float = 0.95


def compare_periods(est_a, est_b, *, level: float = 0.95) -> Change:
    r"""Change :math:`\Delta = \hat\theta_b - \hat\theta_a` between two periods.

    :math:`z = \Delta/\sqrt{SE_a^2 + SE_b^2}`, treating the two periods as independent
    samples (distinct respondents), with a two-sided normal p-value and CI.

    Parameters
    ----------
    est_a, est_b : Estimate or any object with ``value`` and ``se``
        Estimates of the earlier and the later period (e.g. from
        :func:`analysis.estimates.mean`).

    Returns
    -------
    Change

    References
    ----------
    Kish (1965), 12.4.
    """
    for name, est in (("est_a", est_a), ("est_b", est_b)):
        if not (hasattr(est, "value") and hasattr(est, "se")):
            raise ValueError(f"{name} needs 'value' and 'se' attributes")
        if not np.isfinite(est.se) or est.se < 0:
            raise ValueError(f"{name} has an invalid standard error {est.se!r}")
    delta = float(est_b.value - est_a.value)
    se = float(np.hypot(est_a.se, est_b.se))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = delta / se if se > 0 else np.nan
    p = float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan
    c = stats.norm.ppf(0.5 + level / 2)
    return Change(delta, se, float(z), p, float(delta - c * se), float(delta + c * se), level)


@dataclass(frozen=True)
class Trend:
    """Linear trend of period estimates.

    Attributes
    ----------
    slope, se : float
        Change per unit of ``period`` and its standard error.
    ci_low, ci_high : float
        Confidence interval of the slope.
    p : float
        Two-sided p-value of slope = 0.
    n_periods : int
    intercept : float
    df : int or None
        Residual degrees of freedom of the t reference, None when normal
        (``known_variance=True``).
    """

    slope: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    n_periods: int
    intercept: float
    df: int | None


def _period_numbers(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.PeriodDtype):
        return values.array.asi8.astype(float)  # the ordinals
    if pd.api.types.is_datetime64_any_dtype(values):
        # Months since 1970 keep slopes "per month" for monthly barometers.
        return (values.dt.year * 12 + values.dt.month - 1 - 1970 * 12).to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(values):
        raise ValueError(f"period column {values.name!r} must be numeric, datetime or Period")
    return values.to_numpy(dtype=float)


def _kept(frame, period, value, se) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows with a period, a value and an SE (the others are dropped), and their
    values and SEs; an SE that is not positive and finite is refused."""
    for c in (period, value, se):
        if c not in frame.columns:
            raise ValueError(f"column {c!r} is not in the frame")
    keep = frame[period].notna().to_numpy() & frame[value].notna().to_numpy() & frame[se].notna().to_numpy()
    y = frame[value].to_numpy(dtype=float, na_value=np.nan)[keep]
    s = frame[se].to_numpy(dtype=float, na_value=np.nan)[keep]
    with np.errstate(invalid="ignore"):
        bad = (s <= 0) | ~np.isfinite(s)
    if bad.any():
        first = np.flatnonzero(keep)[np.argmax(bad)]
        raise ValueError(f"{se!r} must be positive and finite (period {frame[period].iloc[first]!r})")
    return keep, y, s


def _clean_periods(frame, period, value, se):
    keep, _, _ = _kept(frame, period, value, se)
    return frame.loc[keep, [period, value, se]]


def trend(
    frame: pd.DataFrame,
    *,
    period: str = "period",
    value: str = "value",
    se: str = "se",
    level: float = 0.95,
    known_variance: bool = False,
) -> Trend:
    r"""Trend slope of period estimates by WLS with weights :math:`1/SE_t^2`.

    Fits :math:`\hat\theta_t = a + b\,t + \varepsilon_t` by weighted least squares
    (statsmodels' ``WLS`` gives the same fit; here in closed form on centred periods,
    :math:`b = \sum w (t-\bar t)(\hat\theta-\bar\theta) / \sum w (t-\bar t)^2`, which
    costs less than building a model for every service's series). By default the
    residual scale is estimated but floored at 1, :math:`s^2 = \max(1, RSS/(T-2))` and
    :math:`SE_b^2 = s^2/\sum w(t-\bar t)^2`: extra variation between periods beyond
    sampling error widens the interval, less never narrows it below sampling error; the
    reference is t on :math:`T-2` degrees of freedom. ``known_variance=True`` fixes the
    scale at 1 (the SEs are taken as the full error variance) with a normal reference. Rows with a
    missing value or SE (suppressed periods) are dropped. Datetime periods are counted
    in months, Period values in their own frequency.

    Returns
    -------
    Trend

    References
    ----------
    Draper & Smith (1998), ch. 9.
    """
    keep, y, se_t = _kept(frame, period, value, se)
    t = int(keep.sum())
    need = 2 if known_variance else 3
    if t < need:
        raise ValueError(f"a trend needs at least {need} periods with an estimate, got {t}")
    x = _period_numbers(frame[period] if keep.all() else frame[period][keep])
    if np.all(x == x[0]):
        raise ValueError(f"period column {period!r} has a single value")
    w = 1.0 / se_t**2
    total = w.sum()
    x_bar, y_bar = (w * x).sum() / total, (w * y).sum() / total
    xc, yc = x - x_bar, y - y_bar
    sxx = (w * xc * xc).sum()
    slope = float((w * xc * yc).sum() / sxx)
    residuals = yc - slope * xc
    # The scale is estimated but never below 1: fewer deviations between periods than
    # their SEs imply cannot make the slope more precise than sampling error allows.
    scale = 1.0 if known_variance else max(1.0, float((w * residuals * residuals).sum() / (t - 2)))
    s = float(np.sqrt(scale / sxx))
    df = None if known_variance else t - 2
    q = stats.norm.ppf(0.5 + level / 2) if df is None else stats.t.ppf(0.5 + level / 2, df)
    p = float(2 * (stats.norm.sf(abs(slope / s)) if df is None else stats.t.sf(abs(slope / s), df)))
    return Trend(slope, s, float(slope - q * s), float(slope + q * s), p, t, float(y_bar - slope * x_bar), df)


def adjust(pvalues, *, method: str = "fdr_bh", alpha: float = 0.05) -> pd.DataFrame:
    """Adjust a family of p-values for multiple testing.

    Uses ``statsmodels.stats.multitest.multipletests``; missing p-values are left out
    of the family and stay missing.

    Parameters
    ----------
    pvalues : array-like or pandas.Series
        One p-value per hypothesis; a Series keeps its index.
    method : str
        ``"fdr_bh"`` (Benjamini-Hochberg, the default), ``"bonferroni"``, ``"holm"``,
        or any method ``multipletests`` knows.
    alpha : float
        Family-wise error rate or false discovery rate.

    Returns
    -------
    pandas.DataFrame
        Columns ``p``, ``p_adjusted`` and ``reject``.

    References
    ----------
    Benjamini & Hochberg (1995); Holm (1979).
    """
    p = pd.Series(pvalues, dtype=float) if not isinstance(pvalues, pd.Series) else pvalues.astype(float)
    adjusted, reject = _adjusted(p.to_numpy(), method=method, alpha=alpha)
    return pd.DataFrame(
        {"p": p, "p_adjusted": pd.Series(adjusted, index=p.index), "reject": pd.Series(reject, index=p.index)}
    )


def _adjusted(p: np.ndarray, *, method: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The adjusted p-values and rejections of :func:`adjust` on an array of floats."""
    with np.errstate(invalid="ignore"):
        if ((p < 0) | (p > 1)).any():
            raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    ok = ~np.isnan(p)
    if ok.any():
        rej, padj, _, _ = multipletests(p[ok], alpha=alpha, method=method)
        adjusted[ok] = padj
        reject[ok] = rej
    return adjusted, reject


def trends(
    frame: pd.DataFrame,
    *,
    by,
    period: str = "period",
    value: str = "value",
    se: str = "se",
    level: float = 0.95,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    known_variance: bool = False,
) -> pd.DataFrame:
    r"""Trend of every series in ``frame`` (e.g. every service), with FDR control.

    The same WLS as :func:`trend`, in closed form from weighted sums per group
    (:math:`b = \sum w (x-\bar x)(y-\bar y) / \sum w (x-\bar x)^2`,
    :math:`SE^2 = s^2/\sum w(x-\bar x)^2` with :math:`s^2 = \max(1, RSS/(T-2))` or 1), so
    that all series are fitted in one pass over the frame, without a model per series.
    P-values are adjusted across series by :func:`adjust`.

    Returns
    -------
    pandas.DataFrame
        One row per series: the ``by`` columns, ``slope, se, ci_low, ci_high, p,
        n_periods, p_adjusted, significant``. Series with too few periods have missing
        results.
    """
    keys = [by] if isinstance(by, str) else list(by)
    for k in keys:
        if k not in frame.columns:
            raise ValueError(f"column {k!r} is not in the frame")
    if frame.index.has_duplicates:
        raise ValueError("the frame's index has duplicates: reset it (frame.reset_index(drop=True))")
    data = _clean_periods(frame, period, value, se)
    data = pd.concat([frame.loc[data.index, keys], data], axis=1)
    x = _period_numbers(data[period])
    y = data[value].to_numpy(dtype=float)
    w = 1.0 / data[se].to_numpy(dtype=float) ** 2
    g = data.groupby(keys, sort=True, observed=True)
    gid = g.ngroup().to_numpy()
    ng = g.ngroups
    sw = np.bincount(gid, w, ng)
    xbar = np.bincount(gid, w * x, ng) / sw
    ybar = np.bincount(gid, w * y, ng) / sw
    xc = x - xbar[gid]
    yc = y - ybar[gid]
    sxx = np.bincount(gid, w * xc * xc, ng)
    sxy = np.bincount(gid, w * xc * yc, ng)
    syy = np.bincount(gid, w * yc * yc, ng)
    t = np.bincount(gid, minlength=ng).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = sxy / sxx
        rss = np.maximum(syy - slope * sxy, 0.0)
        if known_variance:
            df = np.full(ng, np.inf)
            scale = np.ones(ng)
            ok = (t >= 2) & (sxx > 0)
        else:
            df = t - 2
            # Never below the sampling error alone (see trend()).
            scale = np.maximum(rss / df, 1.0)
            ok = (t >= 3) & (sxx > 0)
        s = np.sqrt(scale / sxx)
        stat = slope / s
    slope = np.where(ok, slope, np.nan)
    s = np.where(ok, s, np.nan)
    dfo = np.where(ok, df, 1.0)
    q = np.where(np.isinf(dfo), stats.norm.ppf(0.5 + level / 2), stats.t.ppf(0.5 + level / 2, dfo))
    p = np.where(ok, 2 * stats.t.sf(np.abs(np.where(ok, stat, 0.0)), dfo), np.nan)
    out = g.size().index.to_frame(index=False)
    out = out.assign(
        slope=slope,
        se=s,
        ci_low=slope - q * s,
        ci_high=slope + q * s,
        p=p,
        n_periods=t.astype(np.int64),
    )
    adj = adjust(out["p"], method=method, alpha=alpha)
    out["p_adjusted"] = adj["p_adjusted"].to_numpy()
    out["significant"] = adj["reject"].to_numpy()
    return out
