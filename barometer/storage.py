"""The one write path for residents' responses (web form, API, demo, imports)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from surveys.schema import PROFILE_KEYS, Questionnaire

from .extensions import db
from .journal import Journal
from .models import Answer, Channel, Response, utcnow
from .privacy import mask_personal_data
from .results import record_responses

T = TypeVar("T")
_RESPONSES = Response.__table__
_ANSWERS = Answer.__table__
# Built once: a statement object caches its compiled form and cache key.
_INSERT_RESPONSES = _RESPONSES.insert().returning(_RESPONSES.c.id, sort_by_parameter_order=True)
_INSERT_ANSWERS = _ANSWERS.insert()
_RESPONSE_KEYS = ("token", "service_id", "site_id", "version_id", "submitted_at", "channel", *PROFILE_KEYS)
_ANSWER_KEYS = ("response_id", "question_key", "value", "choice", "text")
#: Parameters in one statement: SQLite before 3.32 allows 999.
MAX_PARAMETERS = 999


class _DriverInsert:
    """An INSERT compiled once for a database dialect, run on the driver's own cursor.

    One resident's submission is the product's hot path. Through a Session, or even a
    Core connection, SQLAlchemy spends more time checking out, compiling from its cache
    and wrapping the transaction than the database spends writing. The statement is
    still SQLAlchemy's (same SQL, same parameter style, the column types' own bind
    conversions), only executed without that machinery.
    """

    def __init__(self, statement, keys: tuple[str, ...], dialect):
        table = statement.table
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.keys = keys
        # The parameters' order for a positional style (SQLite's "?"), None for a named one.
        self.order = compiled.positiontup
        self.conversions = [
            (key, convert)
            for key in keys
            if (convert := table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        # Where each value sits in built parameters: by name, or by position.
        self.slot = {key: key for key in keys} if self.order is None else {key: self.order.index(key) for key in keys}
        self.positions = None if self.order is None else [keys.index(key) for key in self.order]
        #: Whether values in the order of `keys` are already the statement's parameters.
        self.in_order = self.positions == list(range(len(keys)))
        self.slot_conversions = [(self.slot[key], convert) for key, convert in self.conversions]
        self.returns = bool(compiled.effective_returning)
        # SQLite's "?" style lets many rows share one statement: the values group of
        # one row, repeated. A named style (psycopg's "pyformat") runs a row at a time.
        group = "(" + ", ".join("?" * len(keys)) + ")"
        self.group = group if dialect.paramstyle == "qmark" and self.sql.count(group) == 1 else None

    def parameters(self, row: dict):
        for key, convert in self.conversions:
            row[key] = convert(row[key])
        return row if self.order is None else [row[key] for key in self.order]

    def rows(self, values: list) -> list:
        """Parameters of rows whose values are given in the order of `keys` (answer
        rows, a journal's lines), converted a column at a time."""
        width = len(self.keys)
        if any(len(row) != width for row in values):
            raise ValueError(f"{width} values expected in each row")
        if self.order is None:
            rows = [dict(zip(self.keys, row, strict=True)) for row in values]
        elif self.in_order:
            rows = [list(row) for row in values]
        else:
            rows = [[row[i] for i in self.positions] for row in values]
        for slot, convert in self.slot_conversions:
            for row in rows:
                row[slot] = convert(row[slot])
        return rows

    def put(self, parameters, key: str, value) -> None:
        """Set `key` in parameters already built (an answer's response id, known last)."""
        parameters[self.slot[key]] = value

    def get(self, parameters, key: str):
        return parameters[self.slot[key]]

    def run(self, cursor, rows: list) -> list[tuple]:
        """Insert rows (parameters built) in as few statements as the driver allows;
        returns what the statement returns, over all rows, in no given order (match
        them by a returned column, not by position)."""
        returned: list[tuple] = []
        if self.group is None:
            if not self.returns:
                cursor.executemany(self.sql, rows)
                return returned
            for row in rows:
                cursor.execute(self.sql, row)
                returned.extend(cursor.fetchall())
            return returned
        per = max(1, MAX_PARAMETERS // len(self.keys))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            sql = self.sql.replace(self.group, ", ".join([self.group] * len(chunk)))
            cursor.execute(sql, [value for row in chunk for value in row])
            if self.returns:
                returned.extend(cursor.fetchall())
        return returned


@lru_cache(maxsize=8)
def _driver_inserts(dialect) -> tuple[_DriverInsert, _DriverInsert]:
    """The response's INSERT (returning its id) and the answers'."""
    return (
        _DriverInsert(_RESPONSES.insert().returning(_RESPONSES.c.id), _RESPONSE_KEYS, dialect),
        _DriverInsert(_ANSWERS.insert().inline(), _ANSWER_KEYS, dialect),
    )


@lru_cache(maxsize=8)
def _insert_unless_known(dialect) -> _DriverInsert:
    """The response's INSERT that writes nothing, and returns nothing, for a token
    already stored (SQLite and PostgreSQL say it alike); it returns (token, id) of a
    new one."""
    insert = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[dialect.name]
    statement = (
        insert(_RESPONSES)
        .on_conflict_do_nothing(index_elements=["token"])
        .returning(_RESPONSES.c.token, _RESPONSES.c.id)
    )
    return _DriverInsert(statement, _RESPONSE_KEYS, dialect)


_turn_lock = threading.Lock()
#: The open lock file of each database, in this process.
_turn_files: dict[str, object] = {}


def _forget_turns() -> None:
    """In a new process: a lock file opened before the fork would be one lock shared
    with the parent, and a thread lock held then would stay held."""
    global _turn_lock
    _turn_lock = threading.Lock()
    _turn_files.clear()


os.register_at_fork(after_in_child=_forget_turns)


@contextmanager
def _write_turn(engine) -> Iterator[None]:
    """Writers of one SQLite file take turns, each woken as soon as the last is done.

    SQLite lets one writer in at a time and makes the others poll, sleeping 1, 2, 5 ms
    and more between tries: with several gunicorn workers a submission waits
    milliseconds for a lock held a fraction of one, while the processor stays idle. A
    lock on a file beside the database (`<database>-writer`, `flock`) queues the
    workers' writes instead; SQLite's own locking still guards the data, for every
    writer that does not take turns (commands, imports). A database server needs none.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    with _turn_lock:  # threads of one process share its open file, hence its flock
        turn = _turn_files.get(database)
        if turn is None:
            turn = _turn_files[database] = open(f"{database}-writer", "a")  # noqa: SIM115  (kept open)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Submission:
    """A response ready to store; `answers` come from `Questionnaire.clean`."""

    service_id: int
    version_id: int
    token: str
    questionnaire: Questionnaire
    answers: Mapping[str, Any]
    site_id: int | None = None
    channel: Channel = Channel.link
    submitted_at: datetime = field(default_factory=utcnow)


def _answer_values(sub: Submission) -> list[tuple]:
    """Each answer row of a response as (question key, value, choice, text)."""
    rows = []
    types = sub.questionnaire.types
    for key, value in sub.answers.items():
        if key in PROFILE_KEYS:
            continue
        kind = types[key]
        if kind == "text":
            rows.append((key, None, None, mask_personal_data(value)))
        elif isinstance(value, tuple):
            rows.extend((key, None, code, None) for code in value)
        elif isinstance(value, int):
            rows.append((key, float(value), None, None))
        else:  # a choice code, or NOT_APPLICABLE on a scale
            rows.append((key, None, value, None))
    return rows


def _answer_rows(response_id: int, sub: Submission) -> list[dict]:
    return [dict(zip(_ANSWER_KEYS, (response_id, *values), strict=True)) for values in _answer_values(sub)]


def _response_row(sub: Submission) -> dict:
    row = {
        "token": sub.token,
        "service_id": sub.service_id,
        "site_id": sub.site_id,
        "version_id": sub.version_id,
        # Kept to the hour only: a finer time could be matched with a web server's logs
        # to tie a response to an address; reports work by month.
        "submitted_at": sub.submitted_at.replace(minute=0, second=0, microsecond=0),
        "channel": Channel(sub.channel).value,
    }
    for key in PROFILE_KEYS:
        row[key] = sub.answers.get(key)
    return row


def keep_response(sub: Submission) -> None:
    """Keep a resident's response: in this process's journal when the app has one (a
    SQLite file: `barometer.journal`), else stored at once. Either way it is kept once
    for its token, whatever the resident sends again."""
    journal = current_app.extensions.get("response_journal")
    if journal is not None:
        try:
            journal.append(journal_record(sub))
            return
        except OSError:  # a full disk, no descriptor left: stored at once instead
            current_app.logger.exception("journal: response stored in its request")
    store_response(sub)


def store_response(sub: Submission) -> tuple[int, bool]:
    """Store one response once, in its own transaction; returns (response id, created).

    A token seen before (double tap, refresh, retry after a lost reply) returns the
    stored response's id and ``created=False``; nothing is written twice. Nothing
    pending in the ORM session is committed with it.
    """
    engine = db.engine
    insert_response, insert_answers = _driver_inserts(engine.dialect)
    # Everything is built before the write begins; only the response id is set inside.
    response = insert_response.parameters(_response_row(sub))
    answers = insert_answers.rows([(0, *values) for values in _answer_values(sub)])
    outcome = _in_turn(engine, lambda connection: _insert(connection, engine.dialect, response, answers))
    if isinstance(outcome, int):
        return outcome, True
    existing = db.session.execute(select(Response.id).where(Response.token == sub.token)).scalar()
    if existing is None:  # not a known token: another constraint refused the row
        raise outcome
    return existing, False


def _in_turn(engine, write: Callable[[Any], T]) -> T:
    """Run `write` on a pooled driver connection, in this process's turn to write."""
    connection = engine.raw_connection()  # from the pool, with its connect-time settings
    try:
        with _write_turn(engine):
            try:
                return write(connection)
            except BaseException:
                try:
                    connection.rollback()
                except Exception:  # a connection that cannot even roll back is not pooled again
                    connection.invalidate()
                raise
    finally:
        connection.close()  # back to the pool


def _insert(connection, dialect, response, answers: list) -> int | Exception:
    """One response and its answers (parameters built) in one transaction: the new id,
    or the refusal by a constraint (rolled back)."""
    insert_response, insert_answers = _driver_inserts(dialect)
    cursor = connection.cursor()
    try:
        cursor.execute(insert_response.sql, response)
        response_id = cursor.fetchone()[0]
        for parameters in answers:
            insert_answers.put(parameters, "response_id", response_id)
        if answers:
            cursor.executemany(insert_answers.sql, answers)
        connection.commit()
        return response_id
    except dialect.loaded_dbapi.IntegrityError as exc:
        connection.rollback()
        return exc
    finally:
        cursor.close()


# ------------------------------------------------------------------ the journal


def journal_record(sub: Submission) -> dict:
    """A response as one line of the journal (JSON): its rows, comment already masked."""
    response = _response_row(sub)
    response["submitted_at"] = response["submitted_at"].isoformat()
    return {"response": response, "answers": _answer_values(sub)}


def store_journaled(engine, records: list[dict], *, batch: int = 500) -> tuple[int, list[tuple[dict, str]]]:
    """Store responses read from a journal, many to a transaction.

    Returns how many were new, and those refused with the reason (a malformed line, a
    row a constraint refuses). A response whose token is stored already (a double tap,
    a journal written before its process died) is skipped.
    """
    dialect = engine.dialect
    insert_new, (_, insert_answers) = _insert_unless_known(dialect), _driver_inserts(dialect)
    built, refused = [], []
    for record in records:
        try:
            response = dict(record["response"])
            response["submitted_at"] = datetime.fromisoformat(response["submitted_at"])
            built.append(
                (
                    record,
                    insert_new.parameters({key: response[key] for key in _RESPONSE_KEYS}),
                    insert_answers.rows([(0, *values) for values in record["answers"]]),
                )
            )
        except Exception as exc:  # noqa: BLE001  (a line that is not a response: set aside)
            refused.append((record, f"malformed: {exc!r}"))
    stored = 0
    for start in range(0, len(built), batch):
        chunk = built[start : start + batch]
        outcome = _in_turn(engine, lambda connection, items=chunk: _insert_new(connection, dialect, items))
        if isinstance(outcome, int):
            stored += outcome
            continue
        for item in chunk:  # one refused row undoes its whole transaction: each alone
            outcome = _in_turn(engine, lambda connection, items=(item,): _insert_new(connection, dialect, items))
            if isinstance(outcome, int):
                stored += outcome
            else:
                refused.append((item[0], str(outcome)))
    return stored, refused


def _insert_new(connection, dialect, items) -> int | Exception:
    """Responses (record, response parameters, answers' parameters) in one transaction,
    each unless its token is known: how many were new, or the refusal by a constraint
    (rolled back)."""
    insert_new, (_, insert_answers) = _insert_unless_known(dialect), _driver_inserts(dialect)
    slot = insert_answers.slot["response_id"]
    cursor = connection.cursor()
    try:
        new = dict(insert_new.run(cursor, [response for _, response, _ in items]))
        stored, new_answers = 0, []
        for _, response, answers in items:
            # Popped: a token twice in the batch (a double tap) is stored once, the first.
            response_id = new.pop(insert_new.get(response, "token"), None)
            if response_id is None:  # stored before
                continue
            for parameters in answers:
                parameters[slot] = response_id
            new_answers.extend(answers)
            stored += 1
        if new_answers:
            insert_answers.run(cursor, new_answers)
        connection.commit()
        return stored
    except Exception as exc:
        if not _refuses_a_row(dialect.loaded_dbapi, exc):
            raise  # the database locked, away, read-only...: the lines wait in their file
        connection.rollback()  # a row refused: each is tried alone
        return exc
    finally:
        cursor.close()


def _refuses_a_row(dbapi, exc: Exception) -> bool:
    """Whether an error refuses one row for its values, rather than every write."""
    if isinstance(exc, (dbapi.IntegrityError, dbapi.DataError)):
        return True
    if isinstance(exc, (dbapi.InterfaceError, dbapi.ProgrammingError)):
        # A value the driver could not bind; an error the server sends (a missing
        # table, a refused privilege) carries its SQLSTATE.
        return getattr(exc, "sqlstate", None) is None
    return not isinstance(exc, dbapi.Error)  # a value Python cannot bind (too large...)


def response_journal(app) -> Journal | None:
    """The app's journal of responses, unless `RESPONSE_FLUSH_SECONDS` is 0: beside a
    SQLite file, or in `RESPONSE_JOURNAL_DIR` for any database; without a folder, a
    database server takes each response in its request."""
    seconds = app.config["RESPONSE_FLUSH_SECONDS"]
    with app.app_context():
        engine = db.engine
    directory = journal_directory(app.config, engine)
    if seconds <= 0 or directory is None:
        return None
    return Journal(directory, partial(store_journaled, engine), seconds)


def journal_directory(config, engine) -> Path | None:
    """Where the workers' journals are kept: `RESPONSE_JOURNAL_DIR`, else beside a
    SQLite file; None for a database server without that setting."""
    if directory := config["RESPONSE_JOURNAL_DIR"]:
        return Path(directory)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return Path(f"{engine.url.database}-pending")
    return None


def store_responses(subs: Sequence[Submission], *, batch: int = 5000) -> int:
    """Store many new responses in bulk transactions, with their read-model update;
    returns how many were stored."""
    session = db.session
    stored = 0
    for start in range(0, len(subs), batch):
        chunk = subs[start : start + batch]
        connection = session.connection()
        responses = [_response_row(s) for s in chunk]
        answers = [_answer_values(s) for s in chunk]
        ids = connection.execute(_INSERT_RESPONSES, responses).scalars().all()
        rows = [
            dict(zip(_ANSWER_KEYS, (rid, *values), strict=True))
            for rid, values_of in zip(ids, answers, strict=True)
            for values in values_of
        ]
        if rows:
            connection.execute(_INSERT_ANSWERS, rows)
        # In the same transaction: a batch refused (a token stored before) counts nothing.
        record_responses(
            connection,
            zip(responses, answers, strict=True),
            drivers={s.version_id: s.questionnaire.drivers for s in chunk},
        )
        session.commit()
        stored += len(chunk)
    return stored
