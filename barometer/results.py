"""The results read model: sufficient statistics kept as responses are stored.

Pages never pivot the long answers table per request. Three tables hold what every
report statistic needs, kept up to date in the transaction that stores the responses
(`record_responses`) and rebuilt from the responses when needed (`rebuild_service`):

``result_cell``
    per service × site × month × question key × profile cell (age band, sex, area,
    frequency of use): the count, sum, sum of squares and count satisfied of the numeric
    answers. The key `RESPONSES_KEY` counts the responses of the cell themselves (every
    response, whatever it answered): the design size that variances and raking need.
``result_moments``
    per service × site × month × profile cell × set of variables (``overall`` and the
    questionnaire's driver attributes): the count, sums and cross-products of those
    variables over the responses that answer all of them (complete rows), which is what
    weighted correlations, OLS and LMG need, weights being constant within a profile cell.
``result_version``
    per service: a counter raised by every change, for caches keyed by data version.

A missing profile answer and "préfère ne pas dire" are one code in the tables
(`MISSING_CODE`) and ``pd.NA`` in the frames, as `frames.responses_frame` has them. The
functions here are, with `frames.py`, the only ones that turn rows into frames;
`analysis.cells` turns these frames into estimates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

#: The question key of the cell rows that count responses (no question key starts with "_").
RESPONSES_KEY = "_responses"
#: A profile answer missing or "préfère ne pas dire", in the tables (never NULL: it is
#: part of the primary key).
MISSING_CODE = ""
#: A response given at no site, in the tables' `site_id` (part of the primary key).
NO_SITE = 0
#: The outcome every moments row starts with.
OUTCOME = "overall"

#: One response as storage builds it: its row (`storage._response_row`: service_id,
#: site_id, version_id, submitted_at, the profile columns ...) and its answer rows
#: (`storage._answer_values`: (question key, value, choice, text) tuples).
ResponseRows = tuple[Mapping[str, Any], Sequence[tuple]]


def record_responses(
    connection: Connection,
    responses: Iterable[ResponseRows],
    *,
    drivers: Mapping[int, Sequence[str]] | None = None,
) -> None:
    """Add newly inserted responses to the read model, in the caller's transaction.

    Call it once for the responses a transaction has just inserted, and only those (a
    token already stored inserts nothing, and must record nothing): the cells are
    incremented, never recomputed, so a response recorded twice is counted twice.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
        The connection of the transaction that inserted the responses; nothing is
        committed here.
    responses : iterable of (response row, answer rows)
        As `storage` builds them (see `ResponseRows`). One response is fine.
    drivers : mapping, optional
        Driver keys of each questionnaire version id (``Questionnaire.drivers``), when
        the caller has them at hand; versions not given are read from the database.

    The cells are upserted with ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``
    (the same statement on SQLite and PostgreSQL); a moments row is locked
    (``SELECT ... FOR UPDATE`` on PostgreSQL) and its vector added to; the service's
    data version is raised last, so its row is held for the shortest time.
    """
    raise NotImplementedError


def rebuild_service(connection: Connection, service_id: int, *, chunk: int = 20_000) -> int:
    """Recompute one service's read model from its responses and answers; returns how
    many responses were read.

    Reads the responses in chunks of ``chunk`` (bounded memory), aggregates them with the
    same code as `record_responses`, then replaces the service's rows, all in the
    caller's transaction (one per service: a reader sees the old rows or the new ones).
    """
    raise NotImplementedError


def cells_frame(
    service_ids: Sequence[int],
    *,
    start: date | None = None,
    end: date | None = None,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The answer cells of some services, one row per stored cell.

    Parameters
    ----------
    service_ids : sequence of int
        Services to read (one report: one service; the manager's home: all in scope).
    start, end : datetime.date, optional
        First and last month included (any day of the month; both inclusive).
    keys : sequence of str, optional
        Question keys to read; `RESPONSES_KEY` is always read, since every estimate
        needs the design size. Default: every key.

    Returns
    -------
    pandas.DataFrame
        Columns ``service_id`` (int), ``site_id`` (Int64, NA for no site), ``period``
        (Period[M]: the month in UTC, as `frames.responses_frame`), ``question_key``,
        ``age_band, sex, area, frequency`` (string, NA for missing or "préfère ne pas
        dire"), ``n`` (answers, or responses for `RESPONSES_KEY`), ``total`` (sum of
        values), ``total_sq`` (sum of squares), ``satisfied`` (answers in
        `analysis.scales.SATISFIED`; meaningful on 1-5 scales only). Ordered by
        service, then month. This is the input of `analysis.cells`.
    """
    raise NotImplementedError


def moments_frame(
    service_ids: Sequence[int],
    *,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """The moments of ``overall`` and the drivers, one row per stored moments cell.

    Returns
    -------
    pandas.DataFrame
        Columns ``service_id, site_id, period, age_band, sex, area, frequency`` as in
        `cells_frame`, ``variables`` (tuple of str: ``overall`` then the drivers, in
        the questionnaire's order), ``n`` (complete rows) and ``moments`` (a 1-D
        float array: the upper triangle, row by row, of the cross-product matrix of
        ``[1, overall, driver_1, ...]`` over the complete rows, so its first entry is
        ``n`` and the next ones the sums). The input of
        `analysis.cells.relative_importance`.
    """
    raise NotImplementedError


def data_versions(service_ids: Sequence[int]) -> dict[int, int]:
    """Each service's data version: a number that changes whenever its read model does
    (0 for a service without responses). Key caches of report results, charts and
    unit-level computations on (service id, data version)."""
    raise NotImplementedError


def population_margins(organisation_id: int) -> dict[str, dict[str, float]]:
    """The organisation's population margins as ``{dimension: {category: share}}``
    (empty when it has none: estimates are then unweighted), for
    `analysis.cells.rake_cells`."""
    raise NotImplementedError
