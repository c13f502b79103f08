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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from analysis.estimates import Estimate, SuppressionRules
from analysis.weighting import Raking

__all__ = [
    "CellEstimates",
    "CellRaking",
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

#: The raking category of respondents whose answer is missing or outside the margins.
UNKNOWN = "(inconnu)"

Statistic = Literal["mean", "satisfied"]


def with_period(cells: pd.DataFrame, grain: Literal["month", "quarter", "year"]) -> pd.DataFrame:
    """A copy of ``cells`` whose ``period`` is at ``grain`` (month, quarter or year)."""
    raise NotImplementedError


def complete_margins(frame: pd.DataFrame, margins: Mapping, *, weights=None) -> tuple[pd.DataFrame, dict]:
    """Margins that every respondent fits, and the raking columns recoded to them.

    A respondent whose answer to a raking dimension is missing ("préfère ne pas dire")
    or not among the margin's categories is put in the category `UNKNOWN`, which keeps
    its (weighted) sample share; the known categories share the rest in the margin's
    proportions. Works on respondents (``weights`` None) and on cells (``weights`` the
    response counts): the same rule for both.

    Returns
    -------
    (pandas.DataFrame, dict)
        The frame with its raking columns recoded, and the margins as shares.
    """
    raise NotImplementedError


@dataclass(frozen=True, eq=False)
class CellRaking:
    """Raking of a scope of cells to population margins (see :func:`rake_cells`).

    Attributes
    ----------
    raking : analysis.weighting.Raking
        The raking of the raking cells, with the response counts as base weights (its
        ``weights`` are the raked totals of each cell).
    margins : dict
        The completed margins used (shares, with `UNKNOWN` where needed).
    unit_weights : pandas.Series
        The raked weight of one respondent of each raking cell, indexed by the raking
        columns.
    """

    raking: Raking
    margins: Mapping
    unit_weights: pd.Series

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.margins)

    def weights_for(self, frame: pd.DataFrame) -> np.ndarray:
        """The raked weight of one respondent of each row of ``frame`` (cells, moments or
        respondents), from its profile columns."""
        raise NotImplementedError


def rake_cells(cells: pd.DataFrame, margins: Mapping, **options) -> CellRaking:
    """Rake the responses of ``cells`` to the population ``margins``.

    The response counts of the cells (rows of ``RESPONSES_KEY``) are the base weights of
    :func:`analysis.weighting.rake` on the raking cells: iterative proportional fitting
    multiplies every respondent of a cell by the same factors, so the result is the
    raking of the respondents themselves. ``options`` go to ``rake`` (``trim``,
    ``max_iter``, ``tol``). Raises ``ValueError`` as ``rake`` does (a margin category
    without a respondent in the scope ...).
    """
    raise NotImplementedError


@dataclass(frozen=True, eq=False)
class CellEstimates:
    """Estimates of one question per group, from cells.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group: the ``by`` columns, then ``value, se, ci_low, ci_high, n,
        n_eff, deff, rse, flag`` as :func:`analysis.estimates.grouped_means`.
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
        """The estimate of one group (by its ``by`` values, in order) as an Estimate."""
        raise NotImplementedError


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
    """Mean or share satisfied of question ``key`` in every group of ``by`` (``period``,
    ``site_id``, a profile column ...; none: the whole scope), each a domain of the
    scope; raked when ``raking`` is given."""
    raise NotImplementedError


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
    raise NotImplementedError


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
    """Each category of each profile column ``by`` against the rest: the same table as
    :func:`analysis.segments.segment_gaps` on the respondents."""
    raise NotImplementedError


def weighted_corr(
    moments: pd.DataFrame, outcome: str, drivers: Sequence[str], *, raking: CellRaking | None = None
) -> tuple[np.ndarray, int]:
    """Weighted correlation matrix of ``[outcome, *drivers]`` over the complete rows, and
    their number, from the moments."""
    raise NotImplementedError


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
    exactly ``outcome`` and ``drivers``."""
    raise NotImplementedError
