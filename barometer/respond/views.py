"""The resident's survey pages: the form, the thank-you page, QR codes and posters."""

import io

import segno
from flask import abort, current_app, render_template, request, url_for
from flask_babel import get_locale

from ..extensions import csrf, limiter
from . import bp
from .forms import condition_label, survey_form
from .services import TokenError, get_survey, new_token, read_token, submit


def _context_or_404(slug: str, site: str | None):
    context = get_survey(slug, site)
    if context is None:
        abort(404)
    return context


def _submission_limit() -> str:
    return current_app.config["SURVEY_RATE_LIMIT"]


@bp.route("/s/<slug>", methods=["GET", "POST"])
@bp.route("/s/<slug>/<site>", methods=["GET", "POST"])
@limiter.limit(_submission_limit, methods=["POST"])
@csrf.exempt  # the form checks its own CSRF token, so a failure keeps the answers
def answer_survey(slug: str, site: str | None = None):
    """Show a service's survey and take a resident's answers."""
    context = _context_or_404(slug, site)
    lang = str(get_locale())
    if not context.is_open:
        return render_template("respond/closed.html", context=context, lang=lang), 410
    form = survey_form(context, lang)
    status, notice = 200, None
    if request.method == "POST":
        if form.website.data:
            return render_template("respond/refused.html", context=context, lang=lang), 400
        if form.validate():
            try:
                nonce = read_token(form.token.data or "", context.service_slug)
            except TokenError as exc:
                status, notice = 400, "expired" if exc.expired else "token"
            else:
                submit(context, nonce, form.answers, form.channel.data or "link")
                return render_template("respond/thanks.html", context=context, lang=lang)
        else:
            status, notice = (400, "csrf") if form.csrf_failed else (422, None)
    else:
        form.channel.data = request.args.get("c", "link")
    # Every display of the form gets a fresh token; the answers typed are kept.
    form.token.data = new_token(context.service_slug)
    return render_template(
        "respond/survey.html", form=form, context=context, lang=lang, notice=notice,
        condition_label=lambda q: condition_label(context, q, lang),
    ), status


def _survey_url(context) -> str:
    base = current_app.config["PUBLIC_BASE_URL"]
    path = url_for("respond.answer_survey", slug=context.service_slug, site=context.site_code, c="qr")
    return (base + path) if base else url_for(
        "respond.answer_survey", slug=context.service_slug, site=context.site_code, c="qr", _external=True
    )


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
