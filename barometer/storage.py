"""The one write path for residents' responses (web form, API, demo, imports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from surveys.schema import PROFILE_KEYS, Questionnaire

from .extensions import db
from .models import Answer, Channel, Response, utcnow
from .privacy import mask_personal_data

_RESPONSES = Response.__table__
_ANSWERS = Answer.__table__
# Built once: a statement object caches its compiled form and cache key.
_INSERT_RESPONSE = _RESPONSES.insert().returning(_RESPONSES.c.id)
_INSERT_RESPONSES = _RESPONSES.insert().returning(_RESPONSES.c.id, sort_by_parameter_order=True)
_INSERT_ANSWERS = _ANSWERS.insert()


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


def _answer_rows(response_id: int, sub: Submission) -> list[dict]:
    rows = []
    types = sub.questionnaire.types
    for key, value in sub.answers.items():
        if key in PROFILE_KEYS:
            continue
        row = {"response_id": response_id, "question_key": key, "value": None, "choice": None, "text": None}
        kind = types[key]
        if kind == "text":
            rows.append({**row, "text": mask_personal_data(value)})
        elif isinstance(value, tuple):
            rows.extend({**row, "choice": code} for code in value)
        elif isinstance(value, int):
            rows.append({**row, "value": float(value)})
        else:  # a choice code, or NOT_APPLICABLE on a scale
            rows.append({**row, "choice": value})
    return rows


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


def store_response(sub: Submission) -> tuple[int, bool]:
    """Store one response once; returns (response id, created).

    A token seen before (double tap, refresh, retry after a lost reply) returns the
    stored response's id and ``created=False``; nothing is written twice.
    """
    session = db.session
    # Plain Core inserts on the session's connection: this is the hot path of the
    # product, and the ORM's unit of work adds nothing for append-only rows.
    connection = session.connection()
    try:
        response_id = connection.execute(_INSERT_RESPONSE, _response_row(sub)).scalar_one()
        rows = _answer_rows(response_id, sub)
        if rows:
            connection.execute(_INSERT_ANSWERS, rows)
        session.commit()
        return response_id, True
    except IntegrityError:
        session.rollback()
        existing = session.execute(select(Response.id).where(Response.token == sub.token)).scalar()
        if existing is None:
            raise
        return existing, False


def store_responses(subs: Sequence[Submission], *, batch: int = 5000) -> int:
    """Store many new responses in bulk transactions; returns how many were stored."""
    session = db.session
    stored = 0
    for start in range(0, len(subs), batch):
        chunk = subs[start : start + batch]
        connection = session.connection()
        ids = connection.execute(_INSERT_RESPONSES, [_response_row(s) for s in chunk]).scalars().all()
        rows = [r for rid, s in zip(ids, chunk, strict=True) for r in _answer_rows(rid, s)]
        if rows:
            connection.execute(_INSERT_ANSWERS, rows)
        session.commit()
        stored += len(chunk)
    return stored
