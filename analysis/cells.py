"""Estimates from cells of sufficient statistics instead of respondents.

The read model keeps, per profile cell (age band × sex × area × frequency of use, within
a service, site and month), the count, sum, sum of squares and count satisfied of each
question, and the cross-products of ``overall`` and the drivers. Survey weights are
constant within a profile cell (raking only uses profile columns), so every statistic of
:mod:`analysis.estimates`, :mod:`analysis.segments` and :mod:`analysis.drivers` can be
computed exactly from the cells: the functions here give the same numbers as those
functions on the respondents' frame.

Input frames are those of ``barometer.results``: ``cells_frame`` (columns ``period``,
``site_id``, the profile columns, ``question_key``, ``n, total, total_sq, satisfied``)
and ``moments_frame``.

Scope and domains: the cells passed are the sample (the design); a group (a period, a
site, a public) is a domain of it, as :func:`analysis.estimates.mean` estimates a
domain when the outcome is missing outside it. Raking (:func:`rake_cells`) calibrates
the whole scope once; each domain's SE then accounts for the calibration.

References
----------
Deville, J.-C. & Särndal, C.-E. (1992). Calibration estimators in survey sampling.
*JASA*, 87(418), 376-382.

Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley, 2.4, 7.4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from analysis._design import check_level
from analysis.drivers import MAX_EXACT_DRIVERS, _check_collinear, lmg_from_corr, relative_weights_from_corr
from analysis.estimates import (
    Estimate,
    SuppressionRules,
    table_columns,
)
from analysis.segments import gaps_table
from analysis.weighting import Raking, _rake_codes, _targets, resolve_base_weights

__all__ = [
    "CellEstimates",
    "CellRaking",
    "PROFILE",
    "RESPONSES",
    "UNKNOWN",
    "complete_margins",
    "estimate",
    "estimates",
    "rake_cells",
    "relative_importance",
    "segment_gaps",
    "weighted_corr",
    "with_period",
]

#: The profile columns that make a cell (weights are constant within a cell).
PROFILE = ("age_band", "sex", "area", "frequency")
#: The ``question_key`` of the cell rows that count responses (the design's rows).
RESPONSES = "_responses"
#: The raking category of respondents whose answer is missing or outside the margins.
UNKNOWN = "(inconnu)"
#: Pandas frequencies of the period grains.
GRAINS = {"month": "M", "quarter": "Q", "year": "Y"}

Statistic = Literal["mean", "satisfied"]


def with_period(cells: pd.DataFrame, grain: Literal["month", "quarter", "year"]) -> pd.DataFrame:
    """A copy of ``cells`` (or of a respondents' frame) whose ``period`` is at ``grain``
    (month, quarter or year); ``period`` must be a monthly Period column."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")
    return cells.assign(period=cells["period"].array.asfreq(GRAINS[grain]))


# ------------------------------------------------------------------------- raking


def complete_margins(frame: pd.DataFrame, margins: Mapping, *, weights=None) -> tuple[pd.DataFrame, dict]:
    r"""Margins that every respondent fits, and the raking columns recoded to them.

    A respondent whose answer to a raking dimension is missing ("préfère ne pas dire")
    or not among the margin's categories (a resident from outside the commune) is put
    in the category `UNKNOWN`, whose target is its (weighted) sample share
    :math:`p_u`; the known categories share the rest in the margin's proportions,
    :math:`t_c = (1-p_u)\,s_c/\sum_k s_k`. Raking then leaves the unknown group's
    weight as it is and calibrates the others among themselves. Works on respondents
    (``weights`` None) and on cells (``weights`` the response counts): one rule for
    both.

    Returns
    -------
    (pandas.DataFrame, dict)
        A copy of the frame with its raking columns recoded (object dtype), and the
        margins as shares that sum to one.
    """
    base = resolve_base_weights(frame, weights).to_numpy(dtype=float)
    total = base.sum()
    out = frame.copy()
    completed = {}
    for column, shares in margins.items():
        if column not in frame.columns:
            raise ValueError(f"raking column {column!r} is not in the frame")
        values = frame[column]
        known = values.isin(list(shares)).fillna(False).to_numpy(dtype=bool)
        out[column] = np.where(known, values.astype(object).to_numpy(), UNKNOWN)
        unknown = float(base[~known].sum() / total) if total > 0 else 0.0
        scale = (1.0 - unknown) / float(sum(shares.values()))
        completed[column] = {category: share * scale for category, share in shares.items()}
        if unknown > 0:
            completed[column][UNKNOWN] = unknown
    return out, completed


def _is(values: pd.Series, key) -> np.ndarray:
    """Whether each value equals ``key``; a categorical column compares its codes."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.array.codes
        try:
            return codes == values.dtype.categories.get_loc(key)
        except KeyError:
            return np.zeros(codes.size, dtype=bool)
    return (values == key).to_numpy(dtype=bool)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's position among the sorted distinct values of an integer array, and
    those values: ``np.unique``'s inverse and uniques, by a table over the values' range
    when it is small (the codes of a few columns combined), without sorting."""
    if values.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    low = int(values.min())
    span = int(values.max()) - low + 1
    if span > max(2 * values.size, 1 << 16):
        distinct, inverse = np.unique(values, return_inverse=True)
        return inverse.reshape(-1).astype(np.intp, copy=False), distinct
    shifted = values - low
    present = np.zeros(span, dtype=bool)
    present[shifted] = True
    rank = np.cumsum(present, dtype=np.intp) - 1
    return rank[shifted], np.flatnonzero(present) + low


def _combine(codes: Sequence[np.ndarray], sizes: Sequence[int], shift: int = 0) -> np.ndarray:
    """The index of each row's tuple of codes (each code plus ``shift`` below its size):
    ``np.ravel_multi_index`` without its checks, in place on one array."""
    flat = codes[0] + shift if shift else codes[0].astype(np.intp, copy=True)
    for more, size in zip(codes[1:], sizes[1:], strict=True):
        flat *= size
        flat += more
        if shift:
            flat += shift
    return flat


def _factorize(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes of a column's values, in sorted order, -1 for a missing value; read off the
    codes of a categorical column and the ordinals of a period column (no hashing)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):  # the read model's frames: codes at hand
        if dtype.categories.is_monotonic_increasing:
            return values.array.codes.astype(np.intp), dtype.categories
    elif isinstance(dtype, pd.PeriodDtype):
        missing = values.array.isna()
        if missing.any():
            codes = np.full(len(values), -1, dtype=np.intp)
            codes[~missing], ordinals = _dense_codes(values.array.asi8[~missing])
        else:
            codes, ordinals = _dense_codes(values.array.asi8)
        return codes, pd.PeriodIndex.from_ordinals(ordinals, freq=dtype.freq)
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp, copy=False), pd.Index(uniques)


def _sorted(values) -> list:
    """Values in the order pandas sorts group keys."""
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return list(pd.factorize(np.array(list(values), dtype=object), sort=True)[1])


@lru_cache(maxsize=256)
def _labels(values: tuple) -> tuple[pd.Index, pd.api.extensions.ExtensionArray]:
    """A raking column's categories in the cells (sorted) as an index level, and as
    the array of a frame's column of them (the dtype pandas infers for them: text or
    objects), to take from. Made once per list of categories: services share them, and
    converting a few labels to text costs more than the rest of a raking."""
    return pd.Index(list(values)), pd.Series(np.array(values, dtype=object)).array


@dataclass(frozen=True, eq=False)
class CellRaking:
    """Raking of a scope of cells to population margins (see :func:`rake_cells`).

    Attributes
    ----------
    raking : analysis.weighting.Raking
        The raking of the raking cells, with the response counts as base weights (its
        ``weights`` are the raked totals of each cell; ``n_eff`` and ``deff`` are not
        the respondents').
    margins : dict
        The completed margins used (shares, with `UNKNOWN` where needed).
    unit_weights : pandas.Series
        The raked weight of one respondent of each raking cell, indexed by the raking
        columns (recoded).
    """

    raking: Raking
    margins: Mapping
    unit_weights: pd.Series

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.margins)

    @cached_property
    def _sizes(self) -> list[int]:
        return [len(t) for t in self.margins.values()]

    @cached_property
    def _grid(self) -> np.ndarray:
        """Unit weights over every combination of the margins' categories (NaN: none)."""
        grid = np.full(int(np.prod(self._sizes)), np.nan)
        index = self.unit_weights.index
        if isinstance(index, pd.MultiIndex):  # each level's values looked up once
            positions = []
            for values, codes, targets in zip(index.levels, index.codes, self.margins.values(), strict=True):
                where = {category: i for i, category in enumerate(targets)}
                positions.append(np.array([where.get(v, -1) for v in values], dtype=np.intp)[codes])
        else:
            positions = [
                pd.Index(list(targets)).get_indexer(index.get_level_values(i))
                for i, targets in enumerate(self.margins.values())
            ]
        grid[np.ravel_multi_index(positions, self._sizes)] = self.unit_weights.to_numpy()
        return grid

    @cached_property
    def _lookups(self) -> dict[str, tuple[dict, int]]:
        """Per raking column, the position of each known category in the margin's
        categories, and that of `UNKNOWN` (-1 when the margin has none)."""
        out = {}
        for column, targets in self.margins.items():
            targets = list(targets)
            unknown = targets.index(UNKNOWN) if UNKNOWN in targets else -1
            out[column] = ({category: i for i, category in enumerate(targets) if category != UNKNOWN}, unknown)
        return out

    def _positions(self, column: str, codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
        """Position in the margin's categories of each coded value (`UNKNOWN` for a
        missing value or a category the margins lack)."""
        known, unknown = self._lookups[column]
        lookup = np.array([known.get(value, unknown) for value in uniques] + [unknown], dtype=np.intp)
        positions = lookup[codes]
        if (positions < 0).any():
            raise ValueError(f"rows outside the raked scope (column {column!r}): rake the cells that hold them")
        return positions

    def _cells(self, coded: Mapping[str, tuple[np.ndarray, pd.Index]]) -> np.ndarray:
        """Each row's raking cell: its position in `_grid`, from the rows' coded raking
        columns."""
        return _combine([self._positions(column, *coded[column]) for column in self.margins], self._sizes)

    def _weights(self, coded) -> np.ndarray:
        return self._cell_weights(self._cells(coded))

    def _cell_weights(self, cells: np.ndarray) -> np.ndarray:
        """The unit weight of rows in raking cells ``cells`` (see `_cells`)."""
        weights = self._grid[cells]
        if np.isnan(weights).any():
            raise ValueError("rows outside the raked scope: rake the cells that hold them")
        return weights

    @cached_property
    def _dummies(self) -> np.ndarray:
        """The raking dummies of every raking cell (one row per cell of `_grid`, one
        column per category of each margin, as ``Raking.calibration_matrix``)."""
        sizes = self._sizes
        positions = np.unravel_index(np.arange(len(self._grid)), sizes)
        x = np.zeros((len(self._grid), sum(sizes)))
        offset = 0
        for at, size in zip(positions, sizes, strict=True):
            x[np.arange(len(self._grid)), offset + at] = 1.0
            offset += size
        return x

    def weights_for(self, frame: pd.DataFrame) -> np.ndarray:
        """The raked weight of one respondent of each row of ``frame`` (cells, moments
        or respondents), from its profile columns."""
        return self._weights({column: _factorize(frame[column]) for column in self.margins})


def rake_cells(cells: pd.DataFrame, margins: Mapping, **options) -> CellRaking:
    """Rake the responses of ``cells`` to the population ``margins``.

    The response counts of the cells (rows of `RESPONSES`) are the base weights of
    :func:`analysis.weighting.rake` on the raking cells: iterative proportional fitting
    multiplies every respondent of a cell by the same factors, so the result is the
    raking of the respondents themselves (after :func:`complete_margins`, on the
    respondents or the cells alike). ``options`` go to ``rake`` (``trim``,
    ``max_iter``, ``tol``). Raises ``ValueError`` as ``rake`` does (a margin category
    without a respondent in the scope ...).

    The raking cells are summed from the columns' codes (what ``complete_margins`` and
    a grouping of the responses by the recoded raking columns, sorted, give), then
    raked as ``rake`` does.
    """
    if not margins:
        raise ValueError("margins: at least one raking variable is needed")
    dims = list(margins)
    is_design = _is(cells["question_key"], RESPONSES)
    if not is_design.any():
        raise ValueError(f"the cells hold no {RESPONSES!r} rows: the responses they describe are unknown")
    base = cells["n"].to_numpy()[is_design].astype(float)
    coded = [_factorize(cells[d]) for d in dims]
    codes = [c[is_design] for c, _ in coded]
    # The responses' groups by the raking columns as they are (a missing value is one):
    # complete_margins takes their sums as weights, which must be positive.
    if not (base > 0).all():
        groups = _dense_codes(np.ravel_multi_index([c + 1 for c in codes], [len(u) + 1 for _, u in coded]))[0]
        sums = np.bincount(groups, weights=base)
        if not np.isfinite(sums).all():
            raise ValueError("weights: column 'n' has missing or infinite values")
        if (sums <= 0).any():
            raise ValueError("weights: column 'n' has weights that are zero or negative")
    total = base.sum()
    completed, labels, recoded = {}, [], []
    for column, shares, (_, uniques), at in zip(dims, margins.values(), coded, codes, strict=True):
        is_known = [value in shares for value in uniques] + [False]  # the last code: missing
        names = [value if ok else UNKNOWN for value, ok in zip(uniques, is_known, strict=False)] + [UNKNOWN]
        known = np.array(is_known)[at]
        unknown = float(base[~known].sum() / total) if total > 0 else 0.0
        scale = (1.0 - unknown) / float(sum(shares.values()))
        completed[column] = {category: share * scale for category, share in shares.items()}
        if unknown > 0:
            completed[column][UNKNOWN] = unknown
        used = np.zeros(len(names), dtype=bool)
        used[at] = True
        present = _sorted({names[i] for i in np.flatnonzero(used)})
        where = {name: i for i, name in enumerate(present)}
        labels.append(present)
        recoded.append(np.array([where.get(name, -1) for name in names], dtype=np.intp)[at])
    # The raking cells, sorted by their recoded values, and their response counts.
    sizes = [len(present) for present in labels]
    cell, keys = _dense_codes(_combine(recoded, sizes))
    d = np.bincount(cell, weights=base, minlength=keys.size)
    level_codes = np.unravel_index(keys, sizes)
    totals = _targets(completed, float(d.sum()))
    positions = []
    for column, present, at in zip(dims, labels, level_codes, strict=True):
        for category in completed[column]:
            if category not in present:
                raise ValueError(
                    f"raking column {column!r}: margin category {category!r} has a target but no "
                    "respondent in the sample; collapse it with a neighbouring category"
                )
        order = list(completed[column])
        positions.append(np.array([order.index(name) for name in present], dtype=np.intp)[at])
    levels = [_labels(tuple(present)) for present in labels]
    variables = pd.DataFrame(
        {column: values.take(at) for column, (_, values), at in zip(dims, levels, level_codes, strict=True)}
    )
    raking = _rake_codes(d, positions, completed, totals, index=pd.RangeIndex(d.size), variables=variables, **options)
    index = pd.MultiIndex(
        levels=[level for level, _ in levels], codes=list(level_codes), names=dims, verify_integrity=False
    )
    unit = pd.Series(raking.weights.to_numpy() / d, index=index, name="weight")
    return CellRaking(raking=raking, margins=completed, unit_weights=unit)


# --------------------------------------------------------------------- variances


@dataclass(frozen=True, eq=False)
class _Rows:
    """The design's rows: the respondents of one group and profile cell, with their
    number ``N`` and the answers' number ``n``, sum ``s`` and sum of squares ``q``; each
    level column coded (``coded[column] = (codes, sorted values)``, -1 for missing)."""

    N: np.ndarray
    n: np.ndarray
    s: np.ndarray
    q: np.ndarray
    coded: Mapping[str, tuple[np.ndarray, pd.Index]]

    def __len__(self) -> int:
        return self.N.size


def _rows(cells: pd.DataFrame, key: str, by: list[str], statistic: Statistic) -> _Rows:
    """Sum the cells of ``key`` (and of `RESPONSES`) at the level of ``by`` and the
    profile: every column coded once, the rows' sums by ``np.bincount`` on the codes."""
    if statistic not in ("mean", "satisfied"):
        raise ValueError(f"statistic must be 'mean' or 'satisfied', got {statistic!r}")
    for column in by:
        if column not in cells.columns:
            raise ValueError(f"grouping column {column!r} is not in the cells")
    level = list(dict.fromkeys([*by, *PROFILE]))
    coded = {column: _factorize(cells[column]) for column in level}
    sizes = [len(uniques) + 1 for _, uniques in coded.values()]
    flat = _combine([codes for codes, _ in coded.values()], sizes, shift=1)
    question = cells["question_key"]
    is_design = _is(question, RESPONSES)
    if not is_design.any() and len(cells):
        raise ValueError(f"the cells hold no {RESPONSES!r} rows: the responses they describe are unknown")
    counts = cells["n"].to_numpy(dtype=float)
    inverse, design = _dense_codes(flat[is_design])
    N = np.bincount(inverse, weights=counts[is_design], minlength=design.size)
    is_key = _is(question, key)
    keyed = flat[is_key]
    space = math.prod(sizes)
    if space <= max(2 * flat.size, 1 << 16):  # each combination's design row, from a table
        row = np.full(space, -1, dtype=np.intp)
        row[design] = np.arange(design.size)
        at = row[keyed]
        missing = (at < 0).any()
    else:
        at = np.searchsorted(design, keyed)
        missing = at.size and ((at >= design.size) | (design[np.minimum(at, design.size - 1)] != keyed)).any()
    if missing:
        raise ValueError(f"the cells of {key!r} hold answers of no response")
    n = np.bincount(at, weights=counts[is_key], minlength=design.size)
    if (n > N).any():
        raise ValueError(f"the cells of {key!r} count more answers than responses")
    if statistic == "mean":
        s, q = (
            np.bincount(at, weights=cells[column].to_numpy(dtype=float)[is_key], minlength=design.size)
            for column in ("total", "total_sq")
        )
    else:  # the indicator of satisfaction is its own square
        s = q = np.bincount(at, weights=cells["satisfied"].to_numpy(dtype=float)[is_key], minlength=design.size)
    # Each design row's codes: those of one of its cells.
    first = np.empty(design.size, dtype=np.intp)
    first[inverse] = np.flatnonzero(is_design)
    return _Rows(N=N, n=n, s=s, q=q, coded={c: (codes[first], uniques) for c, (codes, uniques) in coded.items()})


def _pinv_times(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``np.linalg.pinv(gram, hermitian=True) @ rhs`` for a symmetric positive
    semi-definite ``gram`` (the same cut-off of small eigenvalues), from its
    eigendecomposition without forming the pseudo-inverse."""
    values, vectors = np.linalg.eigh(gram)
    size = np.abs(values)
    inverse = np.divide(1.0, values, out=np.zeros_like(values), where=size > 1e-15 * size.max(initial=0.0))
    return vectors @ (inverse[:, None] * (vectors.T @ rhs))


def _variances(
    rows: _Rows,
    w: np.ndarray,
    raking: CellRaking | None,
    cells: np.ndarray | None,
    row: np.ndarray,
    score: np.ndarray,
    u: np.ndarray,
    uu: np.ndarray,
    size: int,
) -> np.ndarray:
    r"""Linearised variances of ``size`` linear statistics of the design rows.

    Score :math:`j` is :math:`u_i = c_{rj}(y_i - m_{rj})` for the respondents with a
    value in row :math:`r` that it counts, zero elsewhere. Its sums over a row,
    :math:`U_{rj} = c(S_r - m n_r)` and :math:`UU_{rj} = \sum u_i^2 = c^2(Q_r - 2mS_r
    + m^2 n_r)`, are given where they are not zero: entry :math:`e` is row ``row[e]``
    of score ``score[e]``, with :math:`U` ``u[e]`` and :math:`UU` ``uu[e]`` (a sparse
    matrix: a group's score counts its own rows only). After raking, :math:`u` is
    replaced by its residual :math:`u_i - a_{rj}`, :math:`a_{rj} = x_r^\top\beta_j`
    from the WLS fit on the raking dummies :math:`x_r` (constant within a row, hence
    solved on rows weighted by their size :math:`N_r`), whose sums are :math:`U - N a`
    and :math:`UU - 2aU + N a^2`. The dummies, the fitted values and the weights are
    those of the rows' raking cells (``cells``, from `CellRaking._cells`): the normal
    equations and the sums over the rows are summed by raking cell first. Then
    :math:`\hat V_j = \frac{m}{m-1}\bigl(\sum_i (w_i e_i)^2 - (\sum_i w_i e_i)^2/m\bigr)`
    over the :math:`m` respondents, as :class:`analysis._design.Design` computes it
    respondent by respondent.
    """
    N = rows.N
    m = float(N.sum())
    if m < 2:
        return np.full(size, np.nan)
    w_e = w[row]
    w2_e = w_e**2
    sum_z = np.bincount(score, weights=w_e * u, minlength=size)
    sum_z2 = np.bincount(score, weights=w2_e * uu, minlength=size)
    if raking is not None:
        x = raking._dummies
        count = len(x)
        # Per raking cell: its respondents, its unit weight and the sums of U.
        n_cell = np.bincount(cells, weights=N, minlength=count)
        w_cell = np.where(n_cell > 0, raking._grid, 0.0)
        entry = cells[row] * size + score
        u_cell = np.bincount(entry, weights=u, minlength=count * size).reshape(count, size)
        # Normal equations on the cells: X'NX is small (one column per category), and its
        # pseudo-inverse gives the fitted values whatever the dummies' collinearity.
        beta = _pinv_times(x.T @ (n_cell[:, None] * x), x.T @ u_cell)
        fitted = x @ beta
        sum_z = sum_z - (w_cell * n_cell) @ fitted
        sum_z2 = (
            sum_z2
            - 2.0 * np.bincount(score, weights=w2_e * fitted.ravel()[entry] * u, minlength=size)
            + (w_cell**2 * n_cell) @ (fitted * fitted)
        )
    return np.maximum(m / (m - 1) * (sum_z2 - sum_z**2 / m), 0.0)


def _weights(rows: _Rows, raking: CellRaking | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows' unit weights, and their raking cells (None: not raked)."""
    if raking is None:
        return np.ones(len(rows)), None
    cells = raking._cells(rows.coded)
    return raking._cell_weights(cells), cells


# --------------------------------------------------------------------- estimates


@dataclass(frozen=True, eq=False)
class CellEstimates:
    """Estimates of one question per group, from cells.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group with responses: the ``by`` columns, then ``value, se,
        ci_low, ci_high, n, n_eff, deff, rse, flag`` as
        :func:`analysis.estimates.grouped_means` (proportions in [0, 1]).
    by : tuple of str
    statistic : {"mean", "satisfied"}
    weighted : bool
        Whether the estimates are raked.
    level : float
    """

    table: pd.DataFrame
    by: tuple[str, ...]
    statistic: str
    weighted: bool
    level: float = 0.95

    def get(self, *group) -> Estimate:
        """The estimate of one group (its ``by`` values, in order) as an Estimate."""
        if len(group) != len(self.by):
            raise ValueError(f"{len(self.by)} group values expected ({', '.join(self.by)}), got {len(group)}")
        at = self._positions.get(tuple(group), -1) if not any(pd.isna(v) for v in group) else -1
        if at < 0:
            raise KeyError(group)
        c = self._columns
        return Estimate(
            value=float(c["value"][at]),
            se=float(c["se"][at]),
            ci_low=float(c["ci_low"][at]),
            ci_high=float(c["ci_high"][at]),
            n=int(c["n"][at]),
            n_eff=float(c["n_eff"][at]),
            deff=float(c["deff"][at]),
            flag=str(c["flag"][at]),
            rse=float(c["rse"][at]),
            level=self.level,
        )

    @cached_property
    def _positions(self) -> dict[tuple, int]:
        """Row of each group's values (-1: several rows), built once: `get` is called
        per period, site or category, and a scan of the table per call cost more than
        the estimates themselves."""
        keys = zip(*(self.table[c].array for c in self.by), strict=True) if self.by else [()] * len(self.table)
        out: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            if any(pd.isna(v) for v in key):
                continue  # a missing value equals nothing
            out[key] = -1 if key in out else i
        return out

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        names = ("value", "se", "ci_low", "ci_high", "n", "n_eff", "deff", "flag", "rse")
        return {name: self.table[name].to_numpy() for name in names}


def _groups(rows: _Rows, by: list[str]) -> tuple[np.ndarray, int, dict[str, pd.Index]]:
    """Each row's group (-1 when a ``by`` value is missing), the number of groups and
    their values (one Index per ``by`` column), sorted."""
    if not by:
        return np.zeros(len(rows), dtype=np.intp), 1, {}
    codes = [rows.coded[column][0] for column in by]
    sizes = [max(len(rows.coded[column][1]), 1) for column in by]  # a column all missing: no group
    known = np.all([c >= 0 for c in codes], axis=0) if len(by) > 1 else codes[0] >= 0
    flat = _combine([c[known] for c in codes], sizes)
    inverse, keys = _dense_codes(flat)
    groups = np.full(len(rows), -1, dtype=np.intp)
    groups[known] = inverse
    at = np.unravel_index(keys, sizes)
    return groups, keys.size, {column: rows.coded[column][1].take(at[i]) for i, column in enumerate(by)}


def _estimates(
    cells: pd.DataFrame,
    key: str,
    by: list[str],
    statistic: Statistic,
    raking: CellRaking | None,
    rules: SuppressionRules | None,
    level: float,
) -> tuple[dict[str, pd.Index], dict[str, np.ndarray]]:
    """The groups' values and the columns of :func:`estimates`' table, as arrays."""
    check_level(level)
    rows = _rows(cells, key, by, statistic)
    w, raking_cells = _weights(rows, raking)
    groups, size, values = _groups(rows, by)
    at = np.flatnonzero(groups >= 0)
    group = groups[at]
    n_r, s_r, q_r, w_r = rows.n[at], rows.s[at], rows.q[at], w[at]

    def sums(x: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=x, minlength=size)

    total_w = sums(w_r * n_r)
    n = sums(n_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = sums(w_r * s_r) / total_w
        n_eff = np.where(n > 0, total_w**2 / sums(w_r**2 * n_r), 0.0)
        # Each row counts in its group's score only.
        centre, coef = value[group], 1.0 / total_w[group]
        u = coef * (s_r - centre * n_r)
        uu = coef**2 * (q_r - 2 * centre * s_r + centre**2 * n_r)
        var = _variances(rows, w, raking, raking_cells, at, group, u, uu, size)
        var = np.where(n > 0, var, np.nan)
        se = np.sqrt(var)
        mean_sq = sums(w_r * q_r) / total_w
        s2 = np.maximum(mean_sq - value**2, 0.0) * np.where(n > 1, n / (n - 1), np.nan)
        var_srs = s2 / n
        deff = np.where(var_srs > 0, var / var_srs, np.nan)
    return values, table_columns(value, se, n, n_eff, deff, binary=statistic == "satisfied", level=level, rules=rules)


def estimates(
    cells: pd.DataFrame,
    key: str,
    *,
    by: str | Sequence[str] = (),
    statistic: Statistic = "mean",
    raking: CellRaking | None = None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
) -> CellEstimates:
    r"""Mean or share satisfied of question ``key`` in every group of ``by``.

    Each group (a ``period``, a ``site_id``, a profile category ...; no ``by``: the
    whole scope) is a domain :math:`D` of the scope of ``cells``. With weights
    :math:`w_r` constant within a design row :math:`r` (a group × profile cell) holding
    :math:`N_r` respondents, :math:`n_r` of them with a value, of sum :math:`S_r` and sum
    of squares :math:`Q_r`:

    .. math:: \hat{\bar y}_D = \frac{\sum_{r\in D} w_r S_r}{\sum_{r\in D} w_r n_r},\qquad
              n^{Kish}_D = \frac{(\sum_{r\in D} w_r n_r)^2}{\sum_{r\in D} w_r^2 n_r}

    and the Taylor-linearised variance of :func:`analysis.estimates.mean` (residualised
    on the raking dummies when raked), computed from the rows (see ``_variances``).
    The share satisfied is the mean of the indicator of `analysis.scales.SATISFIED`,
    with Wilson's interval on the effective n as in
    :func:`analysis.estimates.proportion`; means get a normal interval. The result
    equals ``mean(frame, key, weights=raking)`` (or ``proportion``) on the
    respondents of each group, the respondents of the scope being the design.

    Parameters
    ----------
    cells : pandas.DataFrame
        A scope of ``barometer.results.cells_frame`` rows (e.g. one service over a date
        range, with :func:`with_period` for quarters or years); not modified.
    key : str
        Question key (``overall``, a driver ...).
    by : str or sequence of str
        Grouping columns of ``cells``; rows with a missing group value are in no group.
    statistic : {"mean", "satisfied"}
    raking : CellRaking, optional
        From :func:`rake_cells` on the same scope; unweighted when None.
    rules : SuppressionRules, optional
    level : float

    Returns
    -------
    CellEstimates

    References
    ----------
    Hájek (1971); Wolter (2007), ch. 6; Deville & Särndal (1992); Wilson (1927);
    Kish (1965); Lumley (2010), 2.4, 7.4.
    """
    by = [by] if isinstance(by, str) else list(by)
    values, columns = _estimates(cells, key, by, statistic, raking, rules, level)
    table = pd.DataFrame({column: values[column].array for column in by} | columns)
    return CellEstimates(table=table, by=tuple(by), statistic=statistic, weighted=raking is not None, level=level)


def estimate(
    cells: pd.DataFrame,
    key: str,
    *,
    statistic: Statistic = "mean",
    raking: CellRaking | None = None,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
) -> Estimate:
    """The estimate over the whole scope of ``cells`` (see :func:`estimates`)."""
    _, c = _estimates(cells, key, [], statistic, raking, rules, level)
    return Estimate(
        value=float(c["value"][0]),
        se=float(c["se"][0]),
        ci_low=float(c["ci_low"][0]),
        ci_high=float(c["ci_high"][0]),
        n=int(c["n"][0]),
        n_eff=float(c["n_eff"][0]),
        deff=float(c["deff"][0]),
        flag=str(c["flag"][0]),
        rse=float(c["rse"][0]),
        level=level,
    )


# ---------------------------------------------------------------------- segments


def segment_gaps(
    cells: pd.DataFrame,
    key: str,
    by: str | Sequence[str],
    *,
    statistic: Statistic = "mean",
    raking: CellRaking | None = None,
    alpha: float = 0.05,
    rules: SuppressionRules | None = None,
    level: float = 0.95,
    method: str = "fdr_bh",
) -> pd.DataFrame:
    r"""Each category of each profile column ``by`` against the rest of the respondents.

    The same table as :func:`analysis.segments.segment_gaps` (``success=SATISFIED``
    for ``statistic="satisfied"``) on the respondents of the scope: the gap
    :math:`\hat\theta_s - \hat\theta_r` between two domains of one sample is linearised
    as one statistic, :math:`u^{gap}_i = u^s_i - u^r_i`, with the variance of
    :func:`estimates`; p-values are normal and adjusted by ``method`` (Benjamini-
    Hochberg) across every category of every column.

    References
    ----------
    Lumley (2010), 2.4 and 5.2; Benjamini & Hochberg (1995).
    """
    check_level(level)
    columns = [by] if isinstance(by, str) else list(by)
    for column in columns:
        if column not in PROFILE:
            raise ValueError(f"segment column {column!r} is not a profile column ({', '.join(PROFILE)})")
    rows = _rows(cells, key, [], statistic)
    w, raking_cells = _weights(rows, raking)
    n_r, s_r, q_r = rows.n, rows.s, rows.q
    # The domains' sums of w n, w s, n and w² n, one column per category (matrix products
    # with the segment's and the rest's indicators).
    parts = np.stack([w * n_r, w * s_r, n_r, w**2 * n_r])
    records, entries = [], []
    for column in columns:
        codes, categories = rows.coded[column]
        present = np.unique(codes[codes >= 0])  # a category may have no respondent in the scope
        if not present.size:
            continue
        order = np.array(sorted(present, key=lambda i: (str(type(categories[i])), categories[i])), dtype=np.intp)
        seg = codes[:, None] == order[None, :]
        rest = (codes >= 0)[:, None] & ~seg
        (w_s, sum_s, n_s, w2_s), (w_r, sum_r, n_rest, _) = parts @ seg, parts @ rest
        with np.errstate(divide="ignore", invalid="ignore"):
            est_s = np.where(w_s > 0, sum_s / w_s, np.nan)
            est_r = np.where(w_r > 0, sum_r / w_r, np.nan)
            neff_s = np.where(w_s > 0, w_s**2 / w2_s, 0.0)
            coef_s = np.where(w_s != 0, 1.0 / w_s, 0.0)
            coef_r = np.where(w_r != 0, 1.0 / w_r, 0.0)
        # Scores 3k, 3k + 1 and 3k + 2 of comparison k: the segment's, the rest's and the
        # gap's (the first minus the second), on the rows each counts.
        first = 3 * len(records)
        for member, est, coef, kind in ((seg, est_s, coef_s, 0), (rest, est_r, coef_r, 1)):
            at, j = np.nonzero(member)
            c, centre = coef[j], est[j]
            with np.errstate(invalid="ignore"):
                u = c * (s_r[at] - centre * n_r[at])
                uu = c**2 * (q_r[at] - 2 * centre * s_r[at] + centre**2 * n_r[at])
            entries.append((at, first + 3 * j + kind, u, uu))
            entries.append((at, first + 3 * j + 2, u if kind == 0 else -u, uu))
        for k, code in enumerate(order):
            records.append(
                (
                    column,
                    categories[code],
                    int(n_s[k]),
                    float(neff_s[k]),
                    float(est_s[k]),
                    float(est_r[k]),
                    int(n_rest[k]),
                )
            )
    if not records:
        raise ValueError(f"no category to compare in {columns!r}")
    at, score, u, uu = (np.concatenate(part) for part in zip(*entries, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        var = _variances(rows, w, raking, raking_cells, at, score, u, uu, 3 * len(records)).reshape(-1, 3)
    se = np.sqrt(np.maximum(var, 0.0))
    return gaps_table(records, se, ref=stats.norm, level=level, rules=rules, method=method, alpha=alpha)


# ----------------------------------------------------------------------- drivers


@lru_cache(maxsize=64)
def _t_quantile(q: float, df: int) -> float:
    """``scipy.stats.t.ppf(q, df)``, kept: the call costs more than the jackknife."""
    return stats.t.ppf(q, df)


def _full(vector: np.ndarray, size: int) -> np.ndarray:
    """The symmetric matrix whose upper triangle, row by row, is ``vector``."""
    out = np.zeros((size, size))
    out[np.triu_indices(size)] = vector
    return out + np.triu(out, 1).T


@dataclass(frozen=True, eq=False)
class _Moments:
    """The moments rows whose variables are exactly the ones wanted (in any order):
    their number of complete rows ``n``, their weights ``w`` and, per variable order,
    the rows' positions among them, their moments stacked, and the order that puts
    ``[1, *wanted]`` in place."""

    n: int
    w: np.ndarray
    orders: list[tuple[np.ndarray, np.ndarray, list[int]]]

    def __len__(self) -> int:
        return self.w.size


def _moments(moments: pd.DataFrame, wanted: list[str], raking: CellRaking | None) -> _Moments:
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"variables are repeated: {wanted!r}")
    values = moments["variables"].to_numpy()
    try:
        codes, distinct = pd.factorize(values)
        distinct = [tuple(v) for v in distinct]
    except TypeError:  # lists: unhashable
        index: dict[tuple, int] = {}
        codes = np.array([index.setdefault(tuple(v), len(index)) for v in values], dtype=np.intp)
        distinct = list(index)
    matches = np.array([set(v) == set(wanted) for v in distinct] + [False], dtype=bool)
    keep = matches[codes]
    if not keep.any():
        return _Moments(n=0, w=np.zeros(0), orders=[])
    if raking is None:
        w = np.ones(int(keep.sum()))
    else:
        coded = {column: _factorize(moments[column]) for column in raking.margins}
        w = raking._weights({column: (c[keep], uniques) for column, (c, uniques) in coded.items()})
    kept = codes[keep]
    vectors = moments["moments"].to_numpy()[keep]
    orders = []
    # Rows of one variable order are stacked at once, in the order of their first row.
    for code in pd.unique(kept):
        at = np.flatnonzero(kept == code)
        stacked = np.concatenate(vectors[at]).astype(float, copy=False).reshape(at.size, -1)
        variables = distinct[code]
        orders.append((at, stacked, [0, *(1 + variables.index(v) for v in wanted)]))
    return _Moments(n=int(moments["n"].to_numpy()[keep].sum()), w=w, orders=orders)


def _moment_sums(moments: pd.DataFrame, wanted: list[str], raking: CellRaking | None) -> tuple[np.ndarray, int]:
    """The weighted cross-products of ``[1, *wanted]`` and the complete rows' number."""
    return _sums(_moments(moments, wanted, raking), len(wanted) + 1)


def _sums(rows: _Moments, size: int) -> tuple[np.ndarray, int]:
    total = np.zeros((size, size))
    for at, stacked, order in rows.orders:
        total += _full(rows.w[at] @ stacked, size)[np.ix_(order, order)]
    return total, rows.n


def _covariance(total: np.ndarray) -> np.ndarray:
    sums = total[0, 1:]
    return total[1:, 1:] - np.outer(sums, sums) / total[0, 0]


def weighted_corr(
    moments: pd.DataFrame, outcome: str, drivers: Sequence[str], *, raking: CellRaking | None = None
) -> tuple[np.ndarray, int]:
    r"""Weighted correlation matrix of ``[outcome, *drivers]`` over the complete rows, and
    their number, from the moments.

    With :math:`M_r` the cross-products of :math:`[1, x]` in a profile cell and
    :math:`w_r` its respondents' weight, :math:`M = \sum_r w_r M_r` holds
    :math:`W=\sum w`, the weighted sums :math:`s` and cross-products :math:`C`; the
    covariance is :math:`C - s s^\top/W` and the correlation is its normalisation, as
    :func:`analysis.drivers.weighted_corr` computes on the respondents. Only the rows
    whose variables are exactly ``outcome`` and ``drivers`` (in any order) count: their
    complete rows are the respondents that answer all of them.
    """
    total, n = _moment_sums(moments, [outcome, *drivers], raking)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = _covariance(total)
        sd = np.sqrt(np.diag(cov))
        return cov / np.outer(sd, sd), n


def _check_drivers(drivers: Sequence[str], method: str) -> list[str]:
    if method not in ("lmg", "relative_weights"):
        raise ValueError(f"method must be 'lmg' or 'relative_weights', got {method!r}")
    drivers = list(drivers)
    if not drivers:
        raise ValueError("at least one driver is needed")
    if method == "lmg" and len(drivers) > MAX_EXACT_DRIVERS:
        raise ValueError(
            f"exact LMG is limited to {MAX_EXACT_DRIVERS} drivers ({len(drivers)} given); use method='relative_weights'"
        )
    return drivers


def relative_importance(
    moments: pd.DataFrame,
    outcome: str,
    drivers: Sequence[str],
    *,
    raking: CellRaking | None = None,
    method: str = "lmg",
) -> pd.DataFrame:
    """The same table as :func:`analysis.drivers.relative_importance` (``importance``,
    ``share``; ``attrs`` r2, n, method), from the moments rows whose variables are
    exactly ``outcome`` and ``drivers`` (see :func:`weighted_corr`).

    Raises ``ValueError`` as that function does: fewer complete rows than drivers + 2,
    a constant variable, collinear drivers, more than 15 drivers for LMG.
    """
    drivers = _check_drivers(drivers, method)
    total, n = _moment_sums(moments, [outcome, *drivers], raking)
    return _importance(total, n, outcome, drivers, method)


def _importance(total: np.ndarray, n: int, outcome: str, drivers: list[str], method: str) -> pd.DataFrame:
    """:func:`relative_importance` from the cross-products and the complete rows' number."""
    if n < len(drivers) + 2:
        raise ValueError(
            f"only {n} complete rows for outcome {outcome!r} and {len(drivers)} drivers; "
            f"at least {len(drivers) + 2} are needed"
        )
    # Values are integers: a constant variable's weighted variance is zero but for the
    # rounding of its weights.
    cov = _covariance(total)
    constant = np.diag(cov) <= 1e-12 * np.abs(np.diag(total)[1:])
    if constant.any():
        name = [outcome, *drivers][int(np.argmax(constant))]
        role = "outcome" if name == outcome else "driver"
        raise ValueError(f"{role} {name!r} is constant over the complete rows")
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    _check_collinear(corr, drivers)
    imp = lmg_from_corr(corr) if method == "lmg" else relative_weights_from_corr(corr)
    r2 = float(imp.sum())
    out = pd.DataFrame({"importance": imp, "share": imp / r2}, index=pd.Index(drivers, name="driver"))
    out.attrs.update(r2=r2, n=n, method=method)
    return out


def share_intervals(
    moments: pd.DataFrame,
    outcome: str,
    drivers: Sequence[str],
    *,
    raking: CellRaking | None = None,
    groups: int = 50,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""LMG shares of R² with delete-a-group jackknife intervals, from the moments alone.

    The moments rows are dealt into ``groups`` groups by their position (rows are
    ordered by month and profile cell, so each group spans the period and the
    profiles); replicate :math:`g` drops group :math:`g`, its moments being the total
    minus that group's. With :math:`\hat\theta_{(g)}` the replicate shares,
    :math:`\widehat{V} = \frac{G-1}{G}\sum_g (\hat\theta_{(g)} - \bar\theta)^2` and the
    interval is :math:`\hat\theta \pm t_{G-1}\sqrt{\widehat V}` (Kott's delete-a-group
    jackknife). A replicate whose model cannot be fitted is left out. No unit-level
    read and no random draw: cheap enough for every service of a home page, where the
    report's respondent bootstrap (`analysis.ipa.bootstrap_ci`) would not be.

    The same replicates give each driver's weighted mean over the complete rows
    (``mean``: the performance of importance-performance analysis, measured on the
    respondents its importance rests on) with its jackknife interval.

    Returns
    -------
    pandas.DataFrame
        Indexed by driver: ``share, share_low, share_high`` and ``mean, mean_low,
        mean_high`` (intervals NaN with fewer than ``groups`` moments rows or fewer than
        two usable replicates); ``attrs`` r2 and n as :func:`relative_importance`.
        Raises ``ValueError`` as that function.

    References
    ----------
    Kott, P. S. (2001). The delete-a-group jackknife. *Journal of Official
    Statistics*, 17(4), 521-526.
    """
    check_level(level)
    drivers = _check_drivers(drivers, "lmg")
    wanted = [outcome, *drivers]
    size = len(wanted) + 1
    rows = _moments(moments, wanted, raking)
    total, n = _sums(rows, size)
    table = _importance(total, n, outcome, drivers, "lmg")
    share = table["share"].to_numpy()
    mean = total[0, 2:] / total[0, 0]
    missing = np.full(len(drivers), np.nan)
    share_low = share_high = mean_low = mean_high = missing

    def result() -> pd.DataFrame:
        out = pd.DataFrame(
            {
                "share": share,
                "share_low": share_low,
                "share_high": share_high,
                "mean": mean,
                "mean_low": mean_low,
                "mean_high": mean_high,
            },
            index=table.index,
        )
        out.attrs.update(table.attrs)
        return out

    if len(rows) < groups:
        return result()
    codes = np.arange(len(rows)) % groups
    per_group = np.zeros((groups, size, size))
    upper = np.triu_indices(size)
    for at, stacked, order in rows.orders:
        weighted = stacked * rows.w[at][:, None]
        # Each group's sums, row after row (as np.add.at adds them).
        width = weighted.shape[1]
        if at.size == len(rows):  # one variable order: group g holds rows g, g + groups ...
            whole = len(rows) // groups * groups
            sums = weighted[:whole].reshape(-1, groups, width).sum(axis=0)
            sums[: len(rows) - whole] += weighted[whole:]
        else:
            bins = (codes[at][:, None] * width + np.arange(width)).ravel()
            sums = np.bincount(bins, weights=weighted.ravel(), minlength=groups * width).reshape(groups, width)
        full = np.zeros((groups, size, size))
        full[:, upper[0], upper[1]] = sums
        full = full + np.triu(full, 1).transpose(0, 2, 1)
        per_group += full[:, order][:, :, order]
    replicates = per_group.sum(axis=0) - per_group
    means = replicates[:, 0, 2:] / replicates[:, 0, :1]
    mean_se = np.sqrt((groups - 1) / groups * ((means - means.mean(axis=0)) ** 2).sum(axis=0))
    mean_half = _t_quantile(0.5 + level / 2, groups - 1) * mean_se
    mean_low, mean_high = mean - mean_half, mean + mean_half
    sums = replicates[:, 0, 1:]
    cov = replicates[:, 1:, 1:] - sums[:, :, None] * sums[:, None, :] / replicates[:, 0, 0][:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.einsum("gii->gi", cov))
        usable = np.isfinite(sd).all(axis=1) & (sd > 0).all(axis=1)
        corr = cov[usable] / (sd[usable][:, :, None] * sd[usable][:, None, :])
    try:
        imp = lmg_from_corr(corr) if len(corr) else np.empty((0, len(drivers)))
    except np.linalg.LinAlgError:  # a degenerate replicate: fit them one by one, leave it out
        fitted = []
        for c in corr:
            try:
                fitted.append(lmg_from_corr(c))
            except np.linalg.LinAlgError:
                continue
        imp = np.asarray(fitted).reshape(-1, len(drivers))
    if len(imp) < 2:
        return result()
    shares = imp / imp.sum(axis=1, keepdims=True)
    g = len(shares)
    se = np.sqrt((g - 1) / g * ((shares - shares.mean(axis=0)) ** 2).sum(axis=0))
    half = _t_quantile(0.5 + level / 2, g - 1) * se
    share_low, share_high = share - half, share + half
    return result()
