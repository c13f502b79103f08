"""The resident's survey: finding a service's survey, tokens, storing an answer."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from surveys.schema import Choice, QuestionnaireDef, Text, questionnaire_from_dict

from ..extensions import db
from ..models import Questionnaire, QuestionnaireVersion, Service, Site, web_channel
from ..storage import StorageUnavailable, Submission, store_response


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
    questionnaire: QuestionnaireDef
    areas: tuple[Choice, ...]
    #: Pages the same for every resident (`views.shared_page`), rendered once; dropped
    #: with the context when the survey is read again.
    pages: dict = field(default_factory=dict, compare=False, repr=False)


_cache: dict[tuple[str, str | None], tuple[float, SurveyContext]] = {}
#: Bound on cached surveys per worker (services x sites of every organisation served).
CACHE_SIZE = 2048


def get_survey(slug: str, site_code: str | None = None, *, refresh: bool = False) -> SurveyContext | None:
    """The survey of a service (and site), or None when either is unknown; `refresh`
    reads it again rather than from this worker's cache."""
    ttl = current_app.config["SURVEY_CACHE_SECONDS"]
    key = (slug, site_code)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < ttl and not refresh:
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
            selectinload(Service.questionnaire).selectinload(Questionnaire.versions),
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
        is_open=service.is_open and (site is None or site.is_open),
        site_id=site.id if site else None,
        site_code=site.code if site else None,
        site_name=site.name if site else None,
        version_id=version.id,
        questionnaire=_questionnaire(version),
        areas=areas,
    )


_questionnaires: dict[tuple[int, str], QuestionnaireDef] = {}


def _questionnaire(version) -> QuestionnaireDef:
    # A version only changes in place until its first response; the checksum says so.
    key = (version.id, version.checksum)
    q = _questionnaires.get(key)
    if q is None:
        q = _questionnaires[key] = questionnaire_from_dict(version.definition)
    return q


def current_questionnaires(service_ids: Collection[int]) -> dict[int, QuestionnaireDef]:
    """The current questionnaire of each service, by id: two queries for any number of
    services (pages of many services need their questions, not their whole survey)."""
    services = dict(
        db.session.execute(select(Service.id, Service.questionnaire_id).where(Service.id.in_(list(service_ids)))).all()
    )
    latest = (
        select(QuestionnaireVersion.questionnaire_id, func.max(QuestionnaireVersion.number).label("number"))
        .where(QuestionnaireVersion.questionnaire_id.in_(set(services.values())))
        .group_by(QuestionnaireVersion.questionnaire_id)
        .subquery()
    )
    versions = db.session.execute(
        select(QuestionnaireVersion).join(
            latest,
            (QuestionnaireVersion.questionnaire_id == latest.c.questionnaire_id)
            & (QuestionnaireVersion.number == latest.c.number),
        )
    ).scalars()
    by_questionnaire = {v.questionnaire_id: _questionnaire(v) for v in versions}
    return {sid: by_questionnaire[qid] for sid, qid in services.items() if qid in by_questionnaire}


# ------------------------------------------------------------------------ tokens


def new_token() -> str:
    """A response's token: it names the response once stored, so that a double tap, a
    refresh or a retry stores it once. Unguessable, so that nobody takes a resident's
    place; it carries no time (responses keep the hour only)."""
    return secrets.token_urlsafe(16)


def _signer() -> TimestampSigner:
    """The signer of form tokens: the last key signs, all verify (key rotation)."""
    config = current_app.config
    return TimestampSigner([*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]], salt="survey-form")


def form_token(context: SurveyContext) -> str:
    """The token of one display of a survey's form: a new response token, the service,
    site and questionnaire version shown, signed and dated.

    The signature says the form came from this application; the service and site,
    where the response belongs (a form is only taken at the address it was shown at);
    the version, which questions the resident saw (a response is stored under the
    version it answered); the date lets a form left open longer than
    `SURVEY_TOKEN_MAX_AGE` be sent again rather than stored. Only the response token
    inside is stored, never the date.
    """
    site = "" if context.site_id is None else context.site_id
    return _signer().sign(f"{context.service_id}:{site}:{context.version_id}:{new_token()}").decode()


@dataclass(frozen=True)
class FormToken:
    """What a form's token says: the service, site and version of the form, and the
    response's token."""

    service_id: int
    site_id: int | None
    version_id: int
    response: str


def token_of(form_value: str) -> FormToken:
    """What a form token carries; `SignatureExpired` when the form is too old,
    `BadSignature` when the value is not a form token of this application."""
    value = _signer().unsign(form_value, max_age=current_app.config["SURVEY_TOKEN_MAX_AGE"]).decode()
    parts = value.split(":", 3)
    if len(parts) != 4:  # signed before tokens named their site
        raise BadSignature("form token without its service, site and version")
    service, site, version, response = parts
    if not (service.isdigit() and (site == "" or site.isdigit()) and version.isdigit() and response):
        raise BadSignature("malformed form token")
    return FormToken(int(service), int(site) if site else None, int(version), response)


# ------------------------------------------------------------- cross-site requests

#: `Sec-Fetch-Site` of a request made by this site's own pages, or typed by the user.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def is_cross_site(headers: Mapping[str, str], own_origins: Callable[[], Collection[str]]) -> bool:
    """Whether a browser sent this request from another site's page: a forged submission.

    The survey's protection against cross-site request forgery, without a cookie (the
    resident's pages set none): the browser itself says where a request comes from, in
    `Sec-Fetch-Site` (every current browser), else in `Origin` (sent with every form
    POST by browsers since 2020), else in `Referer`. A request with none of them was
    not sent by a browser's page (a script can send anything, and could fetch a token
    first just as well); forms of the same origin only. `own_origins()` gives this
    site's origins, lower-case "scheme://host[:port]"; only older browsers need it.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in OWN_FETCH_SITES
    origin = headers.get("Origin") or origin_of(headers.get("Referer"))
    return origin is not None and origin.lower() not in own_origins()


def origin_of(url: str | None) -> str | None:
    """The origin of an address, "scheme://host[:port]"; None for no address."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Outcome:
    """What became of a submission."""

    #: Stored now, or earlier under the same token (a double tap, a refresh, a retry).
    stored: bool = False
    #: Why nothing was stored apart from the answers: "honeypot", "cross_site" (sent
    #: from another site's page), "expired" (the form is older than
    #: `SURVEY_TOKEN_MAX_AGE`), "token" (missing, forged, malformed, or the form of
    #: another service or site), "version" (the questionnaire changed while the form
    #: was open) or "unavailable" (the database did not take it).
    problem: str | None = None
    #: Answer errors by question key, as `QuestionnaireDef.clean` words them (code, params).
    errors: Mapping[str, tuple[str, dict]] = field(default_factory=dict)
    #: The response to store, when nothing is wrong.
    submission: Submission | None = None


def answers_sent(questionnaire: QuestionnaireDef, formdata) -> dict[str, Any]:
    """What a resident sent, by question key (a list for a multiple choice)."""
    return {
        q.key: formdata.getlist(q.key) if q.type == "multiple" else formdata.get(q.key) for q in questionnaire.questions
    }


def take_submission(context: SurveyContext, formdata, *, cross_site: bool = False) -> Outcome:
    """Judge what a resident sent (`judge_submission`) and store it once, committed."""
    outcome = judge_submission(context, formdata, cross_site=cross_site)
    if outcome.submission is None:
        return outcome
    try:
        store_response(outcome.submission)  # a token seen before is the same response: stored once
    except StorageUnavailable:
        return Outcome(problem="unavailable")
    return Outcome(stored=True, submission=outcome.submission)


def judge_submission(context: SurveyContext, formdata, *, cross_site: bool = False) -> Outcome:
    """Judge what a resident sent: honeypot, origin, the form's token, the
    definition's rules; the response to store when nothing is wrong."""
    if formdata.get("website"):
        return Outcome(problem="honeypot")
    answers, errors = context.questionnaire.clean(answers_sent(context.questionnaire, formdata), areas=context.areas)
    if cross_site:
        return Outcome(problem="cross_site", errors=errors)
    try:
        token = token_of(formdata.get("token") or "")
    except SignatureExpired:
        return Outcome(problem="expired", errors=errors)
    except BadSignature:
        return Outcome(problem="token", errors=errors)
    if (token.service_id, token.site_id) != (context.service_id, context.site_id):
        return Outcome(problem="token", errors=errors)  # the form of another service or site
    if token.version_id != context.version_id:
        # The questions answered are not the current ones: shown again, answers kept.
        return Outcome(problem="version", errors=errors)
    if errors:
        return Outcome(errors=errors)
    submission = Submission(
        service_id=context.service_id,
        site_id=context.site_id,
        version_id=context.version_id,
        token=token.response,
        questionnaire=context.questionnaire,
        answers=answers,
        channel=web_channel(formdata.get("channel")),
    )
    return Outcome(submission=submission)
