"""Raking (iterative proportional fitting) to population margins.

The raked weights make the weighted sample reproduce known population totals on each
raking variable (age band, sex, area ...). The returned :class:`Raking` keeps what the
linearised variance needs afterwards: the raking variables and the design (pre-raking)
weights, so that :mod:`analysis.estimates` can residualise influence values on the
calibration variables, as Deville & Särndal (1992) and R's ``survey`` package do.

References
----------
Deming, W. E. & Stephan, F. F. (1940). On a least squares adjustment of a sampled
frequency table when the expected marginal totals are known. *Annals of Mathematical
Statistics*, 11(4), 427-444.

Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling.
*Journal of the American Statistical Association*, 87(418), 376-382.

Kish, L. (1965). *Survey Sampling*. Wiley (effective sample size and design effect due
to unequal weights).

Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley, ch. 7.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = ["Raking", "rake", "kish_n_eff", "resolve_base_weights"]

# Shares are recognised when every margin sums to one within this tolerance.
_SHARE_TOL = 1e-6
# Margins given as totals must agree to this relative tolerance.
_TOTAL_RTOL = 1e-6


def kish_n_eff(weights: np.ndarray) -> float:
    r"""Kish effective sample size :math:`(\sum w)^2 / \sum w^2`.

    References
    ----------
    Kish, L. (1965). *Survey Sampling*. Wiley, section 11.7.
    """
    w = np.asarray(weights, dtype=float)
    ssq = float(np.dot(w, w))
    return float(w.sum() ** 2 / ssq) if ssq > 0 else 0.0


def resolve_base_weights(frame: pd.DataFrame, weights, *, what: str = "weights") -> pd.Series:
    """Return positive finite weights aligned on ``frame.index``.

    ``weights`` is None (all ones), a column name of ``frame`` or a Series indexed like
    ``frame``.
    """
    if weights is None:
        return pd.Series(1.0, index=frame.index)
    if isinstance(weights, pd.Series):
        if not frame.index.isin(weights.index).all():
            raise ValueError(f"{what}: the Series does not cover every row of the frame")
        w = weights.reindex(frame.index).astype(float)
        name = weights.name if weights.name is not None else what
    elif isinstance(weights, Hashable) and weights in frame.columns:
        w = frame[weights].astype(float)
        name = weights
    else:
        raise ValueError(f"{what}: column {weights!r} is not in the frame")
    values = w.to_numpy()
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what}: column {name!r} has missing or infinite values")
    if np.any(values <= 0):
        raise ValueError(f"{what}: column {name!r} has weights that are zero or negative")
    return w


@dataclass(frozen=True, eq=False)
class Raking:
    """Result of :func:`rake`.

    Attributes
    ----------
    weights : pandas.Series
        Raked (calibrated) weights aligned on the input frame's index.
    base_weights : pandas.Series
        Design (pre-raking) weights; the linearised variance residualises on the raking
        variables with these.
    variables : pandas.DataFrame
        The raking columns of the input frame (one column per margin), kept to build the
        calibration dummies.
    targets : Mapping
        ``{column: {category: population total}}`` actually used (shares converted to
        totals).
    iterations : int
        Number of IPF sweeps of the last rake.
    converged : bool
        Whether every margin is reproduced to ``tol`` (relative).
    trimmed : bool
        Whether weight trimming was requested.
    min_weight, max_weight : float
        Extreme raked weights.
    n_eff : float
        Kish effective sample size of the raked weights.
    deff : float
        Kish design effect due to unequal weights, ``n / n_eff`` = 1 + CV² of weights.
    from_shares : bool
        Whether the margins were shares: the population size is then the estimated
        sum of the design weights, not a known total.
    """

    weights: pd.Series
    base_weights: pd.Series
    variables: pd.DataFrame
    targets: Mapping = field(repr=False)
    iterations: int
    converged: bool
    trimmed: bool
    min_weight: float
    max_weight: float
    n_eff: float
    deff: float
    from_shares: bool = False

    def calibration_matrix(self) -> np.ndarray:
        """Dummy matrix (rows of the raked frame × categories of every margin).

        The dummies of different margins are collinear (each block sums to one); the
        least-squares residualisation that uses this matrix is rank-safe.
        """
        blocks = []
        for column, cats in self.targets.items():
            values = self.variables[column].to_numpy()
            blocks.append(np.column_stack([values == cat for cat in cats]).astype(float))
        return np.hstack(blocks)

    @property
    def ratio(self) -> pd.Series:
        """Raked weight divided by design weight (the calibration factor g)."""
        return self.weights / self.base_weights


def _codes(frame: pd.DataFrame, column, cats: Mapping) -> np.ndarray:
    """Integer code of each row's category in the margin's order, validating both ways."""
    values = frame[column]
    if values.isna().any():
        first = values.index[values.isna().to_numpy()][0]
        raise ValueError(
            f"raking column {column!r} has missing values (first at row {first!r}); "
            "impute them or add an explicit category such as 'préfère ne pas dire'"
        )
    keys = list(cats)
    lookup = set(keys)
    present = pd.unique(values.to_numpy())
    for cat in present:
        if cat not in lookup:
            raise ValueError(
                f"raking column {column!r}: sample category {cat!r} has no population target in the margins"
            )
    present_set = set(present.tolist())
    for cat in keys:
        if cat not in present_set:
            raise ValueError(
                f"raking column {column!r}: margin category {cat!r} has a target but no "
                "respondent in the sample; collapse it with a neighbouring category"
            )
    return pd.Index(keys).get_indexer(values.to_numpy()).astype(np.intp)


def _targets(margins: Mapping, base_total: float) -> dict:
    """Population totals per margin; shares are scaled to the total design weight."""
    sums = {}
    for column, cats in margins.items():
        if not isinstance(cats, Mapping) or not cats:
            raise ValueError(f"margin {column!r} must be a non-empty {{category: target}}")
        for cat, t in cats.items():
            if not np.isfinite(t) or t <= 0:
                raise ValueError(f"margin {column!r}: category {cat!r} has target {t!r}; targets must be positive")
        sums[column] = float(sum(cats.values()))
    all_shares = all(abs(s - 1.0) <= _SHARE_TOL for s in sums.values())
    if all_shares:
        scale = base_total
    else:
        columns = list(sums)
        ref = sums[columns[0]]
        for column in columns[1:]:
            if abs(sums[column] - ref) > _TOTAL_RTOL * max(abs(ref), 1.0):
                raise ValueError(
                    f"margins have different totals: {columns[0]!r} sums to {ref:g} "
                    f"but {column!r} sums to {sums[column]:g}"
                )
        scale = 1.0
    return {column: {cat: float(t) * scale for cat, t in cats.items()} for column, cats in margins.items()}


def _margin_error(w, codes, targets) -> float:
    return max(
        float(np.max(np.abs(np.bincount(c, weights=w, minlength=t.size) / t - 1.0)))
        for c, t in zip(codes, targets, strict=True)
    )


def _ipf(w, codes, targets, *, max_iter, tol, lower=None, upper=None):
    """Deming-Stephan sweeps until every margin holds to ``tol`` (relative).

    With bounds, each margin step rescales and clips repeatedly, so units stuck at a
    bound keep it and the others absorb the rest of the adjustment.
    """
    w = w.copy()
    err = np.inf
    inner = 1 if lower is None else 100
    for iteration in range(1, max_iter + 1):
        for c, t in zip(codes, targets, strict=True):
            for _ in range(inner):
                sums = np.bincount(c, weights=w, minlength=t.size)
                factor = t / sums
                w *= factor[c]
                if lower is None:
                    break
                np.clip(w, lower, upper, out=w)
                if np.max(np.abs(factor - 1.0)) <= tol:
                    break
        err = _margin_error(w, codes, targets)
        if err <= tol:
            return w, iteration, True, err
    return w, max_iter, False, err


def rake(
    frame: pd.DataFrame,
    margins: Mapping,
    *,
    base_weights=None,
    max_iter: int = 1000,
    tol: float = 1e-10,
    trim: tuple[float, float] | None = None,
) -> Raking:
    r"""Rake design weights to population margins by iterative proportional fitting.

    Each sweep adjusts the weights margin by margin,
    :math:`w_i \leftarrow w_i \, T_{c}/\hat T_{c}` for the category :math:`c` of unit
    :math:`i`, until every weighted margin equals its target to ``tol`` (relative)
    (Deming & Stephan, 1940). Raking is the calibration estimator with the multiplicative
    distance of Deville & Särndal (1992).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per respondent; not modified.
    margins : Mapping
        ``{column: {category: target}}``. Targets are population totals, or shares when
        every margin sums to one; shares are scaled to the sum of the base weights.
    base_weights : str or pandas.Series, optional
        Design weights (column name or Series aligned on the frame); default 1.
    max_iter : int
        Maximum number of sweeps.
    tol : float
        Relative tolerance on every margin.
    trim : (float, float), optional
        Bounds ``(low, high)`` on the ratio raked / base weight (bounded raking). At each
        margin step the weights are rescaled, clipped to the bounds and rescaled again
        until the margin holds, so trimmed weight is redistributed over the other units
        of the category by re-raking; the result meets every margin to ``tol`` and
        every bound exactly. Bounds that cannot hold with the margins raise
        ``ValueError``.

    Returns
    -------
    Raking
        Weights aligned on ``frame.index`` and diagnostics.

    Raises
    ------
    ValueError
        A margin category absent from the sample, a sample category absent from the
        margins, margins with different totals, a raking column with missing values,
        a non-positive target, or raking that does not converge (margins incompatible
        with the sample's pattern of categories). The message names the column and the
        category.

    References
    ----------
    Deming & Stephan (1940); Deville & Särndal (1992); Lumley (2010), section 7.3.
    """
    if not margins:
        raise ValueError("margins: at least one raking variable is needed")
    for column in margins:
        if column not in frame.columns:
            raise ValueError(f"raking column {column!r} is not in the frame")
    if len(frame) == 0:
        raise ValueError("cannot rake an empty frame")
    base = resolve_base_weights(frame, base_weights, what="base_weights")
    d = base.to_numpy(dtype=float)
    totals = _targets(margins, float(d.sum()))
    codes = [_codes(frame, column, cats) for column, cats in margins.items()]
    return _rake_codes(
        d,
        codes,
        margins,
        totals,
        index=frame.index,
        variables=frame[list(margins)].copy(),
        max_iter=max_iter,
        tol=tol,
        trim=trim,
    )


def _rake_codes(
    d: np.ndarray,
    codes: list[np.ndarray],
    margins: Mapping,
    totals: Mapping,
    *,
    index: pd.Index,
    variables: pd.DataFrame,
    max_iter: int = 1000,
    tol: float = 1e-10,
    trim: tuple[float, float] | None = None,
) -> Raking:
    """The body of :func:`rake` once the frame is coded: base weights ``d``, each row's
    category position in each margin (``codes``) and the totals of `_targets`; shared
    with `analysis.cells.rake_cells`, which codes its cells without a frame per step."""
    targets = [np.fromiter(cats.values(), dtype=float) for cats in totals.values()]

    if trim is None:
        w, iterations, converged, err = _ipf(d, codes, targets, max_iter=max_iter, tol=tol)
    else:
        low, high = trim
        if not (0 < low <= 1 <= high):
            raise ValueError(f"trim must be (low, high) with 0 < low <= 1 <= high, got {trim!r}")
        w, iterations, converged, err = _ipf(
            d, codes, targets, max_iter=max_iter, tol=tol, lower=low * d, upper=high * d
        )
        if not converged:
            raise ValueError(
                f"trim bounds {trim!r} cannot hold with these margins (still off by "
                f"{err:.2%} after {max_iter} sweeps); widen the bounds or collapse categories"
            )
    if not converged:
        worst_col, worst_cat, worst = None, None, -1.0
        for (column, cats), c, t in zip(totals.items(), codes, targets, strict=True):
            rel = np.abs(np.bincount(c, weights=w, minlength=t.size) / t - 1.0)
            j = int(np.argmax(rel))
            if rel[j] > worst:
                worst_col, worst_cat, worst = column, list(cats)[j], float(rel[j])
        raise ValueError(
            f"raking did not converge in {max_iter} sweeps: margin {worst_col!r} category "
            f"{worst_cat!r} is still off by {worst:.2%}; the margins are incompatible with "
            "the sample (collapse sparse categories)"
        )

    weights = pd.Series(w, index=index, name="weight")
    n_eff = kish_n_eff(w)
    return Raking(
        weights=weights,
        base_weights=pd.Series(d, index=index, name="base_weight"),
        variables=variables,
        targets=MappingProxyType({k: MappingProxyType(v) for k, v in totals.items()}),
        iterations=iterations,
        converged=converged,
        trimmed=trim is not None,
        min_weight=float(w.min()),
        max_weight=float(w.max()),
        n_eff=n_eff,
        deff=float(len(w) / n_eff),
        from_shares=all(abs(float(sum(c.values())) - 1.0) <= _SHARE_TOL for c in margins.values()),
    )
