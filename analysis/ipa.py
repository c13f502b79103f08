"""Importance-performance analysis (IPA): over-quality and under-served attributes.

Each attribute is placed by its performance (x: mean rating) and its importance (y:
derived, e.g. its LMG share of R², or stated). Crosshairs split the plane in four:

=================== =============== =============== =====================================
quadrant            performance     importance      reading
=================== =============== =============== =====================================
concentrate_here    low             high            under-served ("besoins mal couverts")
keep_up             high            high            keep up the good work
low_priority        low             low             low priority
possible_overkill   high            low             over-quality ("sur-qualité")
=================== =============== =============== =====================================

An attribute exactly on a crosshair goes to the high side. When a confidence interval
is supplied and crosses a crosshair, the attribute is "uncertain" rather than silently
classified.

References
----------
Martilla, J. A. & James, J. C. (1977). Importance-performance analysis. *Journal of
Marketing*, 41(1), 77-79.

Bacon, D. R. (2003). A comparison of approaches to importance-performance analysis.
*International Journal of Market Research*, 45(1), 55-71 (data-centred crosshairs).

Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman &
Hall, ch. 13 (percentile intervals).
"""

from __future__ import annotations

import contextlib
from types import MappingProxyType

import numpy as np
import pandas as pd

from analysis.drivers import _check_collinear, _complete, lmg_from_corr, weighted_corr
from analysis.weighting import resolve_base_weights

__all__ = ["QUADRANT_LABELS", "bootstrap_ci", "quadrants"]

#: Quadrant codes and their plain-French reading, defined once.
QUADRANT_LABELS = MappingProxyType(
    {
        "concentrate_here": "Concentrer les efforts ici (besoins mal couverts)",
        "keep_up": "Maintenir le niveau",
        "low_priority": "Faible priorité",
        "possible_overkill": "Sur-qualité possible",
        "uncertain": "Incertain (l'intervalle de confiance chevauche un axe)",
    }
)

_CI_COLUMNS = ("perf_low", "perf_high", "imp_low", "imp_high")


def _crosshairs(perf: pd.Series, imp: pd.Series, centre: str, midpoint):
    if centre == "mean":
        return float(perf.mean()), float(imp.mean())
    if centre == "median":
        return float(perf.median()), float(imp.median())
    if centre == "scale":
        if midpoint is None:
            raise ValueError("centre='scale' needs midpoint=(x, y) or midpoint=x (e.g. 3 on 1-5)")
        if np.ndim(midpoint) == 0:
            x, y = midpoint, None
        else:
            x, y = midpoint
        return float(x), float(imp.mean()) if y is None else float(y)
    raise ValueError(f"centre must be 'mean', 'median' or 'scale', got {centre!r}")


def quadrants(
    performance: pd.Series,
    importance: pd.Series,
    *,
    centre: str = "mean",
    ci: pd.DataFrame | None = None,
    midpoint=None,
) -> pd.DataFrame:
    r"""Classify attributes into importance-performance quadrants.

    With crosshairs :math:`(x_0, y_0)`, attribute :math:`a` is high-performance when
    :math:`x_a \ge x_0` and high-importance when :math:`y_a \ge y_0` (ties go high).
    It is "uncertain" when ``ci`` is given and an interval crosses a crosshair:
    ``perf_low < x0 <= perf_high`` or ``imp_low < y0 <= imp_high`` (an interval that
    starts exactly on a crosshair lies entirely on its high side), or when an interval
    is missing (NaN). Inverted bounds, or a non-finite estimate, raise ``ValueError``.

    Parameters
    ----------
    performance, importance : pandas.Series
        Indexed by attribute, same attributes.
    centre : {"mean", "median", "scale"}
        Crosshairs at the mean of the attribute means (data-centred, the default), at
        their medians, or at the scale midpoint: ``midpoint=(x, y)``, or ``midpoint=x``
        with the importance crosshair at the mean importance.
    ci : pandas.DataFrame, optional
        Indexed by attribute, columns ``perf_low, perf_high, imp_low, imp_high`` (as
        returned by :func:`bootstrap_ci`).
    midpoint : float or (float, float), optional
        Used with ``centre="scale"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by attribute: ``performance, importance, quadrant``, where ``quadrant``
        is one of the keys of :data:`QUADRANT_LABELS`; ``attrs["crosshairs"] = (x0, y0)``.

    References
    ----------
    Martilla & James (1977); Bacon (2003).
    """
    perf = pd.Series(performance, dtype=float)
    imp = pd.Series(importance, dtype=float)
    # Checked on arrays: the home classifies every service's attributes at once.
    if not (perf.index.equals(imp.index) and perf.index.is_unique):
        missing = perf.index.symmetric_difference(imp.index)
        if len(missing):
            raise ValueError(f"attribute {missing[0]!r} has a performance or an importance, not both")
        imp = imp.reindex(perf.index)
    for name, s in (("performance", perf), ("importance", imp)):
        values = s.to_numpy()
        if np.isnan(values).any():
            raise ValueError(f"{name} of attribute {s.index[np.isnan(values)][0]!r} is missing")
        if not np.isfinite(values).all():
            raise ValueError(f"{name} of attribute {s.index[~np.isfinite(values)][0]!r} is not finite")
    x0, y0 = _crosshairs(perf, imp, centre, midpoint)
    high_x = perf.to_numpy() >= x0
    high_y = imp.to_numpy() >= y0
    quadrant = np.select(
        [~high_x & high_y, high_x & high_y, ~high_x & ~high_y],
        ["concentrate_here", "keep_up", "low_priority"],
        default="possible_overkill",
    ).astype(object)
    if ci is not None:
        absent = [c for c in _CI_COLUMNS if c not in ci.columns]
        if absent:
            raise ValueError(f"ci lacks column {absent[0]!r} (needs {', '.join(_CI_COLUMNS)})")
        lacking = perf.index.difference(ci.index)
        if len(lacking):
            raise ValueError(f"ci has no row for attribute {lacking[0]!r}")
        c = dict(zip(_CI_COLUMNS, ci.reindex(perf.index)[list(_CI_COLUMNS)].to_numpy(dtype=float).T, strict=True))
        # (A percentile bootstrap interval may leave out its own estimate, e.g. for an
        # importance near zero, so only inverted bounds are refused.)
        for low, high in (("perf_low", "perf_high"), ("imp_low", "imp_high")):
            bad = c[low] > c[high]
            if bad.any():
                raise ValueError(f"ci of attribute {perf.index[bad][0]!r} has {low} above {high}")
        crosses = ((c["perf_low"] < x0) & (x0 <= c["perf_high"])) | ((c["imp_low"] < y0) & (y0 <= c["imp_high"]))
        # An interval that could not be computed is no evidence: never classify on it.
        unknown = np.isnan(np.stack(list(c.values()))).any(axis=0)
        quadrant[crosses | unknown] = "uncertain"
    out = pd.DataFrame({"performance": perf, "importance": imp, "quadrant": quadrant}, index=perf.index)
    out.attrs["crosshairs"] = (x0, y0)
    out.attrs["centre"] = centre
    return out


def _replicate_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """Resampling counts (n_boot × n) of a nonparametric bootstrap."""
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _corr_from_moments(s0, s1, s2, q):
    mean = s1 / s0[:, None]
    cov = s2.reshape(-1, q, q) / s0[:, None, None] - mean[:, :, None] * mean[:, None, :]
    sd = np.sqrt(np.einsum("bii->bi", cov))
    # A resample where a variable is constant has no correlation (NaN): `_batch_lmg`
    # and the percentiles leave it out.
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / (sd[:, :, None] * sd[:, None, :])


def _batch_lmg(corr: np.ndarray) -> np.ndarray:
    try:
        return lmg_from_corr(corr)
    except np.linalg.LinAlgError:
        # A degenerate resample (a driver constant in it) has no LMG; leave it out.
        out = np.full((corr.shape[0], corr.shape[-1] - 1), np.nan)
        for b in range(corr.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[b] = lmg_from_corr(corr[b])
        return out


def bootstrap_ci(
    frame: pd.DataFrame,
    outcome,
    drivers,
    *,
    weights=None,
    n_boot: int = 200,
    level: float = 0.95,
    seed=None,
) -> pd.DataFrame:
    r"""Percentile bootstrap intervals of attribute performance and LMG importance.

    Performance is each attribute's weighted mean rating over the respondents who rated
    it; importance is its LMG share of R² (listwise complete rows), as
    :func:`analysis.drivers.relative_importance`. Each of ``n_boot`` replicates
    resamples the respondents with replacement; the replicate's moments are computed
    at once for all replicates (count matrix × data), so that
    :math:`\bar x^{*}_b = \sum_i c_{bi} w_i x_i / \sum_i c_{bi} w_i` and the replicate
    correlation matrices come from matrix products, and LMG is batched over replicates.

    Parameters
    ----------
    frame, outcome, drivers, weights
        As in :func:`analysis.drivers.relative_importance`.
    n_boot : int
        Number of replicates.
    level : float
        Level of the percentile intervals.
    seed : int or numpy.random.Generator, optional
        Seed or generator, for reproducible intervals.

    Returns
    -------
    pandas.DataFrame
        Indexed by driver: ``performance, importance, perf_low, perf_high, imp_low,
        imp_high``; ready for ``quadrants(df.performance, df.importance, ci=df)``.

    References
    ----------
    Efron & Tibshirani (1993), ch. 13; Grömping (2006) for bootstrapping LMG.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    data, drivers, w = _complete(frame, outcome, drivers, weights)
    n_all = len(frame)
    w_all = resolve_base_weights(frame, weights).to_numpy(dtype=float)
    attrs = frame[drivers].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    rated = ~np.isnan(attrs)
    attrs0 = np.where(rated, attrs, 0.0)
    perf_hat = (w_all @ attrs0) / (w_all @ rated)

    z = data.to_numpy(dtype=float)
    wc = np.ones(len(z)) if w is None else w
    corr_hat = weighted_corr(z, wc)
    _check_collinear(corr_hat, drivers)
    lmg_hat = lmg_from_corr(corr_hat)
    share_hat = lmg_hat / lmg_hat.sum()

    counts = _replicate_counts(rng, n_boot, n_all)
    cw = counts * w_all
    perf_b = (cw @ attrs0) / (cw @ rated)
    complete = frame.index.get_indexer(data.index)
    cwc = counts[:, complete] * wc
    q = z.shape[1]
    outer = (z[:, :, None] * z[:, None, :]).reshape(len(z), q * q)
    corr_b = _corr_from_moments(cwc.sum(axis=1), cwc @ z, cwc @ outer, q)
    lmg_b = _batch_lmg(corr_b)
    share_b = lmg_b / lmg_b.sum(axis=1, keepdims=True)

    tails = [50 * (1 - level), 100 - 50 * (1 - level)]
    perf_ci = np.nanpercentile(perf_b, tails, axis=0)
    imp_ci = np.nanpercentile(share_b, tails, axis=0)
    out = pd.DataFrame(
        {
            "performance": perf_hat,
            "importance": share_hat,
            "perf_low": perf_ci[0],
            "perf_high": perf_ci[1],
            "imp_low": imp_ci[0],
            "imp_high": imp_ci[1],
        },
        index=pd.Index(drivers, name="driver"),
    )
    out.attrs.update(n_boot=n_boot, level=level, n=len(data))
    return out
