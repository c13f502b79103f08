"""The resident's survey pages: the form, the thank-you page, QR codes and posters."""

import io

import segno
from flask import abort, current_app, render_template, request, url_for
from flask_babel import get_locale
from werkzeug.exceptions import HTTPException

from ..errors import with_retry_after
from ..models import web_channel
from . import bp
from .forms import condition_label, survey_form
from .services import (
    NOT_KEPT,
    count_submission,
    form_token,
    get_survey,
    is_cross_site,
    origin_of,
    posted_form,
    take_submission,
)


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
    channel = request.args.get("c", "link") if request.query_string else "link"
    return closed or _fresh_form(context, lang, channel)


@bp.post("/s/<slug>")
@bp.post("/s/<slug>/<site>")
def submit_survey(slug: str, site: str | None = None):
    """Take a resident's answers: store them once, or show what to correct."""
    context, lang, closed = _open_survey(slug, site)
    if closed:
        return closed
    count_submission()
    if NOT_KEPT in request.environ:  # the fast path could not keep it: not tried twice
        abort(500)
    cross_site = is_cross_site(request.headers, _own_origins)
    sent = posted_form(request)
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
        return _thanks(context, lang)
    if outcome.problem == "honeypot":
        return render_template("respond/refused.html", context=context, lang=lang), 400
    form = survey_form(context, lang, sent)  # the answers as judged
    form.show_errors(outcome.errors)
    notice, status = outcome.problem, 422 if outcome.problem is None else 400
    return _show_answers(form, context, lang, notice, status)


@bp.errorhandler(429)
def refuse_too_many(error):
    """Too many submissions from one address: say so, and keep the answers typed.

    Only `submit_survey` counts submissions, once it has found an open survey."""
    context, lang, _ = _open_survey(request.view_args["slug"], request.view_args.get("site"))
    try:
        sent = posted_form(request)
    except HTTPException:  # a body too large: the form shown blank
        sent = None
    page = _show_answers(survey_form(context, lang, sent), context, lang, "rate_limited", 429)
    return with_retry_after(page, error)


def _show_answers(form, context, lang: str, notice: str | None, status: int):
    """The form again, with what the resident typed, a fresh token and what went wrong."""
    form.token.data = form_token(context)
    return _no_store(
        render_template(
            "respond/survey.html",
            form=form,
            context=context,
            lang=lang,
            notice=notice,
            condition_label=lambda q: condition_label(context, q, lang),
        ),
        status,
    )


_TOKEN_SLOT = "\x00token\x00"


def _fresh_form(context, lang: str, channel: str):
    """The empty form, rendered once per survey, language and channel, then reused.

    Only the form's token differs between residents, so it is slotted into a page
    rendered earlier: the page a phone waits for costs no template rendering, and sets
    no cookie.
    """
    channel = web_channel(channel).value
    key = ("form", lang, channel)
    parts = context.pages.get(key)
    if parts is None:
        form = survey_form(context, lang)
        form.channel.data, form.token.data = channel, _TOKEN_SLOT
        html = render_template(
            "respond/survey.html",
            form=form,
            context=context,
            lang=lang,
            notice=None,
            condition_label=lambda q: condition_label(context, q, lang),
        )
        # Encoded once: the page before and after the token.
        before, after = html.split(_TOKEN_SLOT)
        parts = context.pages[key] = (before.encode(), after.encode())
    before, after = parts
    return _no_store(b"".join((before, form_token(context).encode(), after)), 200)


def _thanks(context, lang: str):
    """The thank-you page: the same for every resident of a survey and language."""
    page = thanks_page(context, lang)
    if page is None:
        page = context.pages[_thanks_key(lang)] = render_template(
            "respond/thanks.html", context=context, lang=lang
        ).encode()
    return _no_store(page, 200)


def thanks_page(context, lang: str) -> bytes | None:
    """The thank-you page of a survey in a language, once rendered."""
    return context.pages.get(_thanks_key(lang))


def _thanks_key(lang: str) -> tuple[str, str]:
    return ("thanks", lang)


# The page carries a one-time token and follows the browser's language; it varies with
# the cookie as Flask says of every page once the session was read (sign-in state).
NO_STORE = (("Cache-Control", "no-store"), ("Vary", "Accept-Language, Cookie"))
HTML = "text/html; charset=utf-8"


def _no_store(html: str | bytes, status: int):
    # The content type given, not looked for among the headers first.
    return current_app.response_class(html, status, NO_STORE, content_type=HTML)


def _own_origins() -> set[str]:
    """This site's origins: the one the request came to, and the public one if set."""
    origins = {origin_of(request.host_url).lower()}
    if base := current_app.config["PUBLIC_BASE_URL"]:
        origins.add(origin_of(base).lower())
    return origins


def _survey_url(context) -> str:
    base = current_app.config["PUBLIC_BASE_URL"]
    url = url_for("respond.show_survey", slug=context.service_slug, site=context.site_code, c="qr", _external=not base)
    return base + url if base else url


@bp.route("/s/<slug>/qr.svg")
@bp.route("/s/<slug>/<site>/qr.svg")
def survey_qr_svg(slug: str, site: str | None = None):
    """The QR code of a survey's URL, as SVG."""
    context = _context_or_404(slug, site)
    buffer = io.BytesIO()
    segno.make(_survey_url(context), error="m").save(
        buffer, kind="svg", scale=8, border=2, title=context.service_name, xmldecl=False
    )
    response = current_app.response_class(buffer.getvalue(), mimetype="image/svg+xml")
    response.cache_control.max_age = 3600
    return response


@bp.route("/s/<slug>/poster")
@bp.route("/s/<slug>/<site>/poster")
def show_poster(slug: str, site: str | None = None):
    """A printable A4 poster with the QR code and the service's name."""
    context = _context_or_404(slug, site)
    return render_template("respond/poster.html", context=context, url=_survey_url(context), lang=str(get_locale()))
