"""Imports of the director's inputs: allocations per service and year, priorities per policy.

A file (CSV or XLSX) is validated whole before anything is written: with one bad row
nothing is imported, and each error names its row as a spreadsheet numbers it (the
header is row 1), its column and the reason, in French, since the finance officer who
prepared the file reads them; each reason is also a message of the catalogue, which the
director's pages show translated. A re-import updates the rows it names, on (service, year)
for allocations and on the policy for priorities, and leaves the others as they were.

The command line imports for every organisation; the director's pages pass the services
and policies a director may change, and the same validation and writing run for both.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import Allocation, Policy, Priority, Service, User
from .services import services_in_scope

__all__ = [
    "ALLOCATION_COLUMNS",
    "INFO_COLUMNS",
    "MISSING",
    "PRIORITY_COLUMNS",
    "BudgetLine",
    "CellError",
    "ImportRefused",
    "ImportReport",
    "PriorityLine",
    "RowError",
    "allocation_scope",
    "allocation_template",
    "budget_lines",
    "import_allocations",
    "import_priorities",
    "parse_count",
    "parse_date",
    "parse_euros",
    "parse_fte",
    "parse_percent",
    "parse_priority",
    "parse_share",
    "parse_year",
    "priority_lines",
    "priority_scope",
    "priority_template",
    "read_table",
    "save_allocations",
    "save_priorities",
    "validate_allocations",
    "validate_priorities",
]

#: The columns of an allocations file, in the order a template lists them.
ALLOCATION_COLUMNS = ("service", "year", "budget_eur", "fte", "volume")
#: The columns of a priorities file.
PRIORITY_COLUMNS = ("policy", "priority", "floor_eur", "target_satisfied", "deadline")
#: Columns a file may carry for its reader and the import ignores: the service's or the
#: policy's name, which the downloadable templates write beside its slug.
INFO_COLUMNS = ("name",)

#: Errors listed in full before the rest are only counted: a file with a wrong column
#: order would otherwise print one line per row.
MAX_LISTED = 20
HEADER_ROW = 1
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CENT = Decimal("0.01")


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; it is translated where shown."""
    return message


class CellError(ValueError):
    """A value refused: ``message`` is a French text of the catalogue, ``params`` fill it."""

    def __init__(self, message: str, **params):
        self.message = message
        self.params = params
        super().__init__(message % params)

    def text(self, gettext: Callable[[str], str] | None = None) -> str:
        """The reason, translated by ``gettext`` when given, in French otherwise."""
        return (gettext(self.message) if gettext else self.message) % self.params


@dataclass(frozen=True)
class RowError:
    """What is wrong in a file: its row (None for the file itself), column and why.

    ``message`` is a French text of the catalogue and ``params`` its values, as
    (name, value) pairs: the command prints `reason`, a page shows `text(gettext)`.
    """

    row: int | None
    column: str | None
    message: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, row: int | None, column: str | None, error: CellError) -> RowError:
        return cls(row, column, error.message, tuple(error.params.items()))

    def text(self, gettext: Callable[[str], str] | None = None) -> str:
        """The reason, translated by ``gettext`` when given, in French otherwise."""
        return (gettext(self.message) if gettext else self.message) % dict(self.params)

    @property
    def reason(self) -> str:
        return self.text()

    def __str__(self) -> str:
        where = "fichier" if self.row is None else f"ligne {self.row}"
        if self.column:
            where += f", colonne {self.column}"
        return f"{where} : {self.reason}"


class ImportRefused(ValueError):
    """A file refused whole; ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[RowError]):
        self.errors = tuple(errors)
        lines = [str(e) for e in self.errors[:MAX_LISTED]]
        if len(self.errors) > MAX_LISTED:
            lines.append(f"… et {len(self.errors) - MAX_LISTED} autre(s) erreur(s)")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote."""

    created: int
    updated: int
    #: Rows named again with the values already stored.
    unchanged: int = 0

    @property
    def saved(self) -> int:
        """Rows created or changed."""
        return self.created + self.updated

    def summary(self, noun: str) -> str:
        """One French line; ``noun`` is feminine, as "allocation(s)" and "priorité(s)" are."""
        line = f"{self.created} {noun} créée(s), {self.updated} mise(s) à jour."
        return line + (f" {self.unchanged} inchangée(s)." if self.unchanged else "")


# Reading -------------------------------------------------------------------------


def read_table(source: str | Path | IO[bytes], filename: str | None = None) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the non-empty rows ``(row number, {column: raw value})`` of a
    CSV or XLSX file, told apart by the file name's extension.

    ``source`` is a path or a binary file object (an uploaded file, with its
    ``filename``). CSV files may be UTF-8 (with or without BOM) or Windows-1252, with
    commas, semicolons or tabs between values, as spreadsheets export them.
    """
    name = str(filename if filename is not None else source)
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".txt", ".xlsx", ".xlsm"):
        error = (
            RowError(None, None, N_("format non reconnu (%(suffix)s) : .csv ou .xlsx attendu"), (("suffix", suffix),))
            if suffix
            else RowError(None, None, N_("fichier sans extension : .csv ou .xlsx attendu"))
        )
        raise ImportRefused([error])
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
    except OSError as exc:
        reason = (("reason", exc.strerror or str(exc)),)
        raise ImportRefused([RowError(None, None, N_("lecture impossible (%(reason)s)"), reason)]) from exc
    rows = _xlsx_rows(data) if suffix in (".xlsx", ".xlsm") else _csv_rows(data)
    rows = [(i, r) for i, r in enumerate(rows, start=1) if any(not _blank(v) for v in r)]
    if not rows:
        raise ImportRefused([RowError(None, None, N_("fichier vide"))])
    if rows[0][0] != HEADER_ROW:
        raise ImportRefused([RowError(HEADER_ROW, None, N_("la première ligne doit nommer les colonnes"))])
    header = ["" if v is None else str(v).strip().lower() for v in rows[0][1]]
    body = []
    for number, values in rows[1:]:
        body.append((number, {h: values[j] if j < len(values) else None for j, h in enumerate(header) if h}))
        extra = [v for j, v in enumerate(values) if (j >= len(header) or not header[j]) and not _blank(v)]
        if extra:
            raise ImportRefused([RowError(number, None, N_("valeur dans une colonne sans nom"))])
    return header, body


def _csv_rows(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError or its own errors
        raise ImportRefused([RowError(None, None, N_("classeur XLSX illisible"))]) from exc
    try:
        return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# Values --------------------------------------------------------------------------
# Each parser takes a raw cell (text from a CSV or a form, a number or a date from a
# workbook) and returns the value stored, or raises `CellError` with its reason. The
# file imports and the director's forms use the same ones.


def _shown(raw) -> str:
    return f"« {str(raw).strip()} »"


def _decimal(raw) -> Decimal:
    if isinstance(raw, bool):
        raise CellError(N_("valeur non numérique : %(value)s"), value=_shown(raw))
    if isinstance(raw, (int, float)):
        value = Decimal(str(raw))
    else:
        text = str(raw).strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
        if "," in text and "." in text:
            raise CellError(
                N_("nombre ambigu : %(value)s (écrire 1234,56 ou 1234.56, sans séparateur de milliers)"),
                value=_shown(raw),
            )
        try:
            value = Decimal(text.replace(",", "."))
        except InvalidOperation:
            raise CellError(N_("valeur non numérique : %(value)s"), value=_shown(raw)) from None
    if not value.is_finite():
        raise CellError(N_("valeur non numérique : %(value)s"), value=_shown(raw))
    return value


def _amount(limit: Decimal) -> Callable[[Any], Decimal]:
    def parse(raw) -> Decimal:
        value = _decimal(raw)
        if value < 0:
            raise CellError(N_("montant négatif : %(value)s"), value=_shown(raw))
        if value >= limit:
            raise CellError(N_("montant trop grand : %(value)s"), value=_shown(raw))
        return value.quantize(_CENT, rounding=ROUND_HALF_UP)

    return parse


def _whole(raw) -> int:
    value = _decimal(raw)
    if value != value.to_integral_value():
        raise CellError(N_("nombre entier attendu : %(value)s"), value=_shown(raw))
    return int(value)


#: A budget or a floor in euros, to the cent.
parse_euros = _amount(Decimal("1e12"))
#: Staff in full-time equivalents, to the hundredth.
parse_fte = _amount(Decimal("1e6"))


def parse_count(raw) -> int:
    """A volume: visits, users or files handled in the year."""
    value = _whole(raw)
    if value < 0:
        raise CellError(N_("valeur négative : %(value)s"), value=_shown(raw))
    return value


def parse_year(raw) -> int:
    value = _whole(raw)
    if not 1900 <= value <= 2200:
        raise CellError(N_("année invalide : %(value)s"), value=_shown(raw))
    return value


def parse_priority(raw) -> int:
    """A priority level: 1 essential, 2 important, 3 secondary (`analysis.redeploy`)."""
    # Imported here: analysis/ loads the statistics libraries, which an app start must not.
    from analysis.redeploy import PRIORITY_LABELS

    try:
        value = _whole(raw)
    except CellError:
        value = None
    if value not in PRIORITY_LABELS:
        levels = ", ".join(f"{k} {v}" for k, v in PRIORITY_LABELS.items())
        raise CellError(N_("priorité invalide : %(value)s (%(levels)s)"), value=_shown(raw), levels=levels)
    return value


def parse_share(raw) -> float:
    """A share between 0 and 1, as the files give a target."""
    value = _decimal(raw)
    if not 0 <= value <= 1:
        if 1 < value <= 100:
            raise CellError(
                N_("part hors de l'intervalle 0–1 : %(value)s (%(percent)s %% s'écrit %(share)s)"),
                value=_shown(raw),
                percent=_fr(value),
                share=_fr(value / 100),
            )
        raise CellError(N_("part hors de l'intervalle 0–1 : %(value)s"), value=_shown(raw))
    return float(value)


def parse_percent(raw) -> float:
    """A share typed as a percentage between 0 and 100, as the director's page shows a
    target (« 75 », « 75 % » or « 72,5 »), returned between 0 and 1."""
    text = str(raw).strip().removesuffix("%").strip() if isinstance(raw, str) else raw
    value = _decimal(text)
    if not 0 <= value <= 100:
        raise CellError(N_("pourcentage hors de l'intervalle 0–100 : %(value)s"), value=_shown(raw))
    return float(value / 100)


def _fr(value: Decimal) -> str:
    return f"{value.normalize():f}".replace(".", ",")


def parse_date(raw) -> date:
    """A date written AAAA-MM-JJ, or a workbook's date."""
    if isinstance(raw, datetime):
        if raw.time() != datetime.min.time():
            raise CellError(N_("date invalide : %(value)s (format AAAA-MM-JJ attendu)"), value=_shown(raw))
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise CellError(N_("date invalide : %(value)s (format AAAA-MM-JJ attendu)"), value=_shown(raw)) from None


#: An empty cell where a value is required.
MISSING = N_("valeur manquante")
_UNKNOWN = {"service": N_("service inconnu : %(value)s"), "politique": N_("politique inconnue : %(value)s")}
#: A policy whose framework another organisation shares (`priority_scope`).
_SHARED = N_(
    "politique commune à plusieurs collectivités : %(value)s (son référentiel se modifie depuis un compte "
    "qui les couvre toutes)"
)


def _slug(known: Mapping[str, Any], noun: str, locked: Collection[str] = ()) -> Callable[[Any], str]:
    def parse(raw) -> str:
        slug = str(raw).strip()
        if slug in locked:
            raise CellError(_SHARED, value=_shown(raw))
        if slug not in known:
            raise CellError(_UNKNOWN[noun], value=_shown(raw))
        return slug

    return parse


# Validation ----------------------------------------------------------------------


def _check_header(header: list[str], expected: tuple[str, ...]) -> None:
    errors = []
    seen = set()
    for name in header:
        if not name:
            continue
        if name in seen:
            errors.append(RowError(HEADER_ROW, name, N_("colonne en double")))
        elif name not in expected and name not in INFO_COLUMNS:
            errors.append(
                RowError(
                    HEADER_ROW,
                    name,
                    N_("colonne inconnue (colonnes attendues : %(expected)s)"),
                    (("expected", ", ".join(expected)),),
                )
            )
        seen.add(name)
    errors += [RowError(HEADER_ROW, c, N_("colonne manquante")) for c in expected if c not in seen]
    if errors:
        raise ImportRefused(errors)


def _validate(
    header: list[str],
    rows: list[tuple[int, dict]],
    fields: dict[str, tuple[Callable[[Any], Any], bool]],
    key: tuple[str, ...],
) -> list[dict]:
    """Parse every cell of every row; refuse the whole file on the first error found
    after all rows were read (so that every error is listed at once).

    A row that names its key and nothing else (a template's line left empty) says
    nothing, and is passed over."""
    _check_header(header, tuple(fields))
    if not rows:
        raise ImportRefused([RowError(None, None, N_("aucune ligne de données sous les noms de colonnes"))])
    errors: list[RowError] = []
    records: list[dict] = []
    first_seen: dict[tuple, int] = {}
    for number, raw in rows:
        if all(_blank(raw.get(c)) for c in fields if c not in key):
            continue
        record, ok = {}, True
        for column, (parse, required) in fields.items():
            value = raw.get(column)
            if _blank(value):
                if required:
                    errors.append(RowError(number, column, MISSING))
                    ok = False
                record[column] = None
                continue
            try:
                record[column] = parse(value)
            except CellError as exc:
                errors.append(RowError.of(number, column, exc))
                ok = False
        if not ok:
            continue
        k = tuple(record[c] for c in key)
        if k in first_seen:
            errors.append(
                RowError(
                    number,
                    key[0],
                    N_("ligne en double : %(key)s figure déjà ligne %(first)s"),
                    (("key", " ".join(map(str, k))), ("first", first_seen[k])),
                )
            )
            continue
        first_seen[k] = number
        records.append(record)
    if errors:
        raise ImportRefused(errors)
    return records


def validate_allocations(header: list[str], rows: list[tuple[int, dict]], services: Mapping[str, Any]) -> list[dict]:
    """Allocation records ``{service, year, budget_eur, fte, volume}`` of a file, or
    :class:`ImportRefused`; ``services`` holds the slugs of the services the file may
    name (every service from the command line, a director's scope from the pages).

    ``budget_eur``, ``fte`` and ``year`` are required; ``volume`` may be empty
    (unknown). A (service, year) pair may appear once.
    """
    fields = {
        "service": (_slug(services, "service"), True),
        "year": (parse_year, True),
        "budget_eur": (parse_euros, True),
        "fte": (parse_fte, True),
        "volume": (parse_count, False),
    }
    return _validate(header, rows, fields, ("service", "year"))


def validate_priorities(
    header: list[str], rows: list[tuple[int, dict]], policies: Mapping[str, Any], locked: Collection[str] = ()
) -> list[dict]:
    """Priority records ``{policy, priority, floor_eur, target_satisfied, deadline}``
    of a file, or :class:`ImportRefused`; ``policies`` holds the slugs of the policies
    the file may name, ``locked`` those a director sees but may not change.

    ``priority`` is required; a floor, a target or a deadline may be left empty. A
    policy may appear once.
    """
    fields = {
        "policy": (_slug(policies, "politique", locked), True),
        "priority": (parse_priority, True),
        "floor_eur": (parse_euros, False),
        "target_satisfied": (parse_share, False),
        "deadline": (parse_date, False),
    }
    return _validate(header, rows, fields, ("policy",))


# Writing -------------------------------------------------------------------------


def save_allocations(records: Iterable[Mapping], services: Mapping[str, int]) -> ImportReport:
    """Upsert allocation records (`validate_allocations`) on (service, year) in one
    transaction; ``services`` maps their slugs to ids."""
    records = list(records)
    ids = {services[r["service"]] for r in records}
    existing = {
        (a.service_id, a.year): a
        for a in db.session.execute(select(Allocation).where(Allocation.service_id.in_(ids))).scalars()
    }
    created = updated = unchanged = 0
    try:
        for r in records:
            key = (services[r["service"]], r["year"])
            values = (r["budget_eur"], r["fte"], r["volume"])
            row = existing.get(key)
            if row is None:
                row = Allocation(service_id=key[0], year=key[1])
                db.session.add(row)
                created += 1
            elif (row.budget_eur, row.staff_fte, row.volume) == values:
                unchanged += 1
                continue
            else:
                updated += 1
            row.budget_eur, row.staff_fte, row.volume = values
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ImportReport(created, updated, unchanged)


def save_priorities(records: Iterable[Mapping], policies: Mapping[str, int]) -> ImportReport:
    """Upsert priority records (`validate_priorities`) on the policy in one transaction;
    ``policies`` maps their slugs to ids."""
    records = list(records)
    ids = {policies[r["policy"]] for r in records}
    existing = {
        p.policy_id: p for p in db.session.execute(select(Priority).where(Priority.policy_id.in_(ids))).scalars()
    }
    created = updated = unchanged = 0
    try:
        for r in records:
            pid = policies[r["policy"]]
            values = (r["priority"], r["floor_eur"], r["target_satisfied"], r["deadline"])
            row = existing.get(pid)
            if row is None:
                row = Priority(policy_id=pid)
                db.session.add(row)
                created += 1
            elif (row.level, row.floor_eur, row.satisfaction_target, row.deadline) == values:
                unchanged += 1
                continue
            else:
                updated += 1
            row.level, row.floor_eur, row.satisfaction_target, row.deadline = values
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ImportReport(created, updated, unchanged)


def import_allocations(
    source, filename: str | None = None, *, services: Mapping[str, int] | None = None
) -> ImportReport:
    """Validate an allocations file whole, then upsert it on (service, year) in one
    transaction. ``services`` (slug → id) are those the file may name; every service
    when None."""
    header, rows = read_table(source, filename)
    if services is None:
        services = dict(db.session.execute(select(Service.slug, Service.id)).all())
    return save_allocations(validate_allocations(header, rows, services), services)


def import_priorities(
    source,
    filename: str | None = None,
    *,
    policies: Mapping[str, int] | None = None,
    locked: Collection[str] = (),
) -> ImportReport:
    """Validate a priorities file whole, then upsert it on the policy in one transaction.
    ``policies`` (slug → id) are those the file may change, every policy when None;
    ``locked``, those it may name only to be told why they cannot change."""
    header, rows = read_table(source, filename)
    if policies is None:
        policies = dict(db.session.execute(select(Policy.slug, Policy.id)).all())
    return save_priorities(validate_priorities(header, rows, policies, locked), policies)


# A director's scope -------------------------------------------------------------
# What the director's pages list and let change: the services of their organisation
# (every organisation's for an account attached to none), and the policies of those
# services. A policy's framework (`Priority`) is one for every organisation whose
# services carry it: a director attached to one organisation changes only the policies
# no other organisation shares.


def allocation_scope(user: User | None) -> dict[str, int]:
    """The services whose allocations a director may change: slug → id."""
    return {s.slug: s.id for s in services_in_scope(user)}


def _shared_policies(user: User | None) -> set[int]:
    if user is None or user.organisation_id is None:
        return set()
    return set(
        db.session.execute(
            select(Service.policy_id).where(Service.organisation_id != user.organisation_id).distinct()
        ).scalars()
    )


def priority_scope(user: User | None) -> tuple[dict[str, int], set[str]]:
    """The policies whose framework a director may change (slug → id), and those they
    see but may not change, shared with another organisation (slugs)."""
    shared = _shared_policies(user)
    editable: dict[str, int] = {}
    locked: set[str] = set()
    for s in services_in_scope(user):
        if s.policy_id in shared:
            locked.add(s.policy.slug)
        else:
            editable[s.policy.slug] = s.policy_id
    return editable, locked


@dataclass(frozen=True)
class BudgetLine:
    """A service on the budgets page: its allocation of the year shown (None if it has
    none) and the figures its form starts from (that allocation, or the one copied)."""

    service: Service
    allocation: Allocation | None
    start: Allocation | None

    @property
    def cost_per_user(self) -> Decimal | None:
        """The year's budget per unit of volume, when both are known."""
        a = self.allocation
        if a is None or not a.volume:
            return None
        return a.budget_eur / a.volume


def budget_lines(user: User | None, year: int) -> tuple[list[BudgetLine], int | None]:
    """Every service in scope with its allocation of ``year``, in catalogue order.

    When no service in scope has one (a year being prepared), each starts from its
    allocation of the latest earlier year that has any, returned as the second value
    (None otherwise): the finance officer adjusts last year's figures rather than
    typing them all again.
    """
    services = services_in_scope(user)
    ids = [s.id for s in services]
    stored = {
        a.service_id: a
        for a in db.session.execute(
            select(Allocation).where(Allocation.service_id.in_(ids), Allocation.year == year)
        ).scalars()
    }
    source = None
    start = stored
    if not stored and ids:
        source = db.session.execute(
            select(func.max(Allocation.year)).where(Allocation.service_id.in_(ids), Allocation.year < year)
        ).scalar()
        if source is not None:
            start = {
                a.service_id: a
                for a in db.session.execute(
                    select(Allocation).where(Allocation.service_id.in_(ids), Allocation.year == source)
                ).scalars()
            }
    return [BudgetLine(s, stored.get(s.id), start.get(s.id)) for s in services], source


@dataclass(frozen=True)
class PriorityLine:
    """A policy on the priorities page: its framework (None if it has none yet), and
    whether the director may change it."""

    policy: Policy
    priority: Priority | None
    editable: bool


def priority_lines(user: User | None) -> list[PriorityLine]:
    """The policies of the services in scope, in catalogue order, with their framework."""
    shared = _shared_policies(user)
    policies = list({s.policy_id: s.policy for s in services_in_scope(user)}.values())
    stored = {
        p.policy_id: p
        for p in db.session.execute(select(Priority).where(Priority.policy_id.in_([p.id for p in policies]))).scalars()
    }
    return [PriorityLine(p, stored.get(p.id), p.id not in shared) for p in policies]


def allocation_template(user: User | None, year: int) -> tuple[list[str], list[list]]:
    """The header and rows of a file to fill and import: every service in scope with
    the figures the budgets page shows for ``year``, and its name for the reader."""
    lines, _source = budget_lines(user, year)
    header = ["service", *INFO_COLUMNS, *ALLOCATION_COLUMNS[1:]]
    rows = [
        [
            line.service.slug,
            line.service.name,
            year,
            *(
                (line.start.budget_eur, line.start.staff_fte, line.start.volume)
                if line.start is not None
                else (None, None, None)
            ),
        ]
        for line in lines
    ]
    return header, rows


def priority_template(user: User | None) -> tuple[list[str], list[list]]:
    """The header and rows of a file to fill and import: every policy the director may
    change, with its framework and its name for the reader."""
    header = ["policy", *INFO_COLUMNS, *PRIORITY_COLUMNS[1:]]
    rows = []
    for line in priority_lines(user):
        if not line.editable:
            continue
        p = line.priority
        values = (p.level, p.floor_eur, p.satisfaction_target, p.deadline) if p else (None, None, None, None)
        rows.append([line.policy.slug, line.policy.name, *values])
    return header, rows
