"""Survey design resolution and Taylor-linearised variance (private).

An estimator is written as a function of weighted totals; its linearisation gives, for
each design row, an unweighted influence value ``u_i`` such that
``theta_hat - theta ~= sum_i w_i u_i``. The variance of that weighted total is estimated
with-replacement at the first stage (Hansen-Hurwitz), from PSU totals, times the finite
population correction when one is given. After raking, ``u`` is first replaced by its
residual from a weighted least-squares fit on the raking dummies with the design weights
(Deville & Särndal, 1992), which is what R's ``survey`` package does for calibrated
designs (Lumley, 2010, section 7.4).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.weighting import Raking, resolve_base_weights


@dataclass(frozen=True, eq=False)
class Design:
    """Weights, PSUs and calibration of the rows over which variances are computed.

    ``rows`` maps each row of the analysed frame to its position among the design rows
    (the design can be larger than the frame when the frame is a domain of a raked
    sample).
    """

    weights: np.ndarray
    psu: np.ndarray | None
    n_psu: int
    fraction: float
    calib_x: np.ndarray | None
    calib_d: np.ndarray | None
    rows: np.ndarray

    @property
    def size(self) -> int:
        return self.weights.size

    @property
    def df(self) -> int | None:
        """Degrees of freedom for t intervals (clustered designs), else None (normal)."""
        return self.n_psu - 1 if self.psu is not None else None

    def residualise(self, u: np.ndarray) -> np.ndarray:
        """Residuals of ``u`` from WLS on the calibration dummies with design weights."""
        if self.calib_x is None:
            return u
        sd = np.sqrt(self.calib_d)[:, None]
        beta, *_ = np.linalg.lstsq(self.calib_x * sd, u * sd, rcond=None)
        return u - self.calib_x @ beta

    def covariance(self, u: np.ndarray) -> np.ndarray:
        r"""Linearised covariance of :math:`\sum_i w_i u_i` for each column of ``u``.

        :math:`\hat V = (1-f)\,\frac{m}{m-1}\sum_{h}(z_h-\bar z)(z_h-\bar z)^\top` with
        :math:`z_h` the PSU totals of :math:`w_i e_i` over :math:`m` PSUs.
        """
        u = np.asarray(u, dtype=float)
        if u.ndim == 1:
            u = u[:, None]
        z = self.weights[:, None] * self.residualise(u)
        if self.psu is not None:
            totals = np.stack(
                [np.bincount(self.psu, weights=z[:, j], minlength=self.n_psu) for j in range(z.shape[1])],
                axis=1,
            )
        else:
            totals = z
        m = totals.shape[0]
        if m < 2:
            return np.full((u.shape[1], u.shape[1]), np.nan)
        centred = totals - totals.mean(axis=0)
        return (1.0 - self.fraction) * m / (m - 1) * (centred.T @ centred)

    def variance(self, u: np.ndarray) -> np.ndarray:
        return np.diag(self.covariance(u))

    def critical(self, level: float) -> float:
        """Two-sided critical value: t with n_psu - 1 df if clustered, else normal."""
        check_level(level)
        q = 0.5 + level / 2.0
        return float(stats.t.ppf(q, self.df) if self.df else stats.norm.ppf(q))


def check_level(level: float) -> None:
    """Confidence levels are fractions: 0.95, not 95."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")


def _fpc_value(frame: pd.DataFrame, fpc, *, column_hint: str):
    if fpc is None:
        return None
    if isinstance(fpc, Hashable) and not isinstance(fpc, (int, float)) and fpc in frame.columns:
        values = pd.unique(frame[fpc].to_numpy(dtype=float))
        if values.size != 1 or not np.isfinite(values[0]):
            raise ValueError(
                f"fpc column {fpc!r} must hold one population count for the whole design "
                "(stratified designs are not supported)"
            )
        return float(values[0])
    if isinstance(fpc, (int, float, np.integer, np.floating)):
        return float(fpc)
    raise ValueError(f"fpc: {fpc!r} is neither a number nor a column of the frame ({column_hint})")


def make_design(frame: pd.DataFrame, *, weights=None, cluster=None, fpc=None, what: str = "") -> Design:
    """Resolve weights, clusters and fpc into a :class:`Design` over the frame's rows.

    With a :class:`Raking`, the design rows are the raked sample; ``frame`` may be any
    subset of it (a domain), the other rows then contribute zero influence.
    """
    if isinstance(weights, Raking):
        design_index = weights.weights.index
        if not frame.index.isin(design_index).all():
            raise ValueError("the frame has rows that are not in the raked sample")
        if frame.index.has_duplicates or design_index.has_duplicates:
            raise ValueError("the frame index must be unique to align raked weights")
        rows = design_index.get_indexer(frame.index)
        w = weights.weights.to_numpy(dtype=float)
        calib_x = weights.calibration_matrix()
        calib_d = weights.base_weights.to_numpy(dtype=float)
        if cluster is not None and rows.size != design_index.size:
            raise ValueError(
                f"with clusters ({cluster!r}), pass the whole raked frame and select the "
                "domain through the estimated column, so every PSU is counted"
            )
    else:
        w = resolve_base_weights(frame, weights).to_numpy(dtype=float)
        rows = np.arange(len(frame))
        calib_x = calib_d = None
    n_rows = w.size
    if cluster is not None:
        if cluster not in frame.columns:
            raise ValueError(f"cluster column {cluster!r} is not in the frame")
        ids = frame[cluster]
        if ids.isna().any():
            raise ValueError(f"cluster column {cluster!r} has missing values")
        codes, uniques = pd.factorize(ids.to_numpy())
        psu = np.empty(n_rows, dtype=np.intp)
        psu[rows] = codes
        n_psu = len(uniques)
    else:
        psu = None
        n_psu = n_rows
    population = _fpc_value(frame, fpc, column_hint=what)
    if population is None:
        fraction = 0.0
    else:
        if population < n_psu:
            raise ValueError(
                f"fpc {population:g} is smaller than the number of sampled "
                f"{'PSUs' if psu is not None else 'units'} ({n_psu})"
            )
        fraction = n_psu / population
    return Design(
        weights=w,
        psu=psu,
        n_psu=n_psu,
        fraction=fraction,
        calib_x=calib_x,
        calib_d=calib_d,
        rows=rows,
    )
