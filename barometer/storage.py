"""Where residents' responses are written: one per submission, or many at once (demo, imports)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from surveys.schema import PROFILE_KEYS, QuestionnaireDef

from .extensions import db
from .models import Answer, Channel, Response, utcnow
from .privacy import mask_personal_data
from .results import record_responses

log = logging.getLogger(__name__)

_RESPONSES = Response.__table__
_ANSWERS = Answer.__table__
_INSERT_RESPONSES = _RESPONSES.insert().returning(_RESPONSES.c.id, sort_by_parameter_order=True)
_INSERT_ANSWERS = _ANSWERS.insert()
#: The dialects whose INSERT can skip a row that breaks a unique constraint.
_DIALECT_INSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


class StorageUnavailable(RuntimeError):
    """The database did not take a response; nothing of it was written."""


@dataclass(frozen=True)
class Submission:
    """A response ready to store; `answers` come from `QuestionnaireDef.clean`."""

    service_id: int
    version_id: int
    token: str
    questionnaire: QuestionnaireDef
    answers: Mapping[str, Any]
    site_id: int | None = None
    channel: Channel = Channel.link
    submitted_at: datetime = field(default_factory=utcnow)


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


#: The columns of an answer row, in the order `_answer_values` gives them after the id.
_ANSWER_KEYS = ("response_id", "question_key", "value", "choice", "text")


def _answer_values(sub: Submission) -> list[tuple]:
    """Each answer row of a response as (question key, value, choice, text): one per
    value (a multiple choice gives several)."""
    rows = []
    types = sub.questionnaire.types
    for key, value in sub.answers.items():
        if key in PROFILE_KEYS:
            continue
        if types[key] == "text":
            # A comment of hidden characters only is no comment.
            if (text := mask_personal_data(value)) is not None:
                rows.append((key, None, None, text))
        elif isinstance(value, tuple):
            rows.extend((key, None, code, None) for code in value)
        elif isinstance(value, int):
            rows.append((key, float(value), None, None))
        else:  # a choice code, or NOT_APPLICABLE on a scale
            rows.append((key, None, value, None))
    return rows


def _answer_rows(response_id: int, sub: Submission) -> list[dict]:
    """The answer rows of a response, ready to insert."""
    return [dict(zip(_ANSWER_KEYS, (response_id, *values), strict=True)) for values in _answer_values(sub)]


def store_response(sub: Submission) -> bool:
    """Store one resident's response and its answers in one transaction, committed on
    return; True if it is new, False if its token was stored before (a double tap, a
    refresh, a retry after a lost reply: nothing is written twice).

    The database's unique constraint on the token decides, so concurrent retries in
    several workers store one response. `StorageUnavailable` when the database fails:
    then nothing of the response is written.
    """
    try:
        with db.engine.begin() as connection:
            created = _insert_once(connection, sub)
    except SQLAlchemyError as exc:
        write_failures.failed(exc)
        raise StorageUnavailable(str(exc)) from exc
    write_failures.succeeded()
    return created


def _insert_once(connection: Connection, sub: Submission) -> bool:
    """Insert the response unless its token is known, then its answers; in the caller's
    transaction."""
    response_row = _response_row(sub)
    response_id = connection.execute(_insert_unless_known(connection.dialect.name), response_row).scalar()
    if response_id is None:  # the token is stored already
        return False
    answer_rows = _answer_rows(response_id, sub)
    if answer_rows:
        connection.execute(_INSERT_ANSWERS, answer_rows)
    _after_insert(connection, sub, response_row, answer_rows)
    return True


@cache
def _insert_unless_known(dialect_name: str):
    """The response's INSERT that writes nothing for a token already stored, and
    returns the new row's id otherwise (built once: SQLAlchemy caches its compiled form)."""
    insert = _DIALECT_INSERTS[dialect_name](_RESPONSES).on_conflict_do_nothing(index_elements=["token"])
    return insert.returning(_RESPONSES.c.id)


def _after_insert(connection: Connection, sub: Submission, response_row: dict, answer_rows: list[dict]) -> None:
    """What else a new response changes, in its own transaction: the results read model,
    so that it never disagrees with the stored answers."""
    record_responses(
        connection, [_recorded(response_row, answer_rows)], drivers={sub.version_id: sub.questionnaire.drivers}
    )


def _recorded(response_row: dict, answer_rows: list[dict]) -> tuple[dict, list[tuple]]:
    """A response as the read model takes it: its row, and its answers as (key, value,
    choice, text)."""
    return response_row, [(r["question_key"], r["value"], r["choice"], r["text"]) for r in answer_rows]


def store_responses(subs: Sequence[Submission], *, batch: int = 5000) -> int:
    """Store many new responses (demo, imports) in bulk transactions, with their
    read-model update; returns how many were stored. Their tokens must be new: a known
    one fails its batch."""
    session = db.session
    stored = 0
    for start in range(0, len(subs), batch):
        chunk = subs[start : start + batch]
        connection = session.connection()
        response_rows = [_response_row(s) for s in chunk]
        ids = connection.execute(_INSERT_RESPONSES, response_rows).scalars().all()
        answers = [_answer_rows(response_id, sub) for response_id, sub in zip(ids, chunk, strict=True)]
        if any(answers):
            connection.execute(_INSERT_ANSWERS, [row for rows in answers for row in rows])
        # In the same transaction: a batch refused (a token stored before) counts nothing.
        record_responses(
            connection,
            [_recorded(row, rows) for row, rows in zip(response_rows, answers, strict=True)],
            drivers={s.version_id: s.questionnaire.drivers for s in chunk},
        )
        session.commit()
        stored += len(chunk)
    return stored


class WriteFailures:
    """A process's failed writes, logged once per episode rather than once per submission.

    The first failure is logged with its traceback; while the database keeps failing,
    a count at most every `REMIND_SECONDS`; the first success after, with the count of
    the whole episode. A database away for a minute thus writes three lines, not one
    traceback per resident.
    """

    REMIND_SECONDS = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self._since = self._reminded = 0.0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.count += 1
            now = time.monotonic()
            if self.count == 1:
                self._since = self._reminded = now
                log.error("database write failed: responses refused until it recovers", exc_info=exc)
            elif now - self._reminded >= self.REMIND_SECONDS:
                self._reminded = now
                log.error(
                    "database writes still failing: %d responses refused in %.0f s (last: %s)",
                    self.count,
                    now - self._since,
                    exc,
                )

    def succeeded(self) -> None:
        if not self.count:  # the usual case, without taking the lock
            return
        with self._lock:
            if self.count:
                log.warning(
                    "database writes back: %d responses refused in %.0f s",
                    self.count,
                    time.monotonic() - self._since,
                )
                self.count = 0


#: This process's episodes of failed writes.
write_failures = WriteFailures()
