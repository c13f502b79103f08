"""The director's inputs in the browser: the allocations of a year and the strategic
framework, edited in place or imported from a file, and the files to fill.

The pages change only what the director's scope holds (`imports.allocation_scope`,
`imports.priority_scope`), and check values with the file imports' own parsers. What
they save is read by the next steering page: the budgets and the framework are read
from the database on each request, never from the estimates' cache.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user

from ..errors import render_error
from . import bp, imports
from .exports import csv_bytes, workbook
from .forms import PRIORITY_CHOICES, BudgetsForm, PrioritiesForm, UploadForm
from .services import years_with_allocations

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The upload form's fields are prefixed: its page has another form beside it.
UPLOAD_PREFIX = "fichier"


# ------------------------------------------------------------------ allocations


def _budget_year() -> tuple[int, list[int]]:
    """The year the budgets page shows (``?annee=``, else the latest with allocations,
    else this one) and the years that have allocations."""
    years = years_with_allocations(current_user)
    asked = request.args.get("annee")
    if asked is None:
        return (years[0] if years else date.today().year), years
    try:
        return imports.parse_year(asked), years
    except imports.CellError:
        abort(404)


@bp.route("/budgets", methods=["GET", "POST"])
def edit_budgets():
    """The allocations of a year for every service in scope, editable in place."""
    year, years = _budget_year()
    lines, source = imports.budget_lines(current_user, year)
    by_slug = {line.service.slug: line for line in lines}
    if request.method == "POST":
        form = BudgetsForm()
        _bind_rows(form, by_slug, "service", lambda line: line.allocation is not None)
    else:
        form = _budgets_form(lines)
    if form.validate_on_submit():
        records = [{"service": e.form.service.data, "year": year, **e.form.record} for e in form.rows if e.form.record]
        report = imports.save_allocations(records, {slug: line.service.id for slug, line in by_slug.items()})
        _flash_saved(report, "allocation")
        return redirect(url_for("steering.edit_budgets", annee=year))
    return _budgets_page(form, UploadForm(prefix=UPLOAD_PREFIX), year, years, by_slug, source)


def _budgets_form(lines) -> BudgetsForm:
    """The form of the budgets page, each service starting from its figures."""
    form = BudgetsForm(formdata=None)
    for line in lines:
        start = line.start
        form.rows.append_entry(
            {
                "service": line.service.slug,
                "budget_eur": _plain(start.budget_eur if start else None),
                "fte": _plain(start.staff_fte if start else None),
                "volume": _plain(start.volume if start else None),
            }
        )
    return form


def _budgets_page(form, upload, year, years, by_slug, source, refused=(), status=None):
    organisations = {line.service.organisation_id for line in by_slug.values()}
    status = status or (422 if request.method == "POST" else 200)
    return (
        render_template(
            "steering/budgets.html",
            form=form,
            upload=upload,
            year=year,
            years=years,
            next_year=(max(years) + 1) if years else None,
            lines=by_slug,
            source=source,
            several=len(organisations) > 1,
            errors=_row_errors(form, by_slug, "service", lambda line: line.service.name),
            refused=refused,
            max_upload=current_app.config["MAX_CONTENT_LENGTH"],
        ),
        status,
    )


@bp.route("/budgets/import", methods=["POST"])
def import_budget_file():
    """A file of allocations, checked whole: imported, or refused with every error."""
    year, years = _budget_year()
    upload = UploadForm(prefix=UPLOAD_PREFIX)
    refused = _import(upload, imports.import_allocations, "allocation", services=imports.allocation_scope(current_user))
    if refused is None:
        return redirect(url_for("steering.edit_budgets", annee=year))
    lines, source = imports.budget_lines(current_user, year)
    by_slug = {line.service.slug: line for line in lines}
    return _budgets_page(_budgets_form(lines), upload, year, years, by_slug, source, refused, 422)


@bp.route("/budgets/modele.<any(csv, xlsx):fmt>")
def download_budget_template(fmt: str):
    """The allocations of the year shown, as a file to fill and import."""
    year, _years = _budget_year()
    header, rows = imports.allocation_template(current_user, year)
    return _template_file(fmt, f"allocations-{year}", _("Allocations %(year)s", year=year), header, rows)


# ------------------------------------------------------------------ priorities


@bp.route("/priorites", methods=["GET", "POST"])
def edit_priorities():
    """The strategic framework of every policy in scope, editable in place."""
    lines = {line.policy.slug: line for line in imports.priority_lines(current_user)}
    editable = {slug: line for slug, line in lines.items() if line.editable}
    if request.method == "POST":
        form = PrioritiesForm()
        _bind_rows(form, editable, "policy", lambda line: line.priority is not None)
    else:
        form = _priorities_form(editable)
    if form.validate_on_submit():
        records = [{"policy": e.form.policy.data, **e.form.record} for e in form.rows if e.form.record]
        report = imports.save_priorities(records, {slug: line.policy.id for slug, line in editable.items()})
        _flash_saved(report, "priority")
        return redirect(url_for("steering.edit_priorities"))
    return _priorities_page(form, UploadForm(prefix=UPLOAD_PREFIX), lines)


def _priorities_form(editable) -> PrioritiesForm:
    form = PrioritiesForm(formdata=None)
    for slug, line in editable.items():
        p = line.priority
        form.rows.append_entry(
            {
                "policy": slug,
                "priority": str(p.level) if p else "",
                "floor_eur": _plain(p.floor_eur if p else None),
                "target": _plain(_percent(p.satisfaction_target) if p else None),
                "deadline": p.deadline.isoformat() if p and p.deadline else "",
            }
        )
    return form


def _priorities_page(form, upload, lines, refused=(), status=None):
    status = status or (422 if request.method == "POST" else 200)
    return (
        render_template(
            "steering/priorities.html",
            form=form,
            upload=upload,
            lines=lines,
            locked=[line for line in lines.values() if not line.editable],
            priority_labels={int(c.value): c.label for c in PRIORITY_CHOICES if c.value},
            errors=_row_errors(form, lines, "policy", lambda line: line.policy.name),
            refused=refused,
            max_upload=current_app.config["MAX_CONTENT_LENGTH"],
        ),
        status,
    )


@bp.route("/priorites/import", methods=["POST"])
def import_priority_file():
    """A file of the strategic framework, checked whole: imported, or refused with every error."""
    upload = UploadForm(prefix=UPLOAD_PREFIX)
    policies, locked = imports.priority_scope(current_user)
    refused = _import(upload, imports.import_priorities, "priority", policies=policies, locked=locked)
    if refused is None:
        return redirect(url_for("steering.edit_priorities"))
    lines = {line.policy.slug: line for line in imports.priority_lines(current_user)}
    form = _priorities_form({slug: line for slug, line in lines.items() if line.editable})
    return _priorities_page(form, upload, lines, refused, 422)


@bp.route("/priorites/modele.<any(csv, xlsx):fmt>")
def download_priority_template(fmt: str):
    """The framework of the policies the director may change, as a file to fill and import."""
    header, rows = imports.priority_template(current_user)
    return _template_file(fmt, "referentiel-strategique", _("Référentiel stratégique"), header, rows)


# ------------------------------------------------------------------ shared


@bp.errorhandler(413)
def refuse_large_file(error):
    """A file past `MAX_CONTENT_LENGTH`: the page says how large one may be."""
    if request.endpoint not in ("steering.import_budget_file", "steering.import_priority_file"):
        return render_error(error)
    message = _(
        "Le fichier dépasse %(size)s Ko, la taille maximale d'un envoi : rien n'a été importé. "
        "Enregistrez-le en CSV, plus léger, ou importez-le en plusieurs fois.",
        size=current_app.config["MAX_CONTENT_LENGTH"] // 1024,
    )
    return render_template("errors/error.html", code=413, message=message), 413


def _bind_rows(form, lines: dict, key: str, stored) -> None:
    """Check that the rows sent name distinct lines of the scope (a row of another
    organisation's is refused whole: 400), and mark those with figures stored."""
    seen = set()
    for entry in form.rows:
        slug = getattr(entry.form, key).data
        if slug not in lines or slug in seen:
            abort(400)
        seen.add(slug)
        entry.form.required = stored(lines[slug])


def _row_errors(form, lines: dict, key: str, name) -> list[tuple[str, str]]:
    """(link, message) pairs of the error summary: each field's first error, named by
    its row and column."""
    items = []
    for entry in form.rows:
        line = lines.get(getattr(entry.form, key).data)
        for field in entry.form:
            if field.errors and line is not None:
                where = f"{name(line)}, {field.label.text}"
                items.append((f"#{field.id}", _("%(question)s — %(problem)s", question=where, problem=field.errors[0])))
    return items


def _import(upload: UploadForm, run, noun: str, **scope) -> list | None:
    """Run a file import; None when it succeeded (flashed), else the errors to show:
    the form's own, or each error of the file as (row, column, reason)."""
    if not upload.validate_on_submit():
        return []
    stored = upload.file.data
    try:
        report = run(stored.stream, stored.filename or "", **scope)
    except imports.ImportRefused as exc:
        return [(e.row, e.column, e.text(_)) for e in exc.errors]
    _flash_saved(report, noun)
    return None


def _flash_saved(report: imports.ImportReport, noun: str) -> None:
    if not report.saved:
        flash(_("Aucune modification : rien à enregistrer."))
    elif noun == "allocation":
        flash(ngettext("%(num)d allocation enregistrée.", "%(num)d allocations enregistrées.", report.saved))
    else:
        flash(ngettext("%(num)d priorité enregistrée.", "%(num)d priorités enregistrées.", report.saved))


def _plain(value) -> str:
    """A number as a form shows it: no thousands separator, no trailing zeros, the
    reader's decimal mark."""
    if value is None:
        return ""
    text = f"{Decimal(str(value)).normalize():f}"
    return text.replace(".", ",") if _lang() == "fr" else text


def _percent(share: float | None) -> Decimal | None:
    """A share as the percentage typed (0.725 is 72.5, not 72.49999…)."""
    return None if share is None else Decimal(str(share)) * 100


def _lang() -> str:
    return str(get_locale()).split("_")[0]


def _template_file(fmt: str, stem: str, title: str, header: list[str], rows: list[list]) -> Response:
    """A file of the import's columns, as CSV (semicolons and decimal commas, as a French
    spreadsheet reads them) or XLSX; text that would run as a formula made inert."""
    if fmt == "xlsx":
        content, mimetype = workbook([(title, header, rows)]), XLSX
    else:
        content, mimetype = csv_bytes(header, rows, _lang()), "text/csv; charset=utf-8"
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})
