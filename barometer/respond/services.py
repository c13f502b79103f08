"""The resident's survey: finding a service's survey, tokens, storing an answer."""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask import current_app
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import validate_csrf
from limits import parse_many
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import TooManyRequests
from wtforms import ValidationError

from surveys.schema import Choice, Questionnaire, Text, questionnaire_from_dict

from ..extensions import db, limiter
from ..models import Questionnaire as QuestionnaireRow
from ..models import Service, Site, web_channel
from ..storage import Submission, store_response


@dataclass(frozen=True)
class SurveyContext:
    """What the survey page needs about a service, read once and cached per worker."""

    service_id: int
    service_slug: str
    service_name: str
    organisation_name: str
    is_open: bool
    site_id: int | None
    site_code: str | None
    site_name: str | None
    version_id: int
    questionnaire: Questionnaire
    areas: tuple[Choice, ...]
    #: Pages rendered for this context (blank form, thank-you page), by language and
    #: channel; they are dropped with the context when it is read again.
    pages: dict = field(default_factory=dict, compare=False, repr=False)


_cache: dict[tuple[str, str | None], tuple[float, SurveyContext]] = {}
#: Bound on cached surveys per worker (services x sites of every organisation served).
CACHE_SIZE = 2048


def get_survey(slug: str, site_code: str | None = None) -> SurveyContext | None:
    """The survey of a service (and site), or None when either is unknown."""
    ttl = current_app.config["SURVEY_CACHE_SECONDS"]
    key = (slug, site_code)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    context = _read_survey(slug, site_code)
    # Unknown addresses are not cached: a crawler inventing them must not grow memory.
    if ttl > 0 and context is not None:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[key] = (now, context)
    return context


def clear_cache() -> None:
    _cache.clear()


def _read_survey(slug: str, site_code: str | None) -> SurveyContext | None:
    service = db.session.execute(
        select(Service)
        .where(Service.slug == slug)
        .options(
            selectinload(Service.organisation),
            selectinload(Service.questionnaire).selectinload(QuestionnaireRow.versions),
        )
    ).scalar_one_or_none()
    if service is None:
        return None
    site = None
    if site_code is not None:
        site = db.session.execute(
            select(Site).where(Site.service_id == service.id, Site.code == site_code)
        ).scalar_one_or_none()
        if site is None:
            return None
    version = service.questionnaire.current
    areas = tuple(Choice(code=a["code"], label=Text(**a["label"])) for a in service.organisation.areas or ())
    return SurveyContext(
        service_id=service.id,
        service_slug=service.slug,
        service_name=service.name,
        organisation_name=service.organisation.name,
        is_open=service.is_open,
        site_id=site.id if site else None,
        site_code=site.code if site else None,
        site_name=site.name if site else None,
        version_id=version.id,
        questionnaire=_questionnaire(version),
        areas=areas,
    )


_questionnaires: dict[tuple[int, str], Questionnaire] = {}


def _questionnaire(version) -> Questionnaire:
    # A version only changes in place until its first response; the checksum says so.
    key = (version.id, version.checksum)
    q = _questionnaires.get(key)
    if q is None:
        q = _questionnaires[key] = questionnaire_from_dict(version.definition)
    return q


# ------------------------------------------------------------------ rate limit

#: The scope under which submissions are counted in the limiter's storage.
SUBMISSION_SCOPE = "survey-submission"


@lru_cache(maxsize=16)
def _parsed_limits(text: str) -> tuple:
    return tuple(parse_many(text))


def count_submission() -> None:
    """Count one submission against the per-address limits; 429 when one is spent.

    The limits of `SURVEY_RATE_LIMIT` are counted in Flask-Limiter's storage (memory,
    or Redis shared by every worker) with its strategy, directly: its per-request
    resolution of decorators, blueprints and defaults cost a submission more than
    the count itself, for a limit known in advance. The address is only a key in that
    storage, with a time to live; it is never written next to a response.
    """
    if not limiter.enabled:
        return
    key = get_remote_address()
    for item in _parsed_limits(current_app.config["SURVEY_RATE_LIMIT"]):
        if not limiter.limiter.hit(item, SUBMISSION_SCOPE, key):
            reset = limiter.limiter.get_window_stats(item, SUBMISSION_SCOPE, key).reset_time
            raise TooManyRequests(retry_after=max(1, math.ceil(reset - time.time())))


# ------------------------------------------------------------------------ tokens


#: A token is 16 random bytes, URL-safe base64 without padding.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


def new_token() -> str:
    """A one-time token for one display of a form: it names the response once stored.

    It is not signed: the form's CSRF token, signed, tied to the visitor's session and
    timed (`SURVEY_TOKEN_MAX_AGE`), already says the form came from this site and is
    recent. The one-time token only has to be unguessable, so that nobody can take a
    resident's place, and seen once.
    """
    return secrets.token_urlsafe(16)


def is_token(token: str) -> bool:
    return _TOKEN.fullmatch(token) is not None


@dataclass(frozen=True)
class Outcome:
    """What became of a submission."""

    #: Stored now, or earlier under the same token (a double tap, a refresh, a retry).
    stored: bool = False
    #: Why nothing was stored apart from the answers: "honeypot", "csrf" (missing, forged
    #: or expired) or "token" (missing or malformed).
    problem: str | None = None
    #: Answer errors by question key, as `Questionnaire.clean` words them (code, params).
    errors: Mapping[str, tuple[str, dict]] = field(default_factory=dict)


def answers_sent(questionnaire: Questionnaire, formdata) -> dict[str, Any]:
    """What a resident sent, by question key (a list for a multiple choice)."""
    return {
        q.key: formdata.getlist(q.key) if q.type == "multiple" else formdata.get(q.key) for q in questionnaire.questions
    }


def take_submission(context: SurveyContext, formdata) -> Outcome:
    """Judge what a resident sent and store it once: honeypot, CSRF, the definition's rules, the token.

    The survey form is only needed to show the page again; a good submission is judged
    here, by the definition itself, and never instantiates it.
    """
    if formdata.get("website"):
        return Outcome(problem="honeypot")
    answers, errors = context.questionnaire.clean(answers_sent(context.questionnaire, formdata), areas=context.areas)
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        try:
            validate_csrf(formdata.get("csrf_token"))
        except ValidationError:
            return Outcome(problem="csrf", errors=errors)
    if errors:
        return Outcome(errors=errors)
    token = formdata.get("token") or ""
    if not is_token(token):
        return Outcome(problem="token")
    # A token seen before is the same response (double tap, refresh, retry): stored once.
    store_response(
        Submission(
            service_id=context.service_id,
            site_id=context.site_id,
            version_id=context.version_id,
            token=token,
            questionnaire=context.questionnaire,
            answers=answers,
            channel=web_channel(formdata.get("channel")),
        )
    )
    return Outcome(stored=True)
