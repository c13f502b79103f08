"""Imports of the director's inputs: allocations per service and year, priorities per policy.

A file (CSV or XLSX) is validated whole before anything is written: with one bad row
nothing is imported, and each error names its row as a spreadsheet numbers it (the
header is row 1), its column and the reason, in French, since the finance officer who
prepared the file reads them. A re-import updates the rows it names, on (service, year)
for allocations and on the policy for priorities, and leaves the others as they were.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from analysis.redeploy import PRIORITY_LABELS

from ..extensions import db
from ..models import Allocation, Policy, Priority, Service

__all__ = [
    "ALLOCATION_COLUMNS",
    "PRIORITY_COLUMNS",
    "ImportRefused",
    "ImportReport",
    "RowError",
    "import_allocations",
    "import_priorities",
    "read_table",
    "validate_allocations",
    "validate_priorities",
]

#: The columns of an allocations file, in the order a template lists them.
ALLOCATION_COLUMNS = ("service", "year", "budget_eur", "fte", "volume")
#: The columns of a priorities file.
PRIORITY_COLUMNS = ("policy", "priority", "floor_eur", "target_satisfied", "deadline")

#: Errors listed in full before the rest are only counted: a file with a wrong column
#: order would otherwise print one line per row.
MAX_LISTED = 20
HEADER_ROW = 1
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class RowError:
    """What is wrong in a file: its row (None for the file itself), column and why."""

    row: int | None
    column: str | None
    reason: str

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

    def summary(self, noun: str) -> str:
        """One French line; ``noun`` is feminine, as "allocation(s)" and "priorité(s)" are."""
        return f"{self.created} {noun} créée(s), {self.updated} mise(s) à jour."


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
        raise ImportRefused(
            [RowError(None, None, f"format non reconnu ({suffix or 'sans extension'}) : .csv ou .xlsx attendu")]
        )
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
    except OSError as exc:
        raise ImportRefused([RowError(None, None, f"lecture impossible ({exc.strerror or exc})")]) from exc
    rows = _xlsx_rows(data) if suffix in (".xlsx", ".xlsm") else _csv_rows(data)
    rows = [(i, r) for i, r in enumerate(rows, start=1) if any(not _blank(v) for v in r)]
    if not rows:
        raise ImportRefused([RowError(None, None, "fichier vide")])
    if rows[0][0] != HEADER_ROW:
        raise ImportRefused([RowError(HEADER_ROW, None, "la première ligne doit nommer les colonnes")])
    header = ["" if v is None else str(v).strip().lower() for v in rows[0][1]]
    body = []
    for number, values in rows[1:]:
        body.append((number, {h: values[j] if j < len(values) else None for j, h in enumerate(header) if h}))
        extra = [v for j, v in enumerate(values) if (j >= len(header) or not header[j]) and not _blank(v)]
        if extra:
            raise ImportRefused([RowError(number, None, "valeur dans une colonne sans nom")])
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
        raise ImportRefused([RowError(None, None, "classeur XLSX illisible")]) from exc
    try:
        return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# Values --------------------------------------------------------------------------


def _shown(raw) -> str:
    return f"« {str(raw).strip()} »"


def _decimal(raw) -> Decimal:
    if isinstance(raw, bool):
        raise ValueError(f"valeur non numérique : {_shown(raw)}")
    if isinstance(raw, (int, float)):
        value = Decimal(str(raw))
    else:
        text = str(raw).strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
        if "," in text and "." in text:
            raise ValueError(f"nombre ambigu : {_shown(raw)} (écrire 1234,56 ou 1234.56, sans séparateur de milliers)")
        try:
            value = Decimal(text.replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"valeur non numérique : {_shown(raw)}") from None
    if not value.is_finite():
        raise ValueError(f"valeur non numérique : {_shown(raw)}")
    return value


def _amount(limit: Decimal) -> Callable[[Any], Decimal]:
    def parse(raw) -> Decimal:
        value = _decimal(raw)
        if value < 0:
            raise ValueError(f"montant négatif : {_shown(raw)}")
        if value >= limit:
            raise ValueError(f"montant trop grand : {_shown(raw)}")
        return value.quantize(_CENT, rounding=ROUND_HALF_UP)

    return parse


def _whole(raw) -> int:
    value = _decimal(raw)
    if value != value.to_integral_value():
        raise ValueError(f"nombre entier attendu : {_shown(raw)}")
    return int(value)


def _count(raw) -> int:
    value = _whole(raw)
    if value < 0:
        raise ValueError(f"valeur négative : {_shown(raw)}")
    return value


def _year(raw) -> int:
    value = _whole(raw)
    if not 1900 <= value <= 2200:
        raise ValueError(f"année invalide : {_shown(raw)}")
    return value


def _priority(raw) -> int:
    try:
        value = _whole(raw)
    except ValueError:
        value = None
    if value not in PRIORITY_LABELS:
        levels = ", ".join(f"{k} {v}" for k, v in PRIORITY_LABELS.items())
        raise ValueError(f"priorité invalide : {_shown(raw)} ({levels})")
    return value


def _share(raw) -> float:
    value = _decimal(raw)
    if not 0 <= value <= 1:
        hint = f" ({_fr(value)} % s'écrit {_fr(value / 100)})" if 1 < value <= 100 else ""
        raise ValueError(f"part hors de l'intervalle 0–1 : {_shown(raw)}{hint}")
    return float(value)


def _fr(value: Decimal) -> str:
    return f"{value.normalize():f}".replace(".", ",")


def _date(raw) -> date:
    if isinstance(raw, datetime):
        if raw.time() != datetime.min.time():
            raise ValueError(f"date invalide : {_shown(raw)} (format AAAA-MM-JJ attendu)")
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date invalide : {_shown(raw)} (format AAAA-MM-JJ attendu)") from None


def _slug(known: Mapping[str, Any], noun: str) -> Callable[[Any], str]:
    def parse(raw) -> str:
        slug = str(raw).strip()
        if slug not in known:
            raise ValueError(f"{noun} inconnu{'e' if noun == 'politique' else ''} : {_shown(raw)}")
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
            errors.append(RowError(HEADER_ROW, name, "colonne en double"))
        elif name not in expected:
            errors.append(RowError(HEADER_ROW, name, f"colonne inconnue (colonnes attendues : {', '.join(expected)})"))
        seen.add(name)
    errors += [RowError(HEADER_ROW, c, "colonne manquante") for c in expected if c not in seen]
    if errors:
        raise ImportRefused(errors)


def _validate(
    header: list[str],
    rows: list[tuple[int, dict]],
    fields: dict[str, tuple[Callable[[Any], Any], bool]],
    key: tuple[str, ...],
) -> list[dict]:
    """Parse every cell of every row; refuse the whole file on the first error found
    after all rows were read (so that every error is listed at once)."""
    _check_header(header, tuple(fields))
    if not rows:
        raise ImportRefused([RowError(None, None, "aucune ligne de données sous les noms de colonnes")])
    errors: list[RowError] = []
    records: list[dict] = []
    first_seen: dict[tuple, int] = {}
    for number, raw in rows:
        record, ok = {}, True
        for column, (parse, required) in fields.items():
            value = raw.get(column)
            if _blank(value):
                if required:
                    errors.append(RowError(number, column, "valeur manquante"))
                    ok = False
                record[column] = None
                continue
            try:
                record[column] = parse(value)
            except ValueError as exc:
                errors.append(RowError(number, column, str(exc)))
                ok = False
        if not ok:
            continue
        k = tuple(record[c] for c in key)
        if k in first_seen:
            errors.append(
                RowError(number, key[0], f"ligne en double : {' '.join(map(str, k))} figure déjà ligne {first_seen[k]}")
            )
            continue
        first_seen[k] = number
        records.append(record)
    if errors:
        raise ImportRefused(errors)
    return records


def validate_allocations(header: list[str], rows: list[tuple[int, dict]], services: Mapping[str, Any]) -> list[dict]:
    """Allocation records ``{service, year, budget_eur, fte, volume}`` of a file, or
    :class:`ImportRefused`; ``services`` holds the known service slugs.

    ``budget_eur``, ``fte`` and ``year`` are required; ``volume`` may be empty
    (unknown). A (service, year) pair may appear once.
    """
    fields = {
        "service": (_slug(services, "service"), True),
        "year": (_year, True),
        "budget_eur": (_amount(Decimal("1e12")), True),
        "fte": (_amount(Decimal("1e6")), True),
        "volume": (_count, False),
    }
    return _validate(header, rows, fields, ("service", "year"))


def validate_priorities(header: list[str], rows: list[tuple[int, dict]], policies: Mapping[str, Any]) -> list[dict]:
    """Priority records ``{policy, priority, floor_eur, target_satisfied, deadline}``
    of a file, or :class:`ImportRefused`; ``policies`` holds the known policy slugs.

    ``priority`` is required; a floor, a target or a deadline may be left empty. A
    policy may appear once.
    """
    fields = {
        "policy": (_slug(policies, "politique"), True),
        "priority": (_priority, True),
        "floor_eur": (_amount(Decimal("1e12")), False),
        "target_satisfied": (_share, False),
        "deadline": (_date, False),
    }
    return _validate(header, rows, fields, ("policy",))


# Writing -------------------------------------------------------------------------


def import_allocations(source, filename: str | None = None) -> ImportReport:
    """Validate an allocations file whole, then upsert it on (service, year) in one
    transaction."""
    header, rows = read_table(source, filename)
    services = dict(db.session.execute(select(Service.slug, Service.id)).all())
    records = validate_allocations(header, rows, services)
    ids = {services[r["service"]] for r in records}
    existing = {
        (a.service_id, a.year): a
        for a in db.session.execute(select(Allocation).where(Allocation.service_id.in_(ids))).scalars()
    }
    created = updated = 0
    try:
        for r in records:
            key = (services[r["service"]], r["year"])
            row = existing.get(key)
            if row is None:
                row = Allocation(service_id=key[0], year=key[1])
                db.session.add(row)
                created += 1
            else:
                updated += 1
            row.budget_eur, row.staff_fte, row.volume = r["budget_eur"], r["fte"], r["volume"]
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ImportReport(created, updated)


def import_priorities(source, filename: str | None = None) -> ImportReport:
    """Validate a priorities file whole, then upsert it on the policy in one transaction."""
    header, rows = read_table(source, filename)
    policies = dict(db.session.execute(select(Policy.slug, Policy.id)).all())
    records = validate_priorities(header, rows, policies)
    ids = {policies[r["policy"]] for r in records}
    existing = {
        p.policy_id: p for p in db.session.execute(select(Priority).where(Priority.policy_id.in_(ids))).scalars()
    }
    created = updated = 0
    try:
        for r in records:
            pid = policies[r["policy"]]
            row = existing.get(pid)
            if row is None:
                row = Priority(policy_id=pid)
                db.session.add(row)
                created += 1
            else:
                updated += 1
            row.level, row.floor_eur = r["priority"], r["floor_eur"]
            row.satisfaction_target, row.deadline = r["target_satisfied"], r["deadline"]
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ImportReport(created, updated)
