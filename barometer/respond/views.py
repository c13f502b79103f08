"""The resident's survey pages: the form, the thank-you page, QR codes and posters."""

import io
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import segno
from flask import abort, current_app, make_response, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from ..errors import render_error, with_retry_after
from ..extensions import limiter
from ..models import web_channel
from . import bp
from .forms import condition_label, survey_form
from .services import form_token, get_survey, is_cross_site, origin_of, take_submission

T = TypeVar("T")


def _context_or_404(slug: str, site: str | None, *, refresh: bool = False):
    context = get_survey(slug, site, refresh=refresh)
    if context is None:
        abort(404)
    return context


def _open_survey(slug: str, site: str | None, *, refresh: bool = False):
    """The survey's context and language, or the page to show instead."""
    context = _context_or_404(slug, site, refresh=refresh)
    lang = str(get_locale())
    closed = None if context.is_open else (render_template("respond/closed.html", context=context, lang=lang), 410)
    return context, lang, closed


@bp.get("/s/<slug>")
@bp.get("/s/<slug>/<site>")
def show_survey(slug: str, site: str | None = None):
    """Show a service's survey, blank, with a fresh token."""
    context, lang, closed = _open_survey(slug, site)
    if closed:
        return closed
    channel = web_channel(request.args.get("c", "link")).value
    before, after = shared_page(context, ("form", lang, channel), lambda: _blank_form(context, lang, channel))
    return _no_store(before + form_token(context) + after, 200)


def shared_page(context, key: tuple, render: Callable[[], T]) -> T:
    """A page the same for every resident of a survey, rendered once by `render` and
    kept with the survey's cached definition (`get_survey`): rendering the survey's
    few hundred fields is most of the cost of showing it."""
    page = context.pages.get(key)
    if page is None:
        page = context.pages[key] = render()
    return page


#: Where the token goes in the blank form rendered once.
_TOKEN_SLOT = "\x00token\x00"


def _blank_form(context, lang: str, channel: str) -> tuple[str, str]:
    """The blank survey page before and after its token: the one part that differs
    from one resident to the next."""
    form = survey_form(context, lang)
    form.channel.data, form.token.data = channel, _TOKEN_SLOT
    before, after = _render_form(form, context, lang, None).split(_TOKEN_SLOT)
    return before, after


def _survey_rate_limit() -> str:
    return current_app.config["SURVEY_RATE_LIMIT"]


@bp.post("/s/<slug>")
@bp.post("/s/<slug>/<site>")
# The address is only a key in the limiter's storage, with a time to live; it is
# never written next to a response.
@limiter.limit(_survey_rate_limit, key_func=get_remote_address, methods=["POST"])
def submit_survey(slug: str, site: str | None = None):
    """Take a resident's answers: store them once, committed, then thank; or show
    what to correct, every answer kept."""
    context, lang, closed = _open_survey(slug, site)
    if closed:
        return closed
    cross_site = is_cross_site(request.headers, _own_origins)
    sent = request.form
    outcome = take_submission(context, sent, cross_site=cross_site)
    if outcome.problem == "version":
        # This worker's copy of the survey may be the older one (the form came from a
        # worker that read the new version already): judged again on the current one.
        current, lang, closed = _open_survey(slug, site, refresh=True)
        if closed:
            return closed
        if current.version_id != context.version_id:
            context = current
            outcome = take_submission(context, sent, cross_site=cross_site)
    if outcome.stored:
        thanks = shared_page(
            context, ("thanks", lang), lambda: render_template("respond/thanks.html", context=context, lang=lang)
        )
        return _no_store(thanks, 200)
    if outcome.problem == "honeypot":
        return render_template("respond/refused.html", context=context, lang=lang), 400
    form = survey_form(context, lang, sent)  # the answers as judged
    form.show_errors(outcome.errors)
    status = {None: 422, "unavailable": 503}.get(outcome.problem, 400)
    return _show_form(form, context, lang, outcome.problem, status)


@bp.errorhandler(429)
def refuse_too_many(error):
    """Too many submissions from one address: say so, and keep the answers typed."""
    context = get_survey(request.view_args["slug"], request.view_args.get("site"))
    if context is None:
        return render_error(error)
    lang = str(get_locale())
    try:
        sent = request.form
    except HTTPException:  # a body too large: the form shown blank
        sent = None
    page = _show_form(survey_form(context, lang, sent), context, lang, "rate_limited", 429)
    return with_retry_after(page, error)


def _show_form(form, context, lang: str, notice: str | None, status: int):
    """The survey page again: the form with what the resident typed, a fresh token,
    and what went wrong."""
    form.token.data = form_token(context)
    return _no_store(_render_form(form, context, lang, notice), status)


def _render_form(form, context, lang: str, notice: str | None) -> str:
    return render_template(
        "respond/survey.html",
        form=form,
        context=context,
        lang=lang,
        notice=notice,
        condition_label=lambda q: condition_label(context, q, lang),
    )


def _no_store(html: str, status: int):
    """A resident's page: it carries a one-time token and follows the browser's language."""
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept-Language")
    return response


def _own_origins() -> set[str]:
    """This site's origins: the one the request came to, and the public one if set."""
    origins = {origin_of(request.host_url).lower()}
    if base := current_app.config["PUBLIC_BASE_URL"]:
        origins.add(origin_of(base).lower())
    return origins


#: Hosts that only this machine reaches (`make run`): safe to print without a setting.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _public_base() -> str:
    """The address that printed links start with (QR codes, posters).

    `PUBLIC_BASE_URL` when set; else the request's own, if Flask checked it against
    `TRUSTED_HOSTS` or it names this machine. Otherwise the `Host` header is whatever
    the client sent, and printing it would let anyone make a poster that sends
    residents elsewhere: refused, with the setting to fill in.
    """
    if base := current_app.config["PUBLIC_BASE_URL"]:
        return base
    if current_app.config["TRUSTED_HOSTS"] or urlsplit(f"//{request.host}").hostname in LOOPBACK_HOSTS:
        return request.host_url.rstrip("/")
    message = _("L'adresse publique du site n'est pas configurée : renseignez PUBLIC_BASE_URL ou TRUSTED_HOSTS.")
    abort(make_response(render_template("errors/error.html", code=400, message=message), 400))


def _printable_survey(slug: str, site: str | None):
    """The survey of a QR code or poster, and its address; the closed page (410)
    for a closed service or site, whose code must not be printed again."""
    context, lang, closed = _open_survey(slug, site)
    if closed:
        abort(make_response(*closed))
    url = url_for("respond.show_survey", slug=context.service_slug, site=context.site_code, c="qr")
    return context, lang, _public_base() + url


@bp.route("/s/<slug>/qr.svg")
@bp.route("/s/<slug>/<site>/qr.svg")
def survey_qr_svg(slug: str, site: str | None = None):
    """The QR code of a survey's URL, as SVG."""
    context, _lang, url = _printable_survey(slug, site)
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=8, border=2, title=context.service_name, xmldecl=False)
    response = current_app.response_class(buffer.getvalue(), mimetype="image/svg+xml")
    response.cache_control.max_age = 3600
    return response


@bp.route("/s/<slug>/poster")
@bp.route("/s/<slug>/<site>/poster")
def show_poster(slug: str, site: str | None = None):
    """A printable A4 poster with the QR code and the service's name."""
    context, lang, url = _printable_survey(slug, site)
    return render_template("respond/poster.html", context=context, url=url, lang=lang)
