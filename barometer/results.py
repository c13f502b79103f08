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

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from analysis.scales import SATISFIED
from surveys.schema import PREFER_NOT_TO_SAY, PROFILE_KEYS, questionnaire_from_dict

from .extensions import db
from .models import (
    Answer,
    PopulationMargin,
    QuestionnaireVersion,
    Response,
    ResultCell,
    ResultMoments,
    ResultVersion,
)

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


_CELLS = ResultCell.__table__
_MOMENTS = ResultMoments.__table__
_VERSIONS = ResultVersion.__table__
_CELL_KEY = ("service_id", "month", "site_id", "question_key", *PROFILE_KEYS)
_MOMENT_KEY = ("service_id", "month", "site_id", *PROFILE_KEYS, "variables")
_SATISFIED = frozenset(float(v) for v in SATISFIED)
#: Keys in one `IN (...)` list: SQLite before 3.32 allows 999 parameters a statement.
_KEYS_PER_SELECT = 999 // len(_MOMENT_KEY)


def satisfied(value: float) -> bool:
    """Whether an answer counts as satisfied (`analysis.scales.SATISFIED`)."""
    return value in _SATISFIED


def _profile_code(value) -> str:
    """A profile answer as the tables key it: missing and "préfère ne pas dire" alike."""
    return MISSING_CODE if value is None or value == PREFER_NOT_TO_SAY else str(value)


def _month(submitted_at) -> date:
    """The first day of the month of submission, in UTC (as `frames.responses_frame`)."""
    if isinstance(submitted_at, str):
        submitted_at = datetime.fromisoformat(submitted_at)
    if submitted_at.tzinfo is not None:
        submitted_at = submitted_at.astimezone(UTC)
    return date(submitted_at.year, submitted_at.month, 1)


def _insert(connection: Connection):
    return {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[connection.dialect.name]


class _Totals:
    """Sufficient statistics of some responses, as increments of the read model's rows.

    The one aggregation of the read model: `record_responses` and `rebuild_service`
    both use it, so a rebuild gives exactly the rows increments give (the values are
    integers, whose sums are exact in floating point).
    """

    def __init__(self):
        #: Cell key -> [n, total, total_sq, satisfied].
        self.cells: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0, 0])
        #: Moments key -> complete rows (values of the variables, in order).
        self.rows: dict[tuple, list] = defaultdict(list)
        #: Service id -> responses.
        self.responses: dict[int, int] = defaultdict(int)

    def add(self, response: Mapping[str, Any], answers: Iterable[tuple], drivers: Sequence[str]) -> None:
        """Add one response: its row and its answer rows (key, value, choice, text)."""
        service_id = response["service_id"]
        where = (service_id, _month(response["submitted_at"]), response.get("site_id") or NO_SITE)
        profile = tuple(_profile_code(response.get(key)) for key in PROFILE_KEYS)
        self.responses[service_id] += 1
        self.cells[(*where, RESPONSES_KEY, *profile)][0] += 1
        values = {}
        for key, value, *_ in answers:
            if value is None:
                continue
            value = float(value)
            cell = self.cells[(*where, key, *profile)]
            cell[0] += 1
            cell[1] += value
            cell[2] += value * value
            cell[3] += value in _SATISFIED
            values[key] = value
        if drivers:
            variables = (OUTCOME, *drivers)
            if all(key in values for key in variables):
                self.rows[(*where, *profile, " ".join(variables))].append([values[key] for key in variables])

    def cell_rows(self) -> list[dict]:
        """The cells as rows of `result_cell`, in key order (rows are locked in that order)."""
        return [
            {**dict(zip(_CELL_KEY, key, strict=True)), "n": n, "total": s, "total_sq": q, "satisfied": sat}
            for key, (n, s, q, sat) in sorted(self.cells.items())
        ]

    def moments(self) -> dict[tuple, np.ndarray]:
        """Moments key -> upper triangle of the cross-products of [1, variables...]."""
        out = {}
        for key, rows in sorted(self.rows.items()):
            x = np.asarray(rows, dtype=float)
            x = np.hstack([np.ones((x.shape[0], 1)), x])
            out[key] = (x.T @ x)[np.triu_indices(x.shape[1])]
        return out


def _driver_keys(connection: Connection, version_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The driver keys of questionnaire versions, read from their definitions."""
    ids = sorted(set(version_ids))
    if not ids:
        return {}
    rows = connection.execute(
        select(QuestionnaireVersion.id, QuestionnaireVersion.definition).where(QuestionnaireVersion.id.in_(ids))
    )
    return {vid: questionnaire_from_dict(definition).drivers for vid, definition in rows}


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
    data version is raised last, so its row is held for the shortest time. Rows are
    written in key order, so concurrent writers lock them in the same order.
    """
    responses = list(responses)
    if not responses:
        return
    known = dict(drivers or {})
    missing = {row["version_id"] for row, _ in responses} - set(known)
    known.update(_driver_keys(connection, missing))
    totals = _Totals()
    for row, answers in responses:
        totals.add(row, answers, known[row["version_id"]])
    _write(connection, totals, add=True)


def _write(connection: Connection, totals: _Totals, *, add: bool) -> None:
    """Write aggregated totals: added to the stored rows (`add`), or as new rows (the
    service's rows deleted before, by a rebuild)."""
    insert = _insert(connection)
    cells = totals.cell_rows()
    if cells:
        statement = insert(_CELLS)
        if add:
            statement = statement.on_conflict_do_update(
                index_elements=list(_CELL_KEY),
                set_={c: _CELLS.c[c] + statement.excluded[c] for c in ("n", "total", "total_sq", "satisfied")},
            )
        connection.execute(statement, cells)
    moments = totals.moments()
    if moments:
        _write_moments(connection, insert, moments, add=add)
    statement = insert(_VERSIONS)
    statement = statement.on_conflict_do_update(
        index_elements=["service_id"],
        set_={
            "version": _VERSIONS.c.version + 1,
            "responses": (_VERSIONS.c.responses if add else 0) + statement.excluded.responses,
        },
    )
    connection.execute(
        statement,
        [{"service_id": s, "version": 1, "responses": n} for s, n in sorted(totals.responses.items())],
    )


def _moment_row(key: tuple, vector: np.ndarray) -> dict:
    return {**dict(zip(_MOMENT_KEY, key, strict=True)), "n": int(vector[0]), "moments": vector.tolist()}


def _write_moments(connection: Connection, insert, moments: dict[tuple, np.ndarray], *, add: bool) -> None:
    """Insert the moments rows not stored yet; add to the others, locked meanwhile.

    A JSON vector cannot be added to in SQL the same way on SQLite and PostgreSQL, hence
    the read, lock and write: an insert that meets a row another writer is inserting
    waits for it, then leaves it to the update.
    """
    if not add:
        connection.execute(insert(_MOMENTS), [_moment_row(k, v) for k, v in moments.items()])
        return
    key_columns = [_MOMENTS.c[c] for c in _MOMENT_KEY]
    statement = insert(_MOMENTS).on_conflict_do_nothing(index_elements=list(_MOMENT_KEY)).returning(*key_columns)
    inserted = {tuple(r) for r in connection.execute(statement, [_moment_row(k, v) for k, v in moments.items()])}
    stored = [k for k in moments if k not in inserted]
    if not stored:
        return
    updates = []
    for start in range(0, len(stored), _KEYS_PER_SELECT):
        chunk = stored[start : start + _KEYS_PER_SELECT]
        query = (
            select(*key_columns, _MOMENTS.c.moments)
            .where(tuple_(*key_columns).in_(chunk))
            .order_by(*key_columns)
            .with_for_update()
        )
        for *key, vector in connection.execute(query):
            merged = np.asarray(vector, dtype=float) + moments[tuple(key)]
            updates.append({f"k_{c}": v for c, v in zip(_MOMENT_KEY, key, strict=True)} | _values(merged))
    condition = [_MOMENTS.c[c] == bindparam(f"k_{c}") for c in _MOMENT_KEY]
    connection.execute(
        update(_MOMENTS).where(*condition).values(n=bindparam("v_n"), moments=bindparam("v_moments")), updates
    )


def _values(vector: np.ndarray) -> dict:
    return {"v_n": int(vector[0]), "v_moments": vector.tolist()}


def rebuild_service(connection: Connection, service_id: int, *, chunk: int = 20_000) -> int:
    """Recompute one service's read model from its responses and answers; returns how
    many responses were read.

    Reads the responses in chunks of ``chunk`` (bounded memory), aggregates them with the
    same code as `record_responses`, then replaces the service's rows, all in the
    caller's transaction (one per service: a reader sees the old rows or the new ones).
    The data version is raised, never reset, so caches keyed on it see the change.
    """
    responses = Response.__table__
    answers = Answer.__table__
    profile = [responses.c[k] for k in PROFILE_KEYS]
    totals = _Totals()
    drivers: dict[int, tuple[str, ...]] = {}
    last, read = 0, 0
    while True:
        rows = connection.execute(
            select(
                responses.c.id,
                responses.c.site_id,
                responses.c.version_id,
                responses.c.submitted_at,
                *profile,
            )
            .where(responses.c.service_id == service_id, responses.c.id > last)
            .order_by(responses.c.id)
            .limit(chunk)
        ).all()
        if not rows:
            break
        first, last = rows[0].id, rows[-1].id
        values = defaultdict(list)
        for response_id, key, value in connection.execute(
            select(answers.c.response_id, answers.c.question_key, answers.c.value)
            .join(responses, responses.c.id == answers.c.response_id)
            .where(
                responses.c.service_id == service_id,
                answers.c.response_id.between(first, last),
                answers.c.value.is_not(None),
            )
        ):
            values[response_id].append((key, value))
        new = {r.version_id for r in rows} - set(drivers)
        drivers.update(_driver_keys(connection, new))
        for r in rows:
            row = {"service_id": service_id, **r._mapping}
            totals.add(row, values.get(r.id, ()), drivers[r.version_id])
        read += len(rows)
    for table in (_CELLS, _MOMENTS):
        connection.execute(delete(table).where(table.c.service_id == service_id))
    if not read:
        totals.responses[service_id] = 0
    _write(connection, totals, add=False)
    return read


def _months(query, table, start: date | None, end: date | None):
    if start is not None:
        query = query.where(table.c.month >= date(start.year, start.month, 1))
    if end is not None:
        query = query.where(table.c.month <= date(end.year, end.month, 1))
    return query


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Codes of the tables as the frames of `frames.py` have them: a month as a Period,
    no site and a missing profile answer as NA."""
    frame.insert(1, "period", pd.PeriodIndex(pd.to_datetime(frame.pop("month")), freq="M"))
    frame["site_id"] = frame["site_id"].astype("Int64").mask(frame["site_id"] == NO_SITE)
    for key in PROFILE_KEYS:
        frame[key] = frame[key].astype("string").replace(MISSING_CODE, pd.NA)
    return frame


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
        Columns ``service_id`` (int), ``period`` (Period[M]: the month in UTC, as
        `frames.responses_frame`), ``site_id`` (Int64, NA for no site),
        ``question_key``, ``age_band, sex, area, frequency`` (string, NA for missing or
        "préfère ne pas dire"), ``n`` (answers, or responses for `RESPONSES_KEY`),
        ``total`` (sum of values), ``total_sq`` (sum of squares), ``satisfied`` (answers
        in `analysis.scales.SATISFIED`; meaningful on 1-5 scales only). Ordered by
        service, then month. This is the input of `analysis.cells`.
    """
    query = select(_CELLS).where(_CELLS.c.service_id.in_(list(service_ids)))
    if keys is not None:
        query = query.where(_CELLS.c.question_key.in_([RESPONSES_KEY, *keys]))
    query = _months(query, _CELLS, start, end).order_by(*_CELLS.primary_key.columns)
    with db.engine.connect() as connection:
        result = connection.execute(query)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    frame = frame.astype({"n": "int64", "total": "float64", "total_sq": "float64", "satisfied": "int64"})
    return _tidy(frame)


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
        Columns ``service_id, period, site_id, age_band, sex, area, frequency`` as in
        `cells_frame`, ``variables`` (tuple of str: ``overall`` then the drivers, in
        the questionnaire's order), ``n`` (complete rows) and ``moments`` (a 1-D
        float array: the upper triangle, row by row, of the cross-product matrix of
        ``[1, overall, driver_1, ...]`` over the complete rows, so its first entry is
        ``n`` and the next ones the sums). The input of
        `analysis.cells.relative_importance`.
    """
    query = select(_MOMENTS).where(_MOMENTS.c.service_id.in_(list(service_ids)))
    query = _months(query, _MOMENTS, start, end).order_by(*_MOMENTS.primary_key.columns)
    with db.engine.connect() as connection:
        result = connection.execute(query)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    frame["variables"] = [tuple(v.split(" ")) for v in frame["variables"]]
    frame["moments"] = [np.asarray(m, dtype=float) for m in frame["moments"]]
    frame["n"] = frame["n"].astype("int64")
    return _tidy(frame)


def data_versions(service_ids: Sequence[int]) -> dict[int, int]:
    """Each service's data version: a number that changes whenever its read model does
    (0 for a service without responses). Key caches of report results, charts and
    unit-level computations on (service id, data version)."""
    ids = list(service_ids)
    with db.engine.connect() as connection:
        query = select(_VERSIONS.c.service_id, _VERSIONS.c.version).where(_VERSIONS.c.service_id.in_(ids))
        stored = dict(connection.execute(query).all())
    return {service_id: int(stored.get(service_id, 0)) for service_id in ids}


def population_margins(organisation_id: int) -> dict[str, dict[str, float]]:
    """The organisation's population margins as ``{dimension: {category: share}}``
    (empty when it has none: estimates are then unweighted), for
    `analysis.cells.rake_cells`."""
    margins: dict[str, dict[str, float]] = {}
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(PopulationMargin.dimension, PopulationMargin.category, PopulationMargin.share)
            .where(PopulationMargin.organisation_id == organisation_id)
            .order_by(PopulationMargin.id)
        )
        for dimension, category, share in rows:
            margins.setdefault(dimension, {})[category] = float(share)
    return margins
