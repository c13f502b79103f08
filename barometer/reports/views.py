"""The service manager's pages: the home, a service's report, its charts and exports.

Every route needs a signed-in user and checks the service against the user's scope
(`services.service_in_scope`): a service outside it answers 404, like an unknown one.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from flask import Response, abort, render_template, request
from flask_babel import format_decimal, get_locale
from flask_login import current_user, login_required

from ..auth.forms import LogoutForm
from . import bp, exports
from .charts import CHARTS, chart_svg
from .forms import GRAINS, ReportForm, default_range
from .services import (
    build_service_report,
    home_rows,
    report_periods,
    service_comments,
    service_in_scope,
    suppression_reason,
    viewer_scope,
)


def _today() -> date:
    return datetime.now(UTC).date()


def _settings(form: ReportForm) -> tuple[str, date, date]:
    """Grain and range asked for, or the defaults for what is missing or refused.

    By default a report ends with the last complete month: the current one is still
    filling and would read as a drop.
    """
    grain = form.grain.data if form.grain.data in GRAINS and not form.grain.errors else "month"
    end_default = _today().replace(day=1) - timedelta(days=1)
    start_default, _ = default_range(grain, end_default)
    valid_dates = not form.start.errors and not form.end.errors
    start = form.start.data if valid_dates and form.start.data else start_default
    end = form.end.data if valid_dates and form.end.data else end_default
    if start > end:
        start, end = start_default, end_default
    return grain, start, end


def _lang() -> str:
    return str(get_locale())


def _report_form() -> tuple[ReportForm, int]:
    form = ReportForm(formdata=request.args)
    status = 200 if form.validate() or not request.args else 422
    if not request.args:
        form = ReportForm(formdata=request.args)  # no errors on a first visit
    return form, status


@bp.route("/")
@login_required
def list_services():
    """Each service in the user's scope with its headline, trend and alerts, most urgent first."""
    form, status = _report_form()
    grain, start, end = _settings(form)
    rows = home_rows(current_user, grain=grain, start=start, end=end, lang=_lang())
    return (
        render_template(
            "reports/home.html", rows=rows, form=form, grain=grain, start=start, end=end, logout_form=LogoutForm()
        ),
        status,
    )


def _report(slug: str, site_code: str | None):
    service, site = service_in_scope(current_user, slug, site_code)
    form, status = _report_form()
    grain, start, end = _settings(form)
    report = build_service_report(
        service, grain=grain, start=start, end=end, site=site, lang=_lang(), viewer_scope=viewer_scope(current_user)
    )
    return service, site, form, status, report


@bp.route("/<slug>")
@bp.route("/<slug>/<site_code>")
@login_required
def show_report(slug: str, site_code: str | None = None):
    """A service's report (or one site's): headline, trend, attributes, drivers, publics,
    comparison, sites and residents' comments."""
    service, site, form, status, report = _report(slug, site_code)
    page = request.args.get("page", 1, type=int) or 1
    return _render_report(service, site, form, report, page=page), status


def _render_report(service, site, form, report, *, page: int = 1) -> str:
    """The report page's HTML: shown in the browser, or laid out as the PDF."""
    comments = service_comments(service, site=site, start=report.start, end=report.end, q=form.q.data or "", page=page)
    return render_template(
        "reports/report.html",
        report=report,
        service=service,
        site=site,
        form=form,
        comments=comments,
        charts={name: chart_svg(report, name) for name in CHARTS},
        start=report.start,
        end=report.end,
        logout_form=LogoutForm(),
    )


@bp.route("/<slug>/graphiques/<chart>.svg")
@login_required
def show_chart(slug: str, chart: str):
    """One chart of a report as an SVG file (the page shows the same inline)."""
    if chart not in CHARTS:
        abort(404)
    _service, _site, _form, _status, report = _report(slug, request.args.get("site") or None)
    svg = chart_svg(report, chart)
    if svg is None:
        abort(404)
    return Response(svg, mimetype="image/svg+xml")


@bp.route("/<slug>/tableaux/<table>.<fmt>")
@login_required
def export_table(slug: str, table: str, fmt: str):
    """One of the report's tables as CSV or XLSX, with the page's suppression."""
    if fmt not in exports.FORMATS or table not in exports.TABLES:
        abort(404)
    _service, _site, _form, _status, report = _report(slug, request.args.get("site") or None)
    return exports.table_response(report, table, fmt)


def _fmt(value: float | None, pattern: str) -> str:
    """A number in the reader's language; a dash where none could be computed (a gap
    whose other side has no answer), never "NaN"."""
    if value is None or not math.isfinite(value):
        return "—"
    return format_decimal(value, format=pattern)


def _percent(value: float | None) -> str:
    shown = _fmt(None if value is None else value * 100, "0")
    return shown if shown == "—" else shown + "\u202f%"


@bp.context_processor
def report_helpers():
    """Number formats of the reports, in the reader's language, and the suppression reason."""
    return {
        "reason": suppression_reason,
        "min_exported": exports.MIN_EXPORTED_RESPONSES,
        "today": _today,
        "pct": _percent,
        "pts": lambda v: _fmt(v * 100, "+0;-0"),
        "mean5": lambda v: _fmt(v, "0.0"),
        "signed2": lambda v: _fmt(v, "+0.00;-0.00"),
        "share": _percent,
        "r2": lambda v: _fmt(v, "0.00"),
        "eff": lambda v: _fmt(v, "#,##0"),
    }


@bp.route("/<slug>/reponses.<fmt>")
@login_required
def export_responses(slug: str, fmt: str):
    """The service's (or a site's) anonymised responses over the report's range, one row
    per response, as CSV or XLSX; ``?comments=1`` adds the residents' comments."""
    if fmt not in exports.FORMATS:
        abort(404)
    service, site = service_in_scope(current_user, slug, request.args.get("site") or None)
    form, _status = _report_form()
    grain, start, end = _settings(form)
    periods = report_periods(grain, start, end, _lang())
    selection = exports.ResponseSelection(
        service,
        site,
        periods[0].start,
        periods[-1].end,
        comments=request.args.get("comments") == "1",
        lang=_lang(),
    )
    return exports.responses_response(selection, fmt)


@bp.route("/<slug>/rapport.pdf")
@login_required
def export_report_pdf(slug: str):
    """The report as a PDF: the page itself, with its print stylesheet and the newest comments."""
    from . import pdf  # WeasyPrint is heavy: loaded on the first PDF, not with the app

    service, site, form, _status, report = _report(slug, request.args.get("site") or None)
    html = _render_report(service, site, form, report)
    return pdf.pdf_response(html, exports.filename(report, "rapport", "pdf"))
