"""Weighted means, proportions and totals with their design-based uncertainty.

Every estimate carries its value, Taylor-linearised standard error, 95% confidence
interval, number of respondents, Kish effective sample size, design effect and a
publication flag from :class:`SuppressionRules`. Survey weights are never treated as
frequency weights.

Rows whose value is missing ("non concerné", no answer) are a domain: they stay in the
design with zero influence, so the PSU count and the calibration are those of the whole
sample, as R's ``survey`` package does for ``subset()`` (Lumley, 2010, section 2.4).

References
----------
Hájek, J. (1971). Comment on a paper by D. Basu. In *Foundations of Statistical
Inference*, Holt, Rinehart and Winston, p. 236.

Wolter, K. M. (2007). *Introduction to Variance Estimation*, 2nd ed. Springer, ch. 6
(Taylor series linearisation).

Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
inference. *JASA*, 22(158), 209-212.

Kish, L. (1965). *Survey Sampling*. Wiley.

Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import stats

from analysis._design import Design, check_level, make_design
from analysis.scales import check_scale
from analysis.weighting import Raking, resolve_base_weights

__all__ = [
    "FLAG_LABELS",
    "Estimate",
    "SuppressionRules",
    "grouped_means",
    "grouped_proportions",
    "mean",
    "proportion",
    "total",
    "wilson_interval",
]

#: What each publication flag means, in the interface's language.
FLAG_LABELS = MappingProxyType(
    {
        "ok": "publiable",
        "caution": "à interpréter avec prudence",
        "suppressed": "non publié (effectif insuffisant)",
        "hidden": "masqué (moins de 10 réponses)",
    }
)


@dataclass(frozen=True)
class SuppressionRules:
    """Publication thresholds, defined once for the whole project.

    A cell with ``n < hide_below`` is never shown ("hidden"); with ``n < min_n`` or
    ``n_eff < min_n_eff`` it is "suppressed"; with ``n < caution_n`` or a relative
    standard error above ``caution_rse`` it is shown with a warning ("caution",
    "à interpréter avec prudence"); otherwise "ok".
    """

    hide_below: int = 10
    min_n: int = 30
    min_n_eff: float = 30.0
    caution_n: int = 60
    caution_rse: float = 0.30

    def flags(self, n, n_eff, rse) -> np.ndarray:
        """Vectorised flag for arrays of n, n_eff and RSE (a NaN RSE does not flag)."""
        n = np.asarray(n, dtype=float)
        n_eff = np.asarray(n_eff, dtype=float)
        rse = np.asarray(rse, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.select(
                [
                    n < self.hide_below,
                    (n < self.min_n) | (n_eff < self.min_n_eff),
                    (n < self.caution_n) | (rse > self.caution_rse),
                ],
                ["hidden", "suppressed", "caution"],
                default="ok",
            )

    def flag(self, n: float, n_eff: float, rse: float) -> str:
        """Flag of one estimate."""
        return str(self.flags([n], [n_eff], [rse])[0])


DEFAULT_RULES = SuppressionRules()


@dataclass(frozen=True)
class Estimate:
    """A survey estimate with its uncertainty and publication flag.

    Attributes
    ----------
    value : float
        Point estimate (mean, proportion in [0, 1], or total).
    se : float
        Taylor-linearised standard error.
    ci_low, ci_high : float
        Confidence interval (``level``): normal, t with ``df`` when clustered, or
        Wilson for proportions.
    n : int
        Respondents with a value (the domain).
    n_eff : float
        Kish effective sample size of the domain's weights.
    deff : float
        Design effect: ``se**2`` over the variance under simple random sampling of the
        same size (weighted variance / n).
    flag : str
        "ok", "caution", "suppressed" or "hidden" (see :class:`SuppressionRules`).
    rse : float
        Relative standard error ``se / |value|``.
    df : int or None
        Degrees of freedom of the t interval (n_psu - 1), None for normal.
    level : float
        Confidence level.
    """

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    n_eff: float
    deff: float
    flag: str
    rse: float
    df: int | None = None
    level: float = 0.95

    @property
    def label(self) -> str:
        """The flag in plain French."""
        return FLAG_LABELS[self.flag]

    @property
    def publishable(self) -> bool:
        """Whether the value may be shown (flag "ok" or "caution")."""
        return self.flag in ("ok", "caution")


def _rse(value, se):
    value = np.asarray(value, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value != 0, se / np.abs(value), np.where(se > 0, np.inf, np.nan))


@lru_cache(maxsize=32)
def _normal_quantile(q: float) -> float:
    """``scipy.stats.norm.ppf(q)``, kept per ``q``: the call costs more than a small
    table's estimates, and the levels used are few."""
    return stats.norm.ppf(q)


def wilson_interval(p, n_eff, level: float = 0.95):
    r"""Wilson score interval on an effective sample size (vectorised).

    .. math:: \frac{\hat p + z^2/2n^*}{1+z^2/n^*} \pm
              \frac{z}{1+z^2/n^*}\sqrt{\frac{\hat p(1-\hat p)}{n^*}+\frac{z^2}{4n^{*2}}}

    References
    ----------
    Wilson (1927); Kish (1965) for the effective sample size.
    """
    check_level(level)
    p = np.asarray(p, dtype=float)
    n = np.asarray(n_eff, dtype=float)
    z = _normal_quantile(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _wilson_n(p, se, kish):
    """Effective n for Wilson: p(1-p)/se² (= n/deff), Kish n_eff when p is 0 or 1."""
    p = np.asarray(p, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_star = p * (1 - p) / se**2
    return np.where((se > 0) & (p > 0) & (p < 1), n_star, kish)


def _values(frame: pd.DataFrame, column) -> pd.Series:
    if column not in frame.columns:
        raise ValueError(f"column {column!r} is not in the frame")
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        values = pd.to_numeric(values, errors="coerce").where(values.notna())
        if values.isna().sum() > frame[column].isna().sum():
            raise ValueError(f"column {column!r} has non-numeric values")
    return values.astype(float)


def _domain_scores(design: Design, y_rows: np.ndarray, in_domain_rows: np.ndarray):
    """Place frame-row values on design rows; rows outside the domain get zero."""
    y = np.zeros(design.size)
    dom = np.zeros(design.size, dtype=bool)
    y[design.rows] = np.where(in_domain_rows, y_rows, 0.0)
    dom[design.rows] = in_domain_rows
    return y, dom


def _ratio_parts(design: Design, y: np.ndarray, dom: np.ndarray):
    """Hájek mean over the domain, its influence values and the SRS reference variance."""
    w = design.weights * dom
    W = w.sum()
    n = int(dom.sum())
    if n == 0 or W <= 0:
        return np.nan, np.zeros(design.size), np.nan, n, 0.0
    ybar = float(np.dot(w, y) / W)
    u = dom * (y - ybar) / W
    s2 = float(np.dot(w, (y - ybar) ** 2) / W) * (n / (n - 1) if n > 1 else np.nan)
    n_eff = float(W**2 / np.dot(w, w))
    return ybar, u, s2, n, n_eff


def _finish(value, se, lo, hi, n, n_eff, var_srs, rules, df, level) -> Estimate:
    rules = rules or DEFAULT_RULES
    with np.errstate(divide="ignore", invalid="ignore"):
        deff = float(se**2 / var_srs) if var_srs and var_srs > 0 else float("nan")
    rse = float(_rse(value, se))
    return Estimate(
        value=float(value),
        se=float(se),
        ci_low=float(lo),
        ci_high=float(hi),
        n=int(n),
        n_eff=float(n_eff),
        deff=deff,
        flag=rules.flag(n, n_eff, rse),
        rse=rse,
        df=df,
        level=level,
    )


def mean(
    frame: pd.DataFrame,
    column,
    *,
    weights=None,
    cluster=None,
    fpc=None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
    scale: tuple[int, int] | None = None,
) -> Estimate:
    r"""Hájek weighted mean with a Taylor-linearised standard error.

    .. math:: \hat{\bar y} = \frac{\sum_{i\in D} w_i y_i}{\sum_{i\in D} w_i},\qquad
              u_i = \frac{1_{i\in D}\,(y_i-\hat{\bar y})}{\sum_{i\in D} w_i}

    and :math:`\widehat{V} = (1-f)\frac{m}{m-1}\sum_h (z_h-\bar z)^2` with :math:`z_h` the
    PSU totals of :math:`w_i e_i`, where :math:`e_i=u_i` or, after raking, the residual
    of :math:`u_i` regressed on the raking dummies by WLS with the design weights.

    Parameters
    ----------
    frame : pandas.DataFrame
        Respondents; not modified. Rows with a missing ``column`` are outside the domain.
    column : str
        Numeric column to average.
    weights : None, str, pandas.Series or Raking
        No weights, a weight column, a Series aligned on the frame, or the result of
        :func:`analysis.weighting.rake` (the SE then accounts for calibration; the
        frame may be a subset of the raked frame when ``cluster`` is None).
    cluster : str, optional
        PSU identifier column (one-stage cluster design, with replacement). To
        estimate within a domain (a site, a public), pass the whole sample with the
        outcome set to missing outside the domain, not a subset of rows: a subset
        loses the PSUs without a domain member, and the SE and degrees of freedom
        with them.
    fpc : float or str, optional
        Population number of PSUs (units when unclustered), as R ``survey``'s ``fpc``:
        the variance is multiplied by ``1 - n_psu / fpc``.
    rules : SuppressionRules, optional
        Publication thresholds; defaults to :class:`SuppressionRules()`.
    level : float
        Confidence level. The interval is normal, or Student t with ``n_psu - 1``
        degrees of freedom when ``cluster`` is given (as ``survey``'s ``degf``).
    scale : (int, int), optional
        Declared integer scale; values outside raise ``ValueError``.

    Returns
    -------
    Estimate

    References
    ----------
    Hájek (1971); Wolter (2007), ch. 6; Deville & Särndal (1992); Lumley (2010), 2.4, 7.4.
    """
    y = _values(frame, column)
    check_scale(frame[column], scale, column=column)
    design = make_design(frame, weights=weights, cluster=cluster, fpc=fpc)
    notna = y.notna().to_numpy()
    yy, dom = _domain_scores(design, y.to_numpy(), notna)
    value, u, s2, n, n_eff = _ratio_parts(design, yy, dom)
    se = float(np.sqrt(design.variance(u)[0])) if n else np.nan
    c = design.critical(level)
    return _finish(
        value, se, value - c * se, value + c * se, n, n_eff, s2 / n if n else np.nan, rules, design.df, level
    )


def proportion(
    frame: pd.DataFrame,
    column,
    *,
    success,
    weights=None,
    cluster=None,
    fpc=None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
    scale: tuple[int, int] | None = None,
) -> Estimate:
    r"""Weighted share of answers in ``success`` (e.g. ``[4, 5]`` for % satisfied).

    The Hájek mean of the indicator :math:`1\{y_i \in S\}` over respondents with a value,
    with the same linearised SE as :func:`mean`. The confidence interval is Wilson's
    on the effective sample size :math:`n^* = \hat p(1-\hat p)/\widehat{SE}^2`
    (i.e. ``n / deff``, so clustering and calibration widen it), using the Kish
    effective n when :math:`\hat p` is 0 or 1; the critical value is normal. When
    clustered, :math:`n^*` is multiplied by :math:`(z/t_{df})^2` with
    :math:`df = n_{psu} - 1` (Korn & Graubard's degrees-of-freedom adjustment).

    Parameters
    ----------
    success : scalar or sequence
        Values counted as a success.
    scale : (int, int), optional
        Declared scale; a value of ``column`` or of ``success`` outside it raises
        ``ValueError``.

    Other parameters are as in :func:`mean`.

    Returns
    -------
    Estimate
        ``value`` is a proportion in [0, 1].

    References
    ----------
    Wilson (1927); Kish (1965); Korn & Graubard (1998), *Survey Methodology* 24(2),
    193-201 (effective sample size for design-based proportion intervals).
    """
    if column not in frame.columns:
        raise ValueError(f"column {column!r} is not in the frame")
    raw = frame[column]
    check_scale(raw, scale, column=column)
    succ = _success_set(success, scale, column)
    notna = raw.notna().to_numpy()
    hit = _success_hits(frame, column, succ)
    design = make_design(frame, weights=weights, cluster=cluster, fpc=fpc)
    yy, dom = _domain_scores(design, hit, notna)
    p, u, s2, n, n_eff = _ratio_parts(design, yy, dom)
    se = float(np.sqrt(design.variance(u)[0])) if n else np.nan
    n_wilson = _wilson_n(p, se, n_eff)
    if design.df:
        # Korn & Graubard (1998): with few PSUs the effective n shrinks by (z / t_df)²,
        # so the interval widens as the t interval of a clustered mean does.
        n_wilson = n_wilson * (stats.norm.ppf(0.5 + level / 2) / design.critical(level)) ** 2
    lo, hi = wilson_interval(p, n_wilson, level)
    return _finish(p, se, lo, hi, n, n_eff, s2 / n if n else np.nan, rules, design.df, level)


def _success_hits(frame: pd.DataFrame, column, succ: list) -> np.ndarray:
    """1.0 where the answer is one of ``succ``, 0.0 elsewhere.

    Numeric successes are compared with the column's values as numbers, so ratings
    stored as text ("4") count like 4; text successes on a numeric column are refused
    rather than silently matching nothing.
    """
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in succ)
    raw = frame[column]
    if numeric:
        return _values(frame, column).isin([float(v) for v in succ]).to_numpy().astype(float)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        raise ValueError(f"success values {succ!r} are text but column {column!r} holds numbers")
    return raw.isin(succ).to_numpy().astype(float)


def _success_set(success, scale, column) -> list:
    succ = (
        list(success)
        if isinstance(success, (Sequence, set, frozenset, np.ndarray)) and not isinstance(success, str)
        else [success]
    )
    if not succ:
        raise ValueError(f"success for column {column!r} is empty")
    if scale is not None:
        for s in succ:
            if not (scale[0] <= s <= scale[1]):
                raise ValueError(f"success value {s!r} is outside the scale of column {column!r}")
    return succ


def total(
    frame: pd.DataFrame,
    column,
    *,
    weights=None,
    cluster=None,
    fpc=None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
) -> Estimate:
    r"""Horvitz-Thompson (or calibrated) total :math:`\hat Y = \sum_{i\in D} w_i y_i`.

    The influence values are :math:`u_i = 1_{i\in D} y_i`; after raking they are
    residualised on the raking dummies (the GREG variance of Deville & Särndal, 1992).
    Missing values are outside the domain (they count as zero). The interval is as
    in :func:`mean`.

    References
    ----------
    Horvitz, D. G. & Thompson, D. J. (1952). *JASA* 47(260), 663-685; Deville &
    Särndal (1992); Lumley (2010), 7.4.
    """
    if isinstance(weights, Raking) and weights.from_shares:
        # The total then rests on an estimated population size whose variance the
        # calibration residuals leave out: the SE would be too small.
        raise ValueError(
            f"a total of {column!r} needs margins given as population totals, not shares "
            "(shares only fix the population's composition, not its size)"
        )
    y = _values(frame, column)
    design = make_design(frame, weights=weights, cluster=cluster, fpc=fpc)
    notna = y.notna().to_numpy()
    yy, dom = _domain_scores(design, np.nan_to_num(y.to_numpy()), notna)
    w = design.weights * dom
    value = float(np.dot(w, yy))
    n = int(dom.sum())
    se = float(np.sqrt(design.variance(yy * dom)[0])) if n else np.nan
    n_eff = float(w.sum() ** 2 / np.dot(w, w)) if n else 0.0
    _, _, s2, _, _ = _ratio_parts(design, yy, dom)
    var_srs = w.sum() ** 2 * s2 / n if n else np.nan
    c = design.critical(level)
    return _finish(value, se, value - c * se, value + c * se, n, n_eff, var_srs, rules, design.df, level)


def _grouped(frame, y, notna, by, weights, rules, level, binary):
    by = [by] if isinstance(by, str) or not isinstance(by, Sequence) else list(by)
    for b in by:
        if b not in frame.columns:
            raise ValueError(f"grouping column {b!r} is not in the frame")
    w = resolve_base_weights(frame, weights).to_numpy(dtype=float)
    wd = w * notna
    yv = np.where(notna, y, 0.0)
    # Sufficient statistics per group: everything the Hájek mean, its linearised SE and
    # Kish's n_eff need, so no per-group Python loop is required.
    stats_frame = pd.DataFrame(
        {
            "rows": np.ones(len(frame)),
            "n": notna.astype(float),
            "sw": wd,
            "swy": wd * yv,
            "swy2": wd * yv * yv,
            "sw2": wd * wd,
            "sw2y": wd * wd * yv,
            "sw2y2": wd * wd * yv * yv,
        },
        index=frame.index,
    )
    keys = [frame[b] for b in by]
    g = stats_frame.groupby(keys, sort=True, observed=True, dropna=True).sum()
    rows, n, sw, swy, swy2, sw2, sw2y, sw2y2 = (g[c].to_numpy() for c in g.columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = swy / sw
        # sum_i w_i^2 (y_i - ybar)^2, expanded.
        ss = sw2y2 - 2 * value * sw2y + value**2 * sw2
        var = np.where(rows > 1, rows / (rows - 1), np.nan) * np.maximum(ss, 0.0) / sw**2
        se = np.sqrt(var)
        n_eff = np.where(sw2 > 0, sw**2 / sw2, 0.0)
        s2 = np.maximum(swy2 / sw - value**2, 0.0) * np.where(n > 1, n / (n - 1), np.nan)
        var_srs = s2 / n
        deff = np.where(var_srs > 0, var / var_srs, np.nan)
    out = g.index.to_frame(index=False)
    return out.assign(**table_columns(value, se, n, n_eff, deff, binary=binary, level=level, rules=rules))


def table_columns(value, se, n, n_eff, deff, *, binary: bool, level: float, rules: SuppressionRules | None) -> dict:
    """The columns of a table of estimates (``value, se, ci_low, ci_high, n, n_eff,
    deff, rse, flag``) from each group's value, SE, counts and design effect: Wilson's
    interval on the effective n for a proportion (``binary``), a normal one for a mean;
    the relative SE and the suppression flag of ``rules`` (default `DEFAULT_RULES`)."""
    if binary:
        low, high = wilson_interval(value, _wilson_n(value, se, n_eff), level)
    else:
        z = _normal_quantile(0.5 + level / 2.0)
        low, high = value - z * se, value + z * se
    rse = _rse(value, se)
    return dict(
        value=value,
        se=se,
        ci_low=low,
        ci_high=high,
        n=n.astype(np.int64),
        n_eff=n_eff,
        deff=deff,
        rse=rse,
        flag=(rules or DEFAULT_RULES).flags(n, n_eff, rse),
    )


def grouped_means(
    frame: pd.DataFrame,
    column,
    by,
    *,
    weights=None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Weighted mean of ``column`` in every group of ``by``, vectorised.

    Each group is estimated as its own sample, from sums per group of
    :math:`w, wy, wy^2, w^2, w^2y, w^2y^2` (sufficient statistics), with the linearised
    SE :math:`\frac{m}{m-1}\sum_i w_i^2(y_i-\bar y)^2/(\sum w_i)^2` (units as PSUs, no
    fpc, no calibration): the result equals :func:`mean` called on each group's rows
    with the same weights. Rows with a missing value count as design rows (``m``) but
    are outside the domain, as in :func:`mean`.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``value, se, ci_low, ci_high, n, n_eff,
        deff, rse, flag`` (normal intervals).

    References
    ----------
    Wolter (2007), ch. 6; Kish (1965).
    """
    y = _values(frame, column)
    notna = y.notna().to_numpy()
    return _grouped(frame, y.fillna(0.0).to_numpy(), notna, by, weights, rules, level, False)


def grouped_proportions(
    frame: pd.DataFrame,
    column,
    by,
    *,
    success,
    weights=None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
    scale: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Weighted share of ``success`` answers per group, vectorised.

    As :func:`grouped_means` on the success indicator, with Wilson intervals on the
    effective n as in :func:`proportion`; equals :func:`proportion` per group.
    """
    if column not in frame.columns:
        raise ValueError(f"column {column!r} is not in the frame")
    raw = frame[column]
    check_scale(raw, scale, column=column)
    succ = _success_set(success, scale, column)
    notna = raw.notna().to_numpy()
    hit = _success_hits(frame, column, succ)
    return _grouped(frame, hit, notna, by, weights, rules, level, True)
