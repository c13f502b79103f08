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

import json
import logging
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
from sqlalchemy.exc import InternalError, OperationalError

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
    ResultPack,
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


log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------- packed months
#
# A year of 200 services is millions of cell rows, and reading rows one by one costs
# far more than the statistics computed from them. So each past month of a service is
# also kept packed in one value (`result_pack`): its rows as a few arrays, valid for the
# version of the month they were read at. Readers take the packs that are current, read
# the rows of the months without one, and pack those (the current month excepted: every
# response changes it). The rows stay the truth; a pack only saves reading them.


class _Kind:
    """What one kind of pack holds: the rows of `table`, its text columns coded, its
    numbers as arrays, and for moments the vectors."""

    def __init__(self, name: str, table, text: Sequence[str], numbers: Sequence[tuple[str, str]], vectors: bool):
        self.name = name
        self.table = table
        self.text = tuple(text)
        self.numbers = tuple(numbers)
        self.vectors = vectors
        #: The columns read, in order: service_id, month, then those of the table.
        self.columns = tuple(c.name for c in table.columns)


_KINDS = {
    "cells": _Kind(
        "cells",
        _CELLS,
        ("question_key", *PROFILE_KEYS),
        (("site_id", "<i8"), ("n", "<i8"), ("total", "<f8"), ("total_sq", "<f8"), ("satisfied", "<i8")),
        vectors=False,
    ),
    "moments": _Kind("moments", _MOMENTS, (*PROFILE_KEYS, "variables"), (("site_id", "<i8"), ("n", "<i8")), True),
}
_PACKS = ResultPack.__table__
#: The first bytes of a pack, and its format's number.
_PACK_MAGIC = b"BRP2"


class _Part:
    """The rows of one service-month: each text column as codes into its labels (-1
    never occurs: the tables hold no NULL), numbers as arrays, moments vectors as their
    lengths and stored bytes (8-byte big-endian floats, as `models.FloatVector`)."""

    __slots__ = ("rows", "text", "numbers", "lengths", "vectors")

    def __init__(self, rows, text, numbers, lengths=None, vectors=b""):
        self.rows = rows
        self.text = text  # column -> (codes, labels)
        self.numbers = numbers  # column -> array
        self.lengths = lengths
        self.vectors = vectors

    def take(self, at: np.ndarray) -> _Part:
        """Some rows, by position or mask (cells only: no vectors)."""
        text = {c: (codes[at], labels) for c, (codes, labels) in self.text.items()}
        numbers = {c: values[at] for c, values in self.numbers.items()}
        rows = int(at.sum()) if at.dtype == bool else len(at)
        return _Part(rows, text, numbers)

    def select(self, kind: _Kind, keys: frozenset[str] | None) -> _Part:
        """The rows of some question keys only (all when None; cells only)."""
        if keys is None or kind.name != "cells":
            return self
        codes, labels = self.text["question_key"]
        keep = _wanted(tuple(labels), keys)[codes]
        return self if keep.all() else self.take(keep)


def _merge(kind: _Kind, parts: list[_Part]) -> _Part:
    """Parts of one service-month (its packs of cells) as one part, in key order."""
    text = {}
    for column in kind.text:
        labels = sorted({label for p in parts for label in p.text[column][1]})
        where = {label: i for i, label in enumerate(labels)}
        text[column] = (
            np.concatenate(
                [np.array([where[x] for x in p.text[column][1]], dtype=np.int16)[p.text[column][0]] for p in parts]
            ),
            labels,
        )
    numbers = {c: np.concatenate([p.numbers[c] for p in parts]) for c in parts[0].numbers}
    merged = _Part(sum(p.rows for p in parts), text, numbers)
    return merged.take(np.lexsort([merged.text[c][0] for c in reversed(kind.text)] + [merged.numbers["site_id"]]))


@lru_cache(maxsize=256)
def _wanted(labels: tuple[str, ...], keys: frozenset[str]) -> np.ndarray:
    """Which of a pack's question keys are among ``keys`` (a few lists of labels recur)."""
    return np.array([label in keys for label in labels], dtype=bool)


def pack_rows(kind: str, part: _Part) -> bytes:
    """One service-month's rows as the bytes of a pack: a JSON header (row count,
    labels of the text columns), then each array in a fixed, little-endian layout."""
    spec = _KINDS[kind]
    header = json.dumps(
        {"rows": part.rows, "labels": {c: list(part.text[c][1]) for c in spec.text}}, separators=(",", ":")
    ).encode()
    chunks = [_PACK_MAGIC, len(header).to_bytes(4, "big"), header]
    chunks += [np.asarray(part.text[c][0], dtype="<i2").tobytes() for c in spec.text]
    chunks += [np.asarray(part.numbers[c], dtype=dtype).tobytes() for c, dtype in spec.numbers]
    if spec.vectors:
        chunks += [np.asarray(part.lengths, dtype="<i4").tobytes(), part.vectors]
    return b"".join(chunks)


def _unpack(kind: _Kind, data: bytes) -> _Part | None:
    """The inverse of `pack_rows` (arrays viewing the bytes, not copied); None for a pack
    of another format (an earlier version's: read as stale)."""
    data = data if isinstance(data, bytes) else bytes(data)
    if data[:4] != _PACK_MAGIC:
        return None
    size = int.from_bytes(data[4:8], "big")
    header = json.loads(data[8 : 8 + size])
    rows, at = header["rows"], 8 + size
    width = 2 * len(kind.text) + sum(np.dtype(dtype).itemsize for _, dtype in kind.numbers)
    if len(data) < at + rows * (width + 4 * kind.vectors):  # cut short: read as stale
        return None
    text = {}
    for column in kind.text:
        text[column] = (np.frombuffer(data, dtype="<i2", count=rows, offset=at), header["labels"][column])
        at += 2 * rows
    numbers = {}
    for column, dtype in kind.numbers:
        numbers[column] = np.frombuffer(data, dtype=dtype, count=rows, offset=at)
        at += np.dtype(dtype).itemsize * rows
    if not kind.vectors:
        return _Part(rows, text, numbers)
    lengths = np.frombuffer(data, dtype="<i4", count=rows, offset=at)
    return _Part(rows, text, numbers, lengths, data[at + 4 * rows :])


def _parts_from_rows(kind: _Kind, rows: list[tuple]) -> dict[tuple[int, str], _Part]:
    """Rows read from the table (`_Kind.columns`) in key order (text in code-point
    order, whatever the database's collation), cut in service-months."""
    if not rows:
        return {}
    columns = {
        name: np.asarray(values, dtype=object)
        for name, values in zip(kind.columns, zip(*rows, strict=True), strict=True)
    }
    services = np.asarray(columns["service_id"], dtype=np.int64)
    month_codes, months = pd.factorize(columns["month"], sort=True)
    text = {}
    for column in kind.text:
        codes, labels = pd.factorize(columns[column], sort=True)
        text[column] = (codes.astype(np.int16), [str(v) for v in labels])
    numbers = {c: np.asarray(columns[c], dtype=dtype) for c, dtype in kind.numbers}
    # Rows in key order, text in code-point order whatever the database's collation.
    order = np.lexsort([text[c][0] for c in reversed(kind.text)] + [numbers["site_id"], month_codes, services])
    services, month_codes = services[order], month_codes[order]
    text = {c: (codes[order], labels) for c, (codes, labels) in text.items()}
    numbers = {c: values[order] for c, values in numbers.items()}
    if kind.vectors:
        columns["moments"] = columns["moments"][order]
    change = np.flatnonzero((np.diff(services) != 0) | (np.diff(month_codes) != 0)) + 1
    bounds = [0, *change.tolist(), len(rows)]
    if kind.vectors:
        stored = [bytes(b) for b in columns["moments"]]
        lengths = np.array([len(b) // 8 for b in stored], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64) * 8])
        flat = b"".join(stored)
    out = {}
    for first, last in zip(bounds, bounds[1:], strict=False):
        part_text = {}
        for column, (codes, labels) in text.items():
            own = codes[first:last]
            used = np.unique(own)
            lookup = np.full(len(labels), -1, dtype=np.int16)
            lookup[used] = np.arange(used.size, dtype=np.int16)
            part_text[column] = (lookup[own], [labels[i] for i in used])
        part = _Part(last - first, part_text, {c: v[first:last] for c, v in numbers.items()})
        if kind.vectors:
            part.lengths = lengths[first:last]
            part.vectors = flat[offsets[first] : offsets[last]]
        out[(int(services[first]), str(months[month_codes[first]]))] = part
    return out


def _current_month() -> str:
    today = datetime.now(UTC).date()
    return date(today.year, today.month, 1).isoformat()


#: The packs of one month of each kind of rows: a month's cells are packed as the rows of
#: the overall score and the responses (what the home, the family of tests and the
#: steering read) and the rows of the other questions (the report's attributes).
_PACK_KINDS = {"cells": ("overall", "cells"), "moments": ("moments",)}
#: The question keys of the "overall" packs.
_OVERALL_KEYS = frozenset({RESPONSES_KEY, OUTCOME})


def _split(kind: _Kind, part: _Part) -> dict[str, _Part]:
    """A whole month's part as its packs (see `_PACK_KINDS`)."""
    if kind.name != "cells":
        return {kind.name: part}
    codes, labels = part.text["question_key"]
    overall = _wanted(tuple(labels), _OVERALL_KEYS)[codes]
    return {"overall": part.take(overall), "cells": part.take(~overall)}


def _read_parts(
    kind: _Kind, service_ids: Sequence[int], start: date | None, end: date | None, keys: frozenset[str] | None
) -> list[tuple[int, str, _Part]]:
    """The service-months of some services over a range, in key order: packed months
    from their packs, the others from their rows (and packed for the next reader, the
    current month excepted)."""
    ids = sorted(set(int(i) for i in service_ids))
    if not ids:
        return []
    needed = _PACK_KINDS[kind.name]
    if kind.name == "cells" and keys is not None and keys <= _OVERALL_KEYS:
        needed = ("overall",)
    month_text = cast(_MONTH_VERSIONS.c.month, String)
    versions_query = _months(
        select(_MONTH_VERSIONS.c.service_id, month_text, _MONTH_VERSIONS.c.version).where(
            _MONTH_VERSIONS.c.service_id.in_(ids)
        ),
        _MONTH_VERSIONS,
        start,
        end,
    )
    packs_query = _months(
        select(_PACKS.c.service_id, cast(_PACKS.c.month, String), _PACKS.c.kind, _PACKS.c.data)
        .join(
            _MONTH_VERSIONS,
            (_MONTH_VERSIONS.c.service_id == _PACKS.c.service_id)
            & (_MONTH_VERSIONS.c.month == _PACKS.c.month)
            & (_MONTH_VERSIONS.c.version == _PACKS.c.version),
        )
        .where(_PACKS.c.kind.in_(needed), _PACKS.c.service_id.in_(ids)),
        _PACKS,
        start,
        end,
    )
    current = _current_month()
    parts: dict[tuple[int, str], _Part] = {}
    to_pack: list[tuple[int, str, int, str, _Part]] = []
    with db.engine.connect() as connection:
        # The versions first: a pack is written with the version read before its rows,
        # so a change meanwhile leaves it stale, never wrong.
        versions = {(sid, str(month)): version for sid, month, version in connection.execute(versions_query)}
        result = connection.execute(packs_query)
        found: dict[tuple[int, str], dict[str, _Part]] = {}
        for sid, month, pack_kind, data in result.cursor.fetchall():  # the driver's rows: no per-row wrapping
            part = _unpack(kind, data)
            if part is not None:
                found.setdefault((sid, str(month)), {})[pack_kind] = part
        result.close()
        for key, packs in found.items():
            if len(packs) == len(needed):
                whole = packs[needed[0]] if len(needed) == 1 else _merge(kind, [packs[k] for k in needed])
                parts[key] = whole.select(kind, keys)
        missing: dict[str, list[int]] = {}
        for sid, month in sorted(versions):
            if (sid, month) not in parts:
                missing.setdefault(month, []).append(sid)
        for month, sids in missing.items():
            whole = month < current  # a past month: read whole, to be packed
            query = select(*_columns(kind.table)).where(
                kind.table.c.month == date.fromisoformat(month[:10]), kind.table.c.service_id.in_(sids)
            )
            if keys is not None and not whole and kind.name == "cells":
                query = query.where(kind.table.c.question_key.in_(sorted(keys)))
            result = connection.execute(query)
            rows = result.cursor.fetchall()
            result.close()
            read = _parts_from_rows(kind, rows)
            for sid in sids:
                part = read.get((sid, month))
                if whole:  # a month without rows is packed empty: it is read as a pack too
                    version = versions[(sid, month)]
                    for pack_kind, pack in _split(kind, part or _empty_part(kind)).items():
                        to_pack.append((sid, month, version, pack_kind, pack))
                if part is not None:
                    parts[(sid, month)] = part.select(kind, keys)
    if to_pack:
        _store_packs(kind, to_pack)
    return [(sid, month, parts[(sid, month)]) for sid, month in sorted(parts)]


def _empty_part(kind: _Kind) -> _Part:
    empty = np.zeros(0, dtype=np.int16)
    part = _Part(0, {c: (empty, []) for c in kind.text}, {c: np.zeros(0, dtype=d) for c, d in kind.numbers})
    if kind.vectors:
        part.lengths = empty
    return part


def _store_packs(kind: _Kind, packs: list[tuple[int, str, int, str, _Part]]) -> None:
    """Write packs, each replacing one of an older version (or of the same version in
    an older format); on a database that refuses (read-only, busy), leave it: the next
    reader packs again."""
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[db.engine.dialect.name]
    statement = insert(_PACKS)
    statement = statement.on_conflict_do_update(
        index_elements=["service_id", "month", "kind"],
        set_={"version": statement.excluded.version, "data": statement.excluded.data},
        where=_PACKS.c.version <= statement.excluded.version,
    )
    rows = [
        {
            "service_id": sid,
            "month": date.fromisoformat(month[:10]),
            "kind": pack_kind,
            "version": version,
            "data": pack_rows(kind.name, part),
        }
        for sid, month, version, pack_kind, part in sorted(packs, key=lambda p: p[:4])
    ]  # in key order: writers of overlapping packs lock them in the same order
    try:
        with db.engine.begin() as connection:
            connection.execute(statement, rows)
    except (OperationalError, InternalError) as exc:  # busy, locked, read-only, deadlock
        log.warning("read model: %d packed months not stored: %s", len(rows), exc.orig or exc)


def _assemble(kind: _Kind, parts: list[tuple[int, str, _Part]]) -> pd.DataFrame:
    """Service-months as the frame of `cells_frame` or `moments_frame`: the columns of
    the table, the month as a Period, the text columns as categories of the values
    present (sorted, `MISSING_CODE` as missing)."""
    sizes = np.array([p.rows for _, _, p in parts], dtype=np.int64)
    frame = {"service_id": np.repeat(np.array([sid for sid, _, _ in parts], dtype=np.int64), sizes)}
    month_codes, months = pd.factorize(np.array([month for _, month, _ in parts], dtype=object))
    distinct = pd.PeriodIndex([pd.Period(str(m)[:7], freq="M") for m in months], freq="M")
    frame["period"] = distinct.take(np.repeat(month_codes, sizes)) if len(parts) else distinct[:0]
    frame["site_id"] = _concat([p.numbers["site_id"] for _, _, p in parts], np.int64)
    for column in kind.text:
        frame[column] = _united([p.text[column] for _, _, p in parts], categorical=column != "variables")
    for column, dtype in kind.numbers:
        if column != "site_id":
            frame[column] = _concat([p.numbers[column] for _, _, p in parts], np.dtype(dtype).newbyteorder("="))
    if kind.vectors:
        lengths = _concat([p.lengths for _, _, p in parts], np.int64)
        flat = np.frombuffer(b"".join(p.vectors for _, _, p in parts), dtype=">f8").astype(float)
        vectors = np.empty(len(lengths), dtype=object)
        starts = np.cumsum(lengths) - lengths
        for length in np.unique(lengths):  # the rows of one length as rows of one array
            at = np.flatnonzero(lengths == length)
            for i, vector in zip(at.tolist(), flat[starts[at, None] + np.arange(length)], strict=True):
                vectors[i] = vector
        frame["moments"] = vectors
    frame = pd.DataFrame(frame)
    sites = frame["site_id"].to_numpy(dtype=np.int64)
    frame["site_id"] = pd.array(sites, dtype="Int64")
    frame.loc[sites == NO_SITE, "site_id"] = pd.NA
    return frame


def _concat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)


def _united(coded: list[tuple[np.ndarray, list[str]]], *, categorical: bool):
    """Text columns of several parts (codes into each part's labels) as one column: a
    categorical of the values present, sorted, `MISSING_CODE` as missing; or (``variables``)
    each value as the tuple of its space-separated words."""
    lists = {tuple(own) for _, own in coded}  # parts mostly share their list of labels
    labels = sorted({label for own in lists for label in own})
    where = {label: i for i, label in enumerate(labels)}
    lookups = {own: np.array([where[x] for x in own], dtype=np.intp) for own in lists}
    codes = (
        np.concatenate([lookups[tuple(own)][c] for c, own in coded if len(c)])
        if any(len(c) for c, _ in coded)
        else np.zeros(0, dtype=np.intp)
    )
    if not categorical:
        values = np.empty(len(labels), dtype=object)
        values[:] = [tuple(label.split(" ")) for label in labels]
        return values[codes]
    used = np.flatnonzero(np.bincount(codes, minlength=len(labels)) > 0)
    present = [labels[i] for i in used if labels[i] != MISSING_CODE]
    lookup = np.full(len(labels), -1, dtype=np.intp)
    lookup[[where[x] for x in present]] = np.arange(len(present))
    return pd.Categorical.from_codes(lookup[codes], categories=pd.Index(present, dtype=object))


def pack_services(service_ids: Sequence[int]) -> None:
    """Pack every past month of some services whose pack is missing or stale, as their
    next reader would: after a bulk load (the demo, a rebuild), so that the first page
    read does not pay for it."""
    for service_id in service_ids:
        for kind in _KINDS.values():
            _read_parts(kind, [service_id], None, None, None)


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
        ``question_key``, ``age_band, sex, area, frequency`` (categories, NA for missing or
        "préfère ne pas dire"), ``n`` (answers, or responses for `RESPONSES_KEY`),
        ``total`` (sum of values), ``total_sq`` (sum of squares), ``satisfied`` (answers
        in `analysis.scales.SATISFIED`; meaningful on 1-5 scales only). Ordered by
        service, month, site, question and profile (the table's key; text in code-point
        order). This is the input of `analysis.cells`. Past months are read from their
        packs when current.
    """
    wanted = None if keys is None else frozenset([RESPONSES_KEY, *keys])
    kind = _KINDS["cells"]
    return _assemble(kind, _read_parts(kind, service_ids, start, end, wanted))


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
    kind = _KINDS["moments"]
    return _assemble(kind, _read_parts(kind, service_ids, start, end, None))


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
