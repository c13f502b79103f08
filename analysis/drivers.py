"""Key-driver analysis: which attributes drive overall satisfaction.

Three complementary views:

* :func:`relative_importance` splits the R² of the regression of ``overall`` on the
  attributes between the attributes, exactly by LMG (the Shapley value of R²) or by
  Johnson's relative weights;
* :func:`ordinal_logit` fits a proportional-odds model, a robustness check that
  respects the ordinal outcome;
* :func:`penalty_reward` contrasts the effect of a poor rating with that of an
  excellent one, to tell basic factors (dissatisfiers) from excitement factors.

"Non concerné" is a missing value: rows with a missing outcome or driver are dropped
listwise.

References
----------
Lindeman, R. H., Merenda, P. F. & Gold, R. Z. (1980). *Introduction to Bivariate and
Multivariate Analysis*. Scott, Foresman, p. 119 ff.

Grömping, U. (2006). Relative importance for linear regression in R: the package
relaimpo. *Journal of Statistical Software*, 17(1), 1-27.

Johnson, J. W. (2000). A heuristic method for estimating the relative weight of
predictor variables in multiple regression. *Multivariate Behavioral Research*, 35(1),
1-19.

McCullagh, P. (1980). Regression models for ordinal data. *JRSS B*, 42(2), 109-142.

Matzler, K., Bailom, F., Hinterhuber, H. H., Renzl, B. & Pichler, J. (2004). The
asymmetric relationship between attribute-level performance and overall customer
satisfaction: a reconsideration of the importance-performance analysis. *Industrial
Marketing Management*, 33(4), 271-277.

Mikulić, J. & Prebežac, D. (2011). A critical review of techniques for classifying
quality attributes in the Kano model. *Managing Service Quality*, 21(1), 46-66.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.scales import FIVE_POINT, check_scale
from analysis.weighting import resolve_base_weights

__all__ = [
    "MAX_EXACT_DRIVERS",
    "OrdinalLogitResult",
    "lmg_from_corr",
    "ordinal_logit",
    "penalty_reward",
    "grouped_importance",
    "relative_importance",
    "relative_weights_from_corr",
    "subset_r2",
    "weighted_corr",
]

#: Largest number of drivers for which LMG is computed exactly over all 2^p subsets.
MAX_EXACT_DRIVERS = 15

#: Impact-asymmetry cutoff between performance factors and basic/excitement factors.
IA_CUTOFF = 0.1


# --------------------------------------------------------------------------- inputs


def _complete(frame: pd.DataFrame, outcome, drivers, weights, *, min_extra: int = 2):
    """Listwise-complete outcome, drivers and weights, with the checks every model needs."""
    if outcome not in frame.columns:
        raise ValueError(f"outcome {outcome!r} is not in the frame")
    drivers = list(drivers)
    if not drivers:
        raise ValueError("at least one driver is needed")
    if len(set(drivers)) != len(drivers):
        raise ValueError(f"drivers are repeated: {drivers!r}")
    for d in drivers:
        if d not in frame.columns:
            raise ValueError(f"driver {d!r} is not in the frame")
        if d == outcome:
            raise ValueError(f"driver {d!r} is also the outcome")
    cols = [outcome, *drivers]
    data = frame[cols].apply(pd.to_numeric, errors="coerce")
    for c in cols:
        if data[c].isna().sum() > frame[c].isna().sum():
            raise ValueError(f"column {c!r} has non-numeric values")
    w = resolve_base_weights(frame, weights) if weights is not None else None
    keep = data.notna().all(axis=1)
    data = data[keep]
    n, p = len(data), len(drivers)
    if n < p + min_extra:
        raise ValueError(
            f"only {n} complete rows for outcome {outcome!r} and {p} drivers; at least {p + min_extra} are needed"
        )
    for c in cols:
        v = data[c].to_numpy()
        if np.all(v == v[0]):
            role = "outcome" if c == outcome else "driver"
            raise ValueError(f"{role} {c!r} is constant ({v[0]!r}) over the complete rows")
    wv = None if w is None else w[keep].to_numpy(dtype=float)
    return data, drivers, wv


def weighted_corr(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    r"""Weighted Pearson correlation matrix of the columns of ``x``.

    :math:`r_{jk} = \frac{\sum_i w_i (x_{ij}-\bar x_j)(x_{ik}-\bar x_k)}
    {\sqrt{\sum_i w_i (x_{ij}-\bar x_j)^2 \sum_i w_i (x_{ik}-\bar x_k)^2}}`
    with weighted means :math:`\bar x_j`.
    """
    x = np.asarray(x, dtype=float)
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    centred = x - (w @ x) / w.sum()
    cov = (centred * w[:, None]).T @ centred
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


# ------------------------------------------------------------------- subset R² / LMG


@lru_cache(maxsize=32)
def _subsets(p: int):
    """Per subset size k: driver indices (C(p,k), k) and bit masks of the subsets."""
    tables = []
    for k in range(1, p + 1):
        idx = np.array(list(combinations(range(p), k)), dtype=np.intp)
        masks = (np.left_shift(1, idx)).sum(axis=1)
        tables.append((idx, masks))
    return tables


@lru_cache(maxsize=32)
def _shapley_matrix(p: int) -> np.ndarray:
    """Matrix A (2^p × p) with LMG = r2 @ A: Shapley weights k!(p-k-1)!/p! on increments."""
    size = 1 << p
    masks = np.arange(size)
    popcount = np.array([bin(m).count("1") for m in range(size)])
    weight = np.array([factorial(k) * factorial(p - k - 1) / factorial(p) for k in range(p)])
    a = np.zeros((size, p))
    for j in range(p):
        bit = 1 << j
        without = masks[(masks & bit) == 0]
        wk = weight[popcount[without]]
        a[without | bit, j] += wk
        a[without, j] -= wk
    return a


def subset_r2(corr: np.ndarray) -> np.ndarray:
    r"""R² of every subset of drivers, from correlation matrices.

    ``corr`` has shape ``(..., p+1, p+1)`` with the outcome first. For each subset
    :math:`S` (bit mask :math:`m`, bit :math:`j` for driver :math:`j`),
    :math:`R^2(S) = r_{S}^\top R_{SS}^{-1} r_{S}`; subsets of the same size are solved
    in one batched call, and no model is refitted.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 2**p)``; entry 0 (empty subset) is 0.
    """
    corr = np.asarray(corr, dtype=float)
    p = corr.shape[-1] - 1
    rxx = corr[..., 1:, 1:]
    rxy = corr[..., 1:, 0]
    r2 = np.zeros(corr.shape[:-2] + (1 << p,))
    for idx, masks in _subsets(p):
        sub = rxx[..., idx[:, :, None], idx[:, None, :]]
        b = rxy[..., idx]
        sol = np.linalg.solve(sub, b[..., None])[..., 0]
        r2[..., masks] = (b * sol).sum(axis=-1)
    return r2


def lmg_from_corr(corr: np.ndarray) -> np.ndarray:
    r"""LMG importances (Shapley values of R²) from correlation matrices.

    .. math:: \mathrm{LMG}_j = \sum_{S\subseteq P\setminus\{j\}}
              \frac{|S|!\,(p-|S|-1)!}{p!}\,\bigl(R^2(S\cup\{j\}) - R^2(S)\bigr)

    computed from the R² of all :math:`2^p` subsets (:func:`subset_r2`) combined by one
    matrix product. Works on a stack of matrices ``(..., p+1, p+1)`` (outcome first).

    References
    ----------
    Lindeman, Merenda & Gold (1980); Grömping (2006).
    """
    corr = np.asarray(corr, dtype=float)
    p = corr.shape[-1] - 1
    if p > MAX_EXACT_DRIVERS:
        raise ValueError(
            f"exact LMG is limited to {MAX_EXACT_DRIVERS} drivers ({p} given); use method='relative_weights'"
        )
    return subset_r2(corr) @ _shapley_matrix(p)


def relative_weights_from_corr(corr: np.ndarray) -> np.ndarray:
    r"""Johnson's (2000) relative weights from a correlation matrix (outcome first).

    With :math:`R_{xx} = V\Lambda V^\top`, :math:`\Lambda_{xz}=V\Lambda^{1/2}V^\top`
    and :math:`\beta = \Lambda_{xz}^{-1} r_{xy}`, the weight of driver :math:`j` is
    :math:`\varepsilon_j = \sum_k \Lambda_{xz,jk}^2 \beta_k^2`; the weights sum to R².
    """
    corr = np.asarray(corr, dtype=float)
    rxx = corr[..., 1:, 1:]
    rxy = corr[..., 1:, 0]
    evals, evecs = np.linalg.eigh(rxx)
    half = (evecs * np.sqrt(np.clip(evals, 0, None))[..., None, :]) @ np.swapaxes(evecs, -1, -2)
    beta = np.linalg.solve(half, rxy[..., None])[..., 0]
    return (half**2 * (beta**2)[..., None, :]).sum(axis=-1)


def relative_importance(
    frame: pd.DataFrame,
    outcome,
    drivers,
    *,
    method: str = "lmg",
    weights=None,
) -> pd.DataFrame:
    r"""Share of the explained variance of ``outcome`` due to each driver.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per respondent; not modified. Rows with a missing outcome or driver
        ("non concerné") are dropped listwise.
    outcome : str
        Outcome column (e.g. ``overall``).
    drivers : sequence of str
        Driver columns, kept in this order in the result.
    method : {"lmg", "relative_weights"}
        ``"lmg"``: exact Shapley decomposition of R² over all :math:`2^p` subsets (see
        :func:`lmg_from_corr`), computed from the (weighted) correlation matrix; it
        raises ``ValueError`` beyond :data:`MAX_EXACT_DRIVERS` (15) drivers, where
        ``"relative_weights"`` (Johnson, 2000) is the fast approximation to use.
    weights : str or pandas.Series, optional
        Survey weights, entering through the weighted correlation matrix (point
        estimates only).

    Returns
    -------
    pandas.DataFrame
        Indexed by driver, columns ``importance`` (sums to R²) and ``share`` (sums to
        1); ``attrs["r2"]``, ``attrs["n"]`` and ``attrs["method"]``.

    Raises
    ------
    ValueError
        Outcome or driver not in the frame, a constant driver (named), fewer complete
        rows than drivers + 2, or drivers that are perfectly collinear.

    References
    ----------
    Lindeman, Merenda & Gold (1980); Grömping (2006), JSS 17(1); Johnson (2000).
    """
    if method not in ("lmg", "relative_weights"):
        raise ValueError(f"method must be 'lmg' or 'relative_weights', got {method!r}")
    data, drivers, w = _complete(frame, outcome, drivers, weights)
    if method == "lmg" and len(drivers) > MAX_EXACT_DRIVERS:
        raise ValueError(
            f"exact LMG is limited to {MAX_EXACT_DRIVERS} drivers ({len(drivers)} given); use method='relative_weights'"
        )
    corr = weighted_corr(data.to_numpy(dtype=float), w)
    _check_collinear(corr, drivers)
    imp = lmg_from_corr(corr) if method == "lmg" else relative_weights_from_corr(corr)
    r2 = float(imp.sum())
    out = pd.DataFrame({"importance": imp, "share": imp / r2}, index=pd.Index(drivers, name="driver"))
    out.attrs.update(r2=r2, n=len(data), method=method)
    return out


def grouped_importance(
    frame: pd.DataFrame,
    outcome,
    drivers,
    by,
    *,
    method: str = "lmg",
    weights=None,
) -> pd.DataFrame:
    """Relative importance of the drivers in every group of ``by`` (e.g. every service).

    The same estimator as :func:`relative_importance`, per group: one pass over the rows
    builds each group's weighted cross-product matrix (listwise complete rows), and LMG
    (or relative weights) is then computed for all groups in one batched call. Groups
    whose correlation matrix is singular (a constant driver, too few rows) get missing
    importances rather than an error, so one small service does not stop the report.

    Returns
    -------
    pandas.DataFrame
        Long format: the ``by`` columns, ``driver, importance, share, r2, n``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    for k in keys:
        if k not in frame.columns:
            raise ValueError(f"grouping column {k!r} is not in the frame")
    drivers = list(drivers)
    if outcome not in frame.columns:
        raise ValueError(f"outcome {outcome!r} is not in the frame")
    for d in drivers:
        if d not in frame.columns:
            raise ValueError(f"driver {d!r} is not in the frame")
    cols = [outcome, *drivers]
    z = frame[cols].to_numpy(dtype=float)
    w = resolve_base_weights(frame, weights).to_numpy(dtype=float)
    keep = ~np.isnan(z).any(axis=1) & frame[keys].notna().all(axis=1).to_numpy()
    grouped = frame.loc[keep, keys].groupby(keys, sort=True, observed=True)
    gid = grouped.ngroup().to_numpy()
    index = grouped.size().index
    n_groups = len(index)
    z, w = z[keep], w[keep]
    order = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order], np.arange(n_groups + 1))
    q = len(cols)
    corr = np.full((n_groups, q, q), np.nan)
    counts = np.diff(bounds)
    for g in range(n_groups):
        rows = order[bounds[g] : bounds[g + 1]]
        if rows.size < len(drivers) + 2:
            continue
        zg, wg = z[rows], w[rows]
        if np.any(zg.max(axis=0) == zg.min(axis=0)):
            continue
        centred = zg - (wg @ zg) / wg.sum()
        cov = (centred * wg[:, None]).T @ centred
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.sqrt(np.diag(cov))
            corr[g] = cov / np.outer(sd, sd)
    ok = np.isfinite(corr).all(axis=(1, 2))
    ok[ok] = np.linalg.eigvalsh(corr[ok][:, 1:, 1:]).min(axis=1) > 1e-10
    imp = np.full((n_groups, len(drivers)), np.nan)
    if ok.any():
        imp[ok] = lmg_from_corr(corr[ok]) if method == "lmg" else relative_weights_from_corr(corr[ok])
    r2 = imp.sum(axis=1)
    out = index.to_frame(index=False).loc[np.repeat(np.arange(n_groups), len(drivers))].reset_index(drop=True)
    out["driver"] = np.tile(drivers, n_groups)
    out["importance"] = imp.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["share"] = (imp / r2[:, None]).ravel()
    out["r2"] = np.repeat(r2, len(drivers))
    out["n"] = np.repeat(counts, len(drivers))
    return out


def _check_collinear(corr: np.ndarray, drivers) -> None:
    rxx = corr[1:, 1:]
    evals = np.linalg.eigvalsh(rxx)
    if evals.min() <= 1e-10 * max(evals.max(), 1.0):
        # Name the driver best explained by the others (largest diagonal of the inverse).
        vif = np.diag(np.linalg.pinv(rxx))
        raise ValueError(
            f"drivers are perfectly collinear (e.g. {drivers[int(np.argmax(vif))]!r}); drop or merge one of them"
        )


# ------------------------------------------------------------------- ordinal logit


class _WeightedOrderedModel(OrderedModel):
    """OrderedModel maximising the weighted log-likelihood sum_i w_i log L_i."""

    def __init__(self, endog, exog, *, case_weights, **kwds):
        super().__init__(endog, exog, **kwds)
        self.case_weights = np.asarray(case_weights, dtype=float)

    def loglikeobs(self, params):
        return self.case_weights * super().loglikeobs(params)


@dataclass(frozen=True, eq=False)
class OrdinalLogitResult:
    """Proportional-odds (ordinal logit) fit.

    Attributes
    ----------
    coef, se : pandas.Series
        Slopes by driver on the latent logit scale and their standard errors
        (model-based when unweighted; sandwich when weighted).
    cutpoints : pandas.Series
        Increasing thresholds on the latent scale, indexed ``"1|2"``, ``"2|3"`` ...
    deviance : float
        ``-2`` × (weighted, with weights normalised to mean 1) log-likelihood.
    n : int
        Complete rows used.
    converged : bool
        Whether the optimiser reported convergence.
    weighted : bool
        Whether survey weights were used.
    """

    coef: pd.Series
    se: pd.Series
    cutpoints: pd.Series
    deviance: float
    n: int
    converged: bool
    weighted: bool

    @property
    def odds_ratios(self) -> pd.Series:
        """exp(coef): multiplicative change in the odds of a higher rating per point."""
        return np.exp(self.coef)

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided Wald p-values of the slopes."""
        from scipy import stats

        return pd.Series(2 * stats.norm.sf(np.abs(self.coef / self.se)), index=self.coef.index)


def ordinal_logit(
    frame: pd.DataFrame,
    outcome,
    drivers,
    *,
    weights=None,
    scale: tuple[int, int] | None = FIVE_POINT,
    maxiter: int = 2000,
) -> OrdinalLogitResult:
    r"""Proportional-odds logit of ``outcome`` on the drivers.

    .. math:: \Pr(Y \le k \mid x) = \operatorname{logit}^{-1}(\tau_k - x^\top\beta)

    fitted by statsmodels' ``OrderedModel`` with ``distr="logit"`` and no constant (the
    cutpoints :math:`\tau_k` play its role); cutpoints are read back with
    ``transform_threshold_params``. Only the outcome levels observed are modelled.

    With ``weights``, the weighted log-likelihood :math:`\sum_i w_i \log L_i(\theta)`
    (weights normalised to mean 1) is maximised (pseudo-maximum likelihood) and the
    standard errors are the sandwich :math:`H^{-1} \bigl(\frac{n}{n-1}\sum_i s_i
    s_i^\top\bigr) H^{-1}` from the weighted scores :math:`s_i` (units as PSUs,
    with replacement). Without weights, the model-based SEs of statsmodels are returned.

    Parameters
    ----------
    scale : (int, int) or None
        Declared scale of ``outcome`` (default 1-5); a value outside raises ValueError.

    Returns
    -------
    OrdinalLogitResult

    References
    ----------
    McCullagh (1980); Binder, D. A. (1983), On the variances of asymptotically normal
    estimators from complex surveys, *International Statistical Review* 51(3), 279-292.
    """
    if outcome in frame.columns:
        check_scale(frame[outcome], scale, column=outcome)
    data, drivers, w = _complete(frame, outcome, drivers, weights)
    levels = np.sort(data[outcome].unique())
    endog = pd.Series(pd.Categorical(data[outcome], categories=levels, ordered=True), index=data.index, name=outcome)
    exog = data[drivers].astype(float)
    if w is None:
        model = OrderedModel(endog, exog, distr="logit")
    else:
        model = _WeightedOrderedModel(endog, exog, distr="logit", case_weights=w / w.mean())
    with warnings.catch_warnings():
        # Non-convergence is reported in the result (``converged``), not as a warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = model.fit(method="bfgs", maxiter=maxiter, disp=False)
    params = np.asarray(fit.params, dtype=float)
    p = len(drivers)
    if w is None:
        se = np.asarray(fit.bse, dtype=float)[:p]
    else:
        scores = model.score_obs(params)
        n = scores.shape[0]
        meat = n / (n - 1) * (scores.T @ scores)
        bread = np.linalg.inv(model.hessian(params))
        se = np.sqrt(np.diag(bread @ meat @ bread))[:p]
    thresholds = model.transform_threshold_params(params)[1:-1]
    labels = [f"{a:g}|{b:g}" for a, b in zip(levels[:-1], levels[1:], strict=True)]
    return OrdinalLogitResult(
        coef=pd.Series(params[:p], index=pd.Index(drivers, name="driver"), name="coef"),
        se=pd.Series(se, index=pd.Index(drivers, name="driver"), name="se"),
        cutpoints=pd.Series(thresholds, index=labels, name="cutpoint"),
        deviance=float(-2.0 * model.loglike(params)),
        n=len(data),
        converged=bool(fit.mle_retvals.get("converged", True)),
        weighted=w is not None,
    )


# ------------------------------------------------------------------ penalty-reward


def penalty_reward(
    frame: pd.DataFrame,
    outcome,
    drivers,
    *,
    low=(1, 2),
    high=(5,),
    weights=None,
    scale: tuple[int, int] | None = FIVE_POINT,
    cutoff: float = IA_CUTOFF,
) -> pd.DataFrame:
    r"""Penalty-reward contrast analysis with the impact-asymmetry index.

    Each driver is dummy-coded into "low" (rating in ``low``) and "high" (rating in
    ``high``), the middle ratings being the reference; ``outcome`` is regressed on all
    dummies at once (OLS, or WLS with survey weights, HC1 sandwich SEs):

    .. math:: y = \alpha + \sum_j (\beta^{low}_j L_j + \beta^{high}_j H_j) + \varepsilon

    penalty :math:`= |\beta^{low}_j|`, reward :math:`= \beta^{high}_j`, and the
    impact-asymmetry index :math:`IA = (\text{reward}-\text{penalty})/
    (\text{reward}+\text{penalty})`. A driver is "basic" (a dissatisfier: it hurts when
    poor, earns little when excellent) when :math:`IA < -c`, "excitement" when
    :math:`IA > c`, "performance" otherwise, with the documented cutoff :math:`c=0.1`.

    Parameters
    ----------
    low, high : sequence of int
        Ratings coded as poor and as excellent.
    scale : (int, int) or None
        Declared scale of outcome and drivers (default 1-5).
    cutoff : float
        The IA cutoff :math:`c`.

    Returns
    -------
    pandas.DataFrame
        Indexed by driver: ``penalty, reward, penalty_se, reward_se, ia, category``;
        ``attrs["r2"]``, ``attrs["n"]``.

    References
    ----------
    Brandt, D. R. (1987), *Marketing Science Institute Working Paper*; Matzler et al.
    (2004); Mikulić & Prebežac (2011).
    """
    drivers = list(drivers)
    for c in [outcome, *drivers]:
        if c in frame.columns:
            check_scale(frame[c], scale, column=c)
    # Two dummies per driver plus the intercept: 2p + 2 rows at least.
    data, drivers, w = _complete(frame, outcome, drivers, weights, min_extra=len(drivers) + 2)
    columns = {}
    for d in drivers:
        v = data[d]
        for kind, values in (("low", low), ("high", high)):
            dummy = v.isin(values).astype(float)
            if dummy.sum() == 0 or dummy.sum() == len(dummy):
                raise ValueError(
                    f"driver {d!r}: {'no' if dummy.sum() == 0 else 'every'} respondent "
                    f"rated it {kind} {tuple(values)!r}; its {kind} effect cannot be estimated"
                )
            columns[(d, kind)] = dummy.to_numpy()
    x = np.column_stack([np.ones(len(data)), *columns.values()])
    y = data[outcome].to_numpy(dtype=float)
    model = sm.WLS(y, x, weights=np.ones(len(y)) if w is None else w)
    fit = model.fit(cov_type="HC1")
    params = np.asarray(fit.params)[1:].reshape(-1, 2)
    bse = np.asarray(fit.bse)[1:].reshape(-1, 2)
    penalty = np.abs(params[:, 0])
    reward = params[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ia = (reward - penalty) / (reward + penalty)
    category = np.select([ia < -cutoff, ia > cutoff], ["basic", "excitement"], default="performance")
    out = pd.DataFrame(
        {
            "penalty": penalty,
            "reward": reward,
            "penalty_se": bse[:, 0],
            "reward_se": bse[:, 1],
            "ia": ia,
            "category": category,
        },
        index=pd.Index(drivers, name="driver"),
    )
    out.attrs.update(r2=float(fit.rsquared), n=len(data), cutoff=cutoff)
    return out
