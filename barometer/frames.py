"""The one bridge from the database to the tidy pandas frames that analysis/ reads."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import select

from surveys.schema import PREFER_NOT_TO_SAY, PROFILE_KEYS

from .extensions import db
from .models import Answer, Response, Service, Site

#: Columns of every responses frame, before the one column per numeric question.
BASE_COLUMNS = ("response_id", "service", "site", "submitted_at", "period", "channel", *PROFILE_KEYS)


def responses_frame(*, services: Sequence[str] | None = None, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per response, one column per numeric question (scale, 0-10, yes/no).

    "Non concerné" and unanswered questions are NaN; "préfère ne pas dire" in a
    profile column is missing (pd.NA), never a category. ``period`` is the month of
    submission (a pandas Period of frequency "M"). Only numeric answers are read: the wide frame is what
    estimates, raking and driver models need.
    """
    rquery = (
        select(
            Response.id.label("response_id"),
            Service.slug.label("service"),
            Site.code.label("site"),
            Response.submitted_at,
            Response.channel,
            *(getattr(Response, k) for k in PROFILE_KEYS),
        )
        .join(Service, Service.id == Response.service_id)
        .outerjoin(Site, Site.id == Response.site_id)
    )
    aquery = (
        select(Answer.response_id, Answer.question_key, Answer.value)
        .join(Response, Response.id == Answer.response_id)
        .join(Service, Service.id == Response.service_id)
        .where(Answer.value.is_not(None))
    )
    if services is not None:
        rquery = rquery.where(Service.slug.in_(list(services)))
        aquery = aquery.where(Service.slug.in_(list(services)))
    if keys is not None:
        aquery = aquery.where(Answer.question_key.in_(list(keys)))
    with db.engine.connect() as conn:
        responses = pd.read_sql(rquery, conn)
        answers = pd.read_sql(aquery, conn)
    responses["submitted_at"] = pd.to_datetime(responses["submitted_at"], utc=True)
    # Months in the organisation's time zone would be better; UTC months differ by
    # at most an hour or two at month ends, which moves no estimate visibly.
    responses["period"] = responses["submitted_at"].dt.tz_convert(None).dt.to_period("M")
    for key in PROFILE_KEYS:
        responses[key] = responses[key].astype("string").replace(PREFER_NOT_TO_SAY, pd.NA)
    wide = answers.pivot(index="response_id", columns="question_key", values="value")
    wide.columns.name = None
    frame = responses.set_index("response_id").join(wide).reset_index()
    return frame[[*BASE_COLUMNS, *[c for c in frame.columns if c not in BASE_COLUMNS]]]
