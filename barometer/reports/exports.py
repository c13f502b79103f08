"""The report's tables, and a service's anonymised responses, as CSV and XLSX files.

The tables have the same rows as the page: a suppressed number is replaced by the
reason it is not shown, in every format. The responses export gives one row per
response, unless the selection is too small to publish (`responses_export`). Text that a
spreadsheet would read as a formula (a cell that begins with ``=``, ``+``, ``-`` or
``@``, or a tab or carriage return) is prefixed with an apostrophe, so that a comment or
a name can never run in the reader's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import Response, send_file, stream_with_context
from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy import and_, func, select

from analysis.estimates import DEFAULT_RULES, Estimate
from surveys.schema import PROFILE_KEYS, Question, questionnaire_from_dict

from ..extensions import db
from ..models import Answer, QuestionnaireVersion, Service, Site
from ..models import Response as ResponseRow
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


def _csv_dialect(lang: str) -> tuple[str, str]:
    """Field separator and decimal mark: French spreadsheets read ";" between fields and
    "," in numbers."""
    return (";", ",") if lang == "fr" else (",", ".")


def _csv_cells(row, comma: str) -> list:
    return ["" if v is None else str(v).replace(".", comma) if isinstance(v, float) else v for v in row]


def _csv(header, rows, lang: str) -> bytes:
    out = io.StringIO()
    delimiter, comma = _csv_dialect(lang)
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(_csv_cells(row, comma))
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


# ------------------------------------------------------------------------ responses

#: The columns of a responses export before its questions: stable names, those of an
#: import where they mean the same thing. ``month`` is the month of submission (AAAA-MM):
#: the stored hour would be a finer trace than any report needs.
RESPONSE_COLUMNS = ("service", "month", "channel", "site", "version", *PROFILE_KEYS)
#: The fewest responses a selection must hold to be exported row by row: the smallest
#: base on which the report publishes a number. Below it the report shows no figure, and
#: rows so few would let a reader recompute what it withholds, or recognise a resident.
MIN_EXPORTED_RESPONSES = DEFAULT_RULES.min_n
#: Between the codes of a multiple choice, in one cell (codes never contain it).
CHOICE_SEPARATOR = "|"
#: Rows read from the database, and written to a CSV, at a time.
BATCH = 1000
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ResponseSelection:
    """The responses a manager asks for: one service (or one of its sites) over whole
    periods of the report's grain, with or without the residents' comments."""

    service: Service
    site: Site | None
    start: date
    end: date
    comments: bool
    lang: str

    @property
    def conditions(self) -> list:
        start_at = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        end_at = datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(days=1)
        conditions = [
            ResponseRow.service_id == self.service.id,
            ResponseRow.submitted_at >= start_at,
            ResponseRow.submitted_at < end_at,
        ]
        if self.site is not None:
            conditions.append(ResponseRow.site_id == self.site.id)
        return conditions

    @property
    def filename_stem(self) -> str:
        scope = self.service.slug + (f"-{self.site.code}" if self.site else "")
        return f"{scope}-reponses-{self.start:%Y%m%d}-{self.end:%Y%m%d}"


def _all_questions(service: Service) -> list[Question]:
    """The questions of every version of the service's questionnaire, newest version first."""
    versions = db.session.execute(
        select(QuestionnaireVersion.definition)
        .where(QuestionnaireVersion.questionnaire_id == service.questionnaire_id)
        .order_by(QuestionnaireVersion.number.desc())
    ).scalars()
    return [q for definition in versions for q in questionnaire_from_dict(definition).questions]


def response_questions(service: Service, *, comments: bool) -> list[Question]:
    """The questions that become columns: those of every version of the service's
    questionnaire (the current version's order first), profile questions aside (they
    have their own columns), free text only when comments are asked for."""
    questions: dict[str, Question] = {}
    for question in _all_questions(service):
        if question.key in PROFILE_KEYS or question.key in questions:
            continue
        if question.type == "text" and not comments:
            continue
        questions[question.key] = question
    return list(questions.values())


def count_responses(selection: ResponseSelection) -> int:
    """How many responses the selection holds."""
    return db.session.execute(select(func.count()).where(*selection.conditions)).scalar_one()


def _labels(questions: list[Question], selection: ResponseSelection) -> list[str]:
    """The second header row of the XLSX: each column in words, in the reader's language."""
    lang = selection.lang
    profile = {}
    for q in reversed(_all_questions(selection.service)):  # the newest wording wins
        if q.key in PROFILE_KEYS:
            profile[q.key] = q.label.get(lang)
    base = {
        "service": _("Service"),
        "month": _("Mois de la réponse"),
        "channel": _("Canal"),
        "site": _("Site"),
        "version": _("Version du questionnaire"),
    }
    return [base.get(c) or profile.get(c, c) for c in RESPONSE_COLUMNS] + [q.label.get(lang) for q in questions]


def response_rows(selection: ResponseSelection, questions: list[Question]) -> Iterator[list]:
    """One row per response, oldest first, text neutralised; read ``BATCH`` rows at a
    time, so that memory stays flat whatever the number of responses.

    Numbers for scales, 0-10 and yes/no (1/0), ``na`` for "non concerné", choice codes
    (a multiple choice's joined by ``CHOICE_SEPARATOR``), comments as stored (personal
    data already masked). No response id, no token, no time finer than the month.
    """
    position = {q.key: i for i, q in enumerate(questions)}
    multiple = {q.key for q in questions if q.type == "multiple"}
    query = (
        select(
            ResponseRow.id,
            ResponseRow.submitted_at,
            ResponseRow.channel,
            Site.code,
            QuestionnaireVersion.number,
            *(getattr(ResponseRow, k) for k in PROFILE_KEYS),
            Answer.question_key,
            Answer.value,
            Answer.choice,
            Answer.text,
        )
        .join(QuestionnaireVersion, QuestionnaireVersion.id == ResponseRow.version_id)
        .outerjoin(Site, Site.id == ResponseRow.site_id)
        .outerjoin(Answer, and_(Answer.response_id == ResponseRow.id, Answer.question_key.in_(list(position))))
        .where(*selection.conditions)
        .order_by(ResponseRow.id, Answer.id)
        .execution_options(yield_per=BATCH)
    )
    slug = selection.service.slug
    n_head = 5 + len(PROFILE_KEYS)
    for _id, rows in itertools.groupby(db.session.execute(query), key=lambda r: r[0]):
        first = None
        values: list = [None] * len(questions)
        for row in rows:
            first = first or row
            key, value, choice, text = row[n_head:]
            if key is None:
                continue
            i = position[key]
            if text is not None:
                values[i] = text
            elif value is not None:
                values[i] = int(value) if float(value).is_integer() else value
            elif key in multiple and values[i] is not None:
                values[i] = f"{values[i]}{CHOICE_SEPARATOR}{choice}"
            else:
                values[i] = choice
        _, submitted_at, channel, site_code, version, *profile = first[:n_head]
        head = [slug, f"{submitted_at:%Y-%m}", str(channel), site_code, version, *profile]
        yield [neutralise(v) for v in head + values]


def _withheld_message() -> str:
    return _(
        "Aucune réponse exportée : la sélection compte %(reason)s. En dessous, le rapport ne publie "
        "aucun chiffre et des réponses si peu nombreuses permettraient de reconnaître des usagers.",
        reason=_("moins de %(n)s réponses", n=MIN_EXPORTED_RESPONSES),
    )


def responses_response(selection: ResponseSelection, fmt: str) -> Response:
    """The selection's responses as a CSV (streamed) or XLSX download; a selection with
    fewer than `MIN_EXPORTED_RESPONSES` gives a file that holds only the reason."""
    name = f"{selection.filename_stem}.{fmt}"
    if count_responses(selection) < MIN_EXPORTED_RESPONSES:
        header, labels, rows = ["message"], None, iter([[_withheld_message()]])
    else:
        questions = response_questions(selection.service, comments=selection.comments)
        header = [*RESPONSE_COLUMNS, *(q.key for q in questions)]
        labels = _labels(questions, selection)
        rows = response_rows(selection, questions)
    if fmt == "csv":
        body = stream_with_context(_csv_chunks(header, rows, selection.lang))
        response = Response(body, mimetype="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    return send_file(
        _xlsx_file(header, labels, rows, _("réponses")), mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=name
    )


def _csv_chunks(header: list, rows: Iterable[list], lang: str) -> Iterator[bytes]:
    """A CSV written a batch of rows at a time, as the response streams."""
    out = io.StringIO()
    delimiter, comma = _csv_dialect(lang)
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(header)
    for i, row in enumerate(rows, 1):
        writer.writerow(_csv_cells(row, comma))
        if i % BATCH == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


def _xlsx_file(header: list, labels: list | None, rows: Iterable[list], title: str):
    """An XLSX workbook in a temporary file: openpyxl's write-only mode keeps rows on
    disk, not in memory. Keys in the first row, their labels in the second."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    bold = Font(bold=True)

    def cell(value, font=None):
        c = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value)
        if isinstance(value, str):
            c.data_type = "s"  # text, never a formula, whatever it begins with
        if font is not None:
            c.font = font
        return c

    sheet.freeze_panes = "A3" if labels else "A2"
    for top in (header, labels):
        if top is not None:
            sheet.append([cell(v, bold) for v in top])
    for row in rows:
        sheet.append([cell(v) if isinstance(v, str) else v for v in row])
    out = tempfile.TemporaryFile()  # noqa: SIM115 (send_file closes it once sent)
    try:
        book.save(out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out
