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
``result_month_version``
    per service × month: the service's version when that month last changed, so that a
    cache of a date range (`range_versions`) outlives responses to other months.

A missing profile answer and "préfère ne pas dire" are one code in the tables
(`MISSING_CODE`) and ``pd.NA`` in the frames, as `frames.responses_frame` has them. The
functions here are, with `frames.py`, the only ones that turn rows into frames;
`analysis.cells` turns these frames into estimates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Date, String, bindparam, case, cast, delete, func, literal, or_, select, tuple_, update
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
    ResultMonthVersion,
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
_MONTH_VERSIONS = ResultMonthVersion.__table__
_CELL_KEY = ("service_id", "month", "site_id", "question_key", *PROFILE_KEYS)
_CELL_VALUES = ("n", "total", "total_sq", "satisfied")
_MOMENT_KEY = ("service_id", "month", "site_id", *PROFILE_KEYS, "variables")
_SATISFIED = frozenset(float(v) for v in SATISFIED)
#: Keys in one `IN (...)` list: SQLite before 3.32 allows 999 parameters a statement.
_KEYS_PER_SELECT = 999 // len(_MOMENT_KEY)


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


class _Totals:
    """Sufficient statistics of some responses, as increments of the read model's rows.

    `record_responses` sums cells and moments here; `rebuild_service` sums the moments
    here and has the database sum the same cells. Either way a rebuild gives exactly
    the rows increments give: the values are integers, whose sums are exact in floating
    point.
    """

    def __init__(self, *, cells: bool = True):
        #: Whether to sum the cells (a rebuild has the database sum them).
        self.with_cells = cells
        #: Cell key -> [n, total, total_sq, satisfied].
        self.cells: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0, 0])
        #: Moments key -> complete rows (values of the variables, in order).
        self.rows: dict[tuple, list] = defaultdict(list)
        #: Service id -> responses.
        self.responses: dict[int, int] = defaultdict(int)
        #: (service id, month) of the responses.
        self.months: set[tuple[int, date]] = set()

    def add(self, response: Mapping[str, Any], answers: Iterable[tuple], drivers: Sequence[str]) -> None:
        """Add one response: its row and its answer rows (key, value, choice, text)."""
        service_id = response["service_id"]
        where = (service_id, _month(response["submitted_at"]), response.get("site_id") or NO_SITE)
        profile = tuple(_profile_code(response.get(key)) for key in PROFILE_KEYS)
        self.responses[service_id] += 1
        self.months.add(where[:2])
        values = {}
        if self.with_cells:
            self.cells[(*where, RESPONSES_KEY, *profile)][0] += 1
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
        else:
            values = {key: float(value) for key, value, *_ in answers if value is not None}
        if drivers:
            variables = (OUTCOME, *drivers)
            if all(key in values for key in variables):
                self.rows[(*where, *profile, " ".join(variables))].append([values[key] for key in variables])

    def cell_rows(self) -> list[tuple]:
        """The cells as rows of `result_cell` (key columns, then n, total, total_sq,
        satisfied). In no particular order: a writer holds its services' version rows
        before any cell, so writers that share a cell never interleave."""
        return [(*key, *values) for key, values in self.cells.items()]

    def moments(self) -> dict[tuple, np.ndarray]:
        """Moments key -> upper triangle of the cross-products of [1, variables...]."""
        out = {}
        for key, rows in self.rows.items():
            x = np.asarray(rows, dtype=float)
            x = np.hstack([np.ones((x.shape[0], 1)), x])
            out[key] = (x.T @ x)[_upper(x.shape[1])]
        return out


@lru_cache(maxsize=64)
def _upper(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(size)


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
    (``SELECT ... FOR UPDATE`` on PostgreSQL) and its vector added to. The service's
    data version is raised first: its row is the service's lock until the caller
    commits, so the writers of one service take turns (a rebuild too), and rows are
    written in key order, so writers of several services lock them in the same order.
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


class _DriverRows:
    """A statement compiled once for a dialect, run with many rows given as tuples in
    the order of `keys`: SQLAlchemy's per-row parameter handling costs more than the
    database's work on rows this small. The columns' own bind conversions apply."""

    def __init__(self, statement, table, keys: Sequence[str], dialect):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.keys = tuple(keys)
        order = compiled.positiontup
        self.positions = None if order is None else [self.keys.index(key) for key in order]
        self.conversions = [
            (i, convert)
            for i, key in enumerate(self.keys)
            if (convert := table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def run(self, connection: Connection, rows: list[tuple]) -> None:
        columns = list(zip(*rows, strict=True))
        for i, convert in self.conversions:  # a few distinct values (months): each converted once
            converted = {value: convert(value) for value in set(columns[i])}
            columns[i] = [converted[value] for value in columns[i]]
        if self.positions is None:
            parameters = [dict(zip(self.keys, row, strict=True)) for row in zip(*columns, strict=True)]
        else:
            parameters = list(zip(*(columns[i] for i in self.positions), strict=True))
        connection.exec_driver_sql(self.sql, parameters)


class _Statements:
    """The read model's statements for one database dialect, built once (a statement
    caches its compiled form; building an upsert costs more than running it)."""

    def __init__(self, dialect):
        insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect.name]
        cells = insert(_CELLS)
        columns = [*_CELL_KEY, *_CELL_VALUES]
        self.insert_cells = _DriverRows(cells, _CELLS, columns, dialect)
        self.add_cells = _DriverRows(
            cells.on_conflict_do_update(
                index_elements=list(_CELL_KEY),
                set_={c: _CELLS.c[c] + cells.excluded[c] for c in _CELL_VALUES},
            ),
            _CELLS,
            columns,
            dialect,
        )
        versions = insert(_VERSIONS)
        self.raise_versions = versions.on_conflict_do_update(
            index_elements=["service_id"],
            set_={"version": _VERSIONS.c.version + 1, "responses": _VERSIONS.c.responses + versions.excluded.responses},
        )
        # A month's version becomes its service's (just raised): never lower than before.
        months = insert(_MONTH_VERSIONS).from_select(
            ["service_id", "month", "version"],
            select(
                bindparam("service_id", type_=_VERSIONS.c.service_id.type),
                bindparam("month", type_=Date()),
                _VERSIONS.c.version,
            ).where(_VERSIONS.c.service_id == bindparam("service_id")),
        )
        self.raise_months = months.on_conflict_do_update(
            index_elements=["service_id", "month"], set_={"version": months.excluded.version}
        )
        key = [_MOMENTS.c[c] for c in _MOMENT_KEY]
        self.insert_moments = insert(_MOMENTS)
        self.new_moments = insert(_MOMENTS).on_conflict_do_nothing(index_elements=list(_MOMENT_KEY)).returning(*key)
        self.lock_moments = (
            select(*key, _MOMENTS.c.moments)
            .where(tuple_(*key).in_(bindparam("keys", expanding=True)))
            .order_by(*key)
            .with_for_update()
        )
        self.update_moments = (
            update(_MOMENTS)
            .where(*[_MOMENTS.c[c] == bindparam(f"k_{c}") for c in _MOMENT_KEY])
            .values(n=bindparam("v_n"), moments=bindparam("v_moments", type_=_MOMENTS.c.moments.type))
        )


@lru_cache(maxsize=4)
def _statements(dialect) -> _Statements:
    return _Statements(dialect)


def _write(connection: Connection, totals: _Totals, *, add: bool) -> None:
    """Write aggregated totals: added to the stored rows (`add`), or as new rows (the
    service's rows deleted before, by a rebuild)."""
    statements = _statements(connection.dialect)
    if add:
        _raise_versions(connection, totals.responses)
        connection.execute(statements.raise_months, [{"service_id": s, "month": m} for s, m in sorted(totals.months)])
    cells = totals.cell_rows()
    if cells:
        (statements.add_cells if add else statements.insert_cells).run(connection, cells)
    moments = totals.moments()
    if moments:
        _write_moments(connection, statements, moments, add=add)


def _raise_versions(connection: Connection, responses: Mapping[int, int]) -> None:
    """Raise the data version of services, adding their new responses.

    Done first: the version row is each service's lock on its read model, taken by every
    writer and by a rebuild before anything else, so that a rebuild never misses, nor
    counts twice, a response stored meanwhile (and writers never wait on each other in
    opposite orders).
    """
    connection.execute(
        _statements(connection.dialect).raise_versions,
        [{"service_id": s, "version": 1, "responses": n} for s, n in sorted(responses.items())],
    )


def _moment_row(key: tuple, vector: np.ndarray) -> dict:
    return {**dict(zip(_MOMENT_KEY, key, strict=True)), "n": int(vector[0]), "moments": vector}


def _write_moments(connection: Connection, statements: _Statements, moments: dict, *, add: bool) -> None:
    """Insert the moments rows not stored yet; add to the others, locked meanwhile.

    A stored vector cannot be added to in SQL the same way on SQLite and PostgreSQL, hence
    the read, lock and write: an insert that meets a row another writer is inserting
    waits for it, then leaves it to the update.
    """
    rows = [_moment_row(k, v) for k, v in moments.items()]
    if not add:
        connection.execute(statements.insert_moments, rows)
        return
    inserted = {tuple(r) for r in connection.execute(statements.new_moments, rows)}
    stored = [k for k in moments if k not in inserted]
    updates = []
    for start in range(0, len(stored), _KEYS_PER_SELECT):
        chunk = stored[start : start + _KEYS_PER_SELECT]
        for *key, vector in connection.execute(statements.lock_moments, {"keys": chunk}):
            merged = np.asarray(vector, dtype=float) + moments[tuple(key)]
            updates.append(
                {f"k_{c}": v for c, v in zip(_MOMENT_KEY, key, strict=True)}
                | {"v_n": int(merged[0]), "v_moments": merged}
            )
    if updates:
        connection.execute(statements.update_moments, updates)


def rebuild_service(connection: Connection, service_id: int, *, chunk: int = 20_000) -> int:
    """Recompute one service's read model from its responses and answers; returns how
    many responses it has.

    The cells are summed by the database (``INSERT ... SELECT ... GROUP BY``, the same
    sums as `record_responses` adds: the values are integers, whose sums are exact); the
    moments need each response's answers side by side, read in chunks of ``chunk``
    responses (bounded memory) and aggregated by the code `record_responses` uses. All in
    the caller's transaction (one per service: a reader sees the old rows or the new
    ones). The data version is raised first, never reset: caches keyed on it see the
    change, and its row, locked until the caller commits, makes the service's writers
    wait, so that a response stored meanwhile is either counted here or added afterwards.
    """
    _raise_versions(connection, {service_id: 0})  # the service's lock, before any read
    for table in (_CELLS, _MOMENTS):
        connection.execute(delete(table).where(table.c.service_id == service_id))
    for statement in _cell_sums(connection.dialect, service_id):
        connection.execute(statement)
    responses = Response.__table__
    answers = Answer.__table__
    versions = connection.execute(
        select(responses.c.version_id).where(responses.c.service_id == service_id).distinct()
    ).scalars()
    drivers = _driver_keys(connection, versions)
    variables = sorted({key for keys in drivers.values() if keys for key in (OUTCOME, *keys)})
    totals = _Totals(cells=False)
    last, read = 0, 0
    while variables:
        rows = connection.execute(
            select(
                responses.c.id,
                responses.c.site_id,
                responses.c.version_id,
                responses.c.submitted_at,
                *(responses.c[k] for k in PROFILE_KEYS),
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
                answers.c.question_key.in_(variables),
                answers.c.value.is_not(None),
            )
        ):
            values[response_id].append((key, value))
        for r in rows:
            totals.add({"service_id": service_id, **r._mapping}, values.get(r.id, ()), drivers[r.version_id])
        read += len(rows)
    _write(connection, totals, add=False)
    count = connection.execute(
        select(func.count()).select_from(responses).where(responses.c.service_id == service_id)
    ).scalar_one()
    connection.execute(update(_VERSIONS).where(_VERSIONS.c.service_id == service_id).values(responses=count))
    _rebuilt_months(connection, service_id)
    return count


def _rebuilt_months(connection: Connection, service_id: int) -> None:
    """After a rebuild, every month of the service (those it still has and those it had)
    takes the service's new version: whatever a rebuild changed, no cache outlives it."""
    version = select(_VERSIONS.c.version).where(_VERSIONS.c.service_id == service_id).scalar_subquery()
    connection.execute(
        update(_MONTH_VERSIONS).where(_MONTH_VERSIONS.c.service_id == service_id).values(version=version)
    )
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[connection.dialect.name]
    months = (
        select(_CELLS.c.service_id, _CELLS.c.month, version)
        .where(_CELLS.c.service_id == service_id, _CELLS.c.question_key == RESPONSES_KEY)
        .distinct()
    )
    connection.execute(
        insert(_MONTH_VERSIONS)
        .from_select(["service_id", "month", "version"], months)
        .on_conflict_do_nothing(index_elements=["service_id", "month"])
    )


def _month_of(dialect, column):
    """The first day of the month of a stored time, in UTC, as the database writes a date
    (SQLite: the text SQLAlchemy stores a date as; times are stored in UTC)."""
    if dialect.name == "sqlite":
        return func.strftime("%Y-%m-01", column)
    return cast(func.date_trunc("month", func.timezone("UTC", column)), Date)


def _cell_sums(dialect, service_id: int) -> list:
    """The statements that write a service's cells from its responses and answers."""
    responses = Response.__table__
    answers = Answer.__table__
    key = [
        responses.c.service_id,
        _month_of(dialect, responses.c.submitted_at),
        func.coalesce(responses.c.site_id, NO_SITE),
    ]
    profile = [
        case(
            (or_(responses.c[k].is_(None), responses.c[k] == PREFER_NOT_TO_SAY), literal(MISSING_CODE)),
            else_=responses.c[k],
        )
        for k in PROFILE_KEYS
    ]
    columns = [*_CELL_KEY, *_CELL_VALUES]
    value = answers.c.value
    by_answer = (
        select(
            *key,
            answers.c.question_key,
            *profile,
            func.count(),
            func.sum(value),
            func.sum(value * value),
            func.sum(case((value.in_(sorted(_SATISFIED)), 1), else_=0)),
        )
        .join(responses, responses.c.id == answers.c.response_id)
        .where(responses.c.service_id == service_id, value.is_not(None))
        .group_by(*key, answers.c.question_key, *profile)
    )
    by_response = (
        select(*key, literal(RESPONSES_KEY), *profile, func.count(), literal(0.0), literal(0.0), literal(0))
        .where(responses.c.service_id == service_id)
        .group_by(*key, *profile)
    )
    return [_CELLS.insert().from_select(columns, by_answer), _CELLS.insert().from_select(columns, by_response)]


def _months(query, table, start: date | None, end: date | None):
    if start is not None:
        query = query.where(table.c.month >= date(start.year, start.month, 1))
    if end is not None:
        query = query.where(table.c.month <= date(end.year, end.month, 1))
    return query


def _columns(table) -> list:
    """A table's columns to read, the month as text: read as dates, each row's month
    would be parsed on its own, and SQLite stores it as text anyway."""
    return [cast(c, String).label("month") if c.name == "month" else c for c in table.columns]


def _frame(connection: Connection, query) -> pd.DataFrame:
    """A query's rows as a frame, a column at a time (much faster than row by row)."""
    result = connection.execute(query)
    names = list(result.keys())
    # The driver's own tuples: the columns read need no conversion (the month is text).
    rows = result.cursor.fetchall()
    result.close()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data = {}
    for name, values in zip(names, columns, strict=True):
        data[name] = np.empty(len(values), dtype=object)  # lists (JSON) stay one value each
        data[name][:] = values
    return pd.DataFrame(data)


def _categories(values: np.ndarray) -> pd.Categorical:
    """Text codes as a categorical column, `MISSING_CODE` as missing, categories sorted."""
    codes, uniques = pd.factorize(values, sort=True)
    categories = pd.Index(uniques, dtype=object)
    missing = categories.get_indexer([MISSING_CODE])[0]
    if missing >= 0:
        codes = np.where(codes == missing, -1, codes - (codes > missing))
        categories = categories.delete(missing)
    return pd.Categorical.from_codes(codes, categories=categories)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Codes of the tables as the frames of `frames.py` have them: a month as a Period,
    no site and a missing profile answer as NA; text columns as categories (a few
    values repeated many times)."""
    codes, months = pd.factorize(frame.pop("month").to_numpy(dtype=object))
    distinct = pd.PeriodIndex([pd.Period(str(m)[:7], freq="M") for m in months], freq="M")
    frame.insert(1, "period", distinct.take(codes) if len(codes) else distinct[:0])
    sites = frame["site_id"].to_numpy(dtype=np.int64)
    frame["site_id"] = pd.array(sites, dtype="Int64")
    frame.loc[sites == NO_SITE, "site_id"] = pd.NA
    for key in PROFILE_KEYS:
        frame[key] = _categories(frame[key].to_numpy(dtype=object))
    if "question_key" in frame:
        frame["question_key"] = _categories(frame["question_key"].to_numpy(dtype=object))
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
    query = select(*_columns(_CELLS)).where(_CELLS.c.service_id.in_(list(service_ids)))
    if keys is not None:
        query = query.where(_CELLS.c.question_key.in_([RESPONSES_KEY, *keys]))
    query = _months(query, _CELLS, start, end).order_by(*_CELLS.primary_key.columns)
    with db.engine.connect() as connection:
        frame = _frame(connection, query)
    frame = frame.astype(
        {"service_id": "int64", "n": "int64", "total": "float64", "total_sq": "float64", "satisfied": "int64"}
    )
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
    query = select(*_columns(_MOMENTS)).where(_MOMENTS.c.service_id.in_(list(service_ids)))
    query = _months(query, _MOMENTS, start, end).order_by(*_MOMENTS.primary_key.columns)
    with db.engine.connect() as connection:
        frame = _frame(connection, query)
    frame["service_id"] = frame["service_id"].astype("int64")
    split = {v: tuple(v.split(" ")) for v in set(frame["variables"])}
    frame["variables"] = [split[v] for v in frame["variables"]]
    # The driver's bytes (`models.FloatVector`), all decoded at once, then cut in rows.
    stored = [bytes(b) for b in frame["moments"]]
    flat = np.frombuffer(b"".join(stored), dtype=">f8").astype(float)
    ends = np.cumsum([len(b) // 8 for b in stored])
    vectors = np.empty(len(stored), dtype=object)
    for i, vector in enumerate(np.split(flat, ends[:-1]) if stored else []):
        vectors[i] = vector
    frame["moments"] = vectors
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


def range_versions(service_ids: Sequence[int], start: date, end: date) -> dict[int, int]:
    """Each service's data version over the months from ``start`` to ``end`` (any day of
    the first and last month): a number that changes whenever the results of one of
    those months do, and only then (0 for a service without results there). Key caches
    of a date range on it: a response to another month leaves them valid."""
    ids = list(service_ids)
    query = _months(
        select(_MONTH_VERSIONS.c.service_id, func.max(_MONTH_VERSIONS.c.version)).where(
            _MONTH_VERSIONS.c.service_id.in_(ids)
        ),
        _MONTH_VERSIONS,
        start,
        end,
    ).group_by(_MONTH_VERSIONS.c.service_id)
    with db.engine.connect() as connection:
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
