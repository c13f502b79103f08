"""The report's tables as CSV and XLSX files.

The same rows as the page: a suppressed number is replaced by the reason it is not
shown, in every format. Text that a spreadsheet would read as a formula (a cell that
begins with ``=``, ``+``, ``-`` or ``@``, or a tab or carriage return) is prefixed with
an apostrophe, so that a comment or a name can never run in the reader's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable

from flask import Response
from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font

from analysis.estimates import Estimate

from .services import ServiceReport, suppression_reason

FORMATS = ("csv", "xlsx")
TABLES = ("tendance", "criteres", "moteurs", "publics", "comparaison", "sites")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """Text a spreadsheet would take for a formula, made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _pct(value: float):
    return None if value is None or not math.isfinite(value) else round(value * 100, 1)


def _num(value: float, digits: int = 2):
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _estimate_cells(est: Estimate, *, percent: bool) -> list:
    """Value, CI low, CI high, n, n_eff and note of an estimate; a suppressed one says why."""
    if not est.publishable:
        return [suppression_reason(est), None, None, est.n if est.flag != "hidden" else None, None, ""]
    conv = _pct if percent else _num
    note = _("à interpréter avec prudence") if est.flag == "caution" else ""
    return [conv(est.value), conv(est.ci_low), conv(est.ci_high), est.n, _num(est.n_eff, 0), note]


def _estimate_headers(what: str) -> list[str]:
    return [
        what,
        _("IC 95 % bas"),
        _("IC 95 % haut"),
        _("Réponses"),
        _("Effectif efficace"),
        _("Remarque"),
    ]


def _trend(report: ServiceReport):
    header = [_("Période"), *_estimate_headers(_("Satisfaits (%)")), _("Note moyenne /5"), _("Évolution significative")]
    rows = []
    for p in report.trend.points:
        mean = _num(p.mean.value) if p.mean.publishable else suppression_reason(p.mean)
        direction = {"up": _("hausse"), "down": _("baisse")}.get(p.direction, "")
        rows.append([p.period.label, *_estimate_cells(p.satisfied, percent=True), mean, direction])
    return header, rows


def _attributes(report: ServiceReport):
    header = [
        _("Critère"),
        *_estimate_headers(_("Note moyenne /5")),
        _("Importance (part du R², %)"),
        _("Quadrant"),
    ]
    rows = [
        [r.label, *_estimate_cells(r.performance, percent=False), _pct(r.importance), r.quadrant_label]
        for r in report.attributes.rows
    ]
    return header, rows


def _drivers(report: ServiceReport):
    header = [_("Critère"), _("Part du R² (%)"), _("R² du modèle"), _("Réponses complètes")]
    rows = [[r.label, _pct(r.share), _num(report.drivers.r2, 3), report.drivers.n] for r in report.drivers.rows]
    return header, rows


def _publics(report: ServiceReport):
    header = [
        _("Dimension"),
        _("Public"),
        _("Satisfaits (%)"),
        _("Réponses"),
        _("Écart au reste (points)"),
        _("IC 95 % bas"),
        _("IC 95 % haut"),
        _("p ajustée (FDR)"),
        _("Moins satisfait"),
    ]
    rows = []
    for r in report.publics.rows:
        if r.estimate.publishable:
            rows.append(
                [
                    r.column_label,
                    r.label,
                    _pct(r.estimate.value),
                    r.estimate.n,
                    _pct(r.gap),
                    _pct(r.ci_low),
                    _pct(r.ci_high),
                    _num(r.p_adjusted, 4),
                    _("oui") if r.under_served else _("non"),
                ]
            )
        else:
            rows.append([r.column_label, r.label, suppression_reason(r.estimate), None, None, None, None, None, ""])
    return header, rows


def _comparison(report: ServiceReport):
    header = [_("Service"), _("Groupe"), *_estimate_headers(_("Satisfaits (%)"))]
    rows = [[r.name, r.group, *_estimate_cells(r.satisfied, percent=True)] for r in report.comparison]
    return header, rows


def _sites(report: ServiceReport):
    header = [_("Site"), *_estimate_headers(_("Satisfaits (%)")), _("Note moyenne /5")]
    rows = [
        [
            s.name,
            *_estimate_cells(s.satisfied, percent=True),
            _num(s.mean.value) if s.mean.publishable else suppression_reason(s.mean),
        ]
        for s in report.sites
    ]
    return header, rows


BUILDERS: dict[str, Callable] = {
    "tendance": _trend,
    "criteres": _attributes,
    "moteurs": _drivers,
    "publics": _publics,
    "comparaison": _comparison,
    "sites": _sites,
}


def table_rows(report: ServiceReport, table: str) -> tuple[list, list[list]]:
    """Header and rows of one table, text neutralised."""
    header, rows = BUILDERS[table](report)
    return [neutralise(h) for h in header], [[neutralise(v) for v in row] for row in rows]


def _csv(header, rows, lang: str) -> bytes:
    out = io.StringIO()
    # French spreadsheets read ";" between fields and "," in numbers.
    delimiter, comma = (";", ",") if lang == "fr" else (",", ".")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else str(v).replace(".", comma) if isinstance(v, float) else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _xlsx(header, rows, title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    # Text cells are text, never formulas, whatever neutralise() left.
    for row in sheet.iter_rows(min_row=1):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(report: ServiceReport, table: str, fmt: str) -> str:
    scope = report.service_slug + (f"-{report.site_code}" if report.site_code else "")
    return f"{scope}-{table}-{report.start:%Y%m%d}-{report.end:%Y%m%d}.{fmt}"


def table_response(report: ServiceReport, table: str, fmt: str) -> Response:
    header, rows = table_rows(report, table)
    if fmt == "csv":
        body, mimetype = _csv(header, rows, report.lang), "text/csv; charset=utf-8"
    else:
        body = _xlsx(header, rows, table)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename(report, table, fmt)}"'
    return response
