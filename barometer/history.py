"""Imported history: responses collected elsewhere (paper questionnaires typed in, a
previous tool's export), brought in so that a service's trends start before the
barometer did.

A file (CSV or XLSX) has one row per response: ``service`` (slug), ``submitted_at``
(ISO date or date and time), ``channel`` (optional, ``import`` by default), ``site``
(optional, a site code of the service), then one column per question key of the
service's questionnaire (its current version) and the profile columns, by code. A
column left out or a cell left empty is a question not answered; ``overall`` is
required, as on the survey. Every answer is judged by `QuestionnaireDef.clean`, the
survey's own rule, and stored by `storage.store_responses`, the survey's own writer:
comments are masked and times kept to the hour there, and the results read model is
updated in the same transaction.

The file is read twice, streaming, so that a million rows need no more memory than a
few thousand:

1. every row is checked; errors are named as `steering.imports` names them (row as a
   spreadsheet numbers it, the header being row 1, column and reason, in French), and
   with one error nothing is written. Only a checksum of the rows' cleaned values is
   kept.
2. the rows are cleaned again and stored in batches, each batch in its own
   transaction. Each response's token is a hash of the file's checksum, the row's
   ordinal and its cleaned values: the same rows imported again (the same file, or the
   same content saved as CSV rather than XLSX) give the same tokens, and a token
   already stored is skipped, so that a second import adds nothing.

Why not one transaction for the whole file: the read model's row of each service is
its writers' lock until commit, and SQLite has one writer at a time; a transaction of
several minutes would make residents' submissions wait, then fail. Pass 1 guarantees
that no row can be refused; what is left is the database failing, or the process
being stopped, in the middle of pass 2. Then the batches committed stay, and running
the same command on the same file again stores the rest, and only the rest (the
tokens say which).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from surveys.schema import (
    NOT_APPLICABLE,
    PROFILE_KEYS,
    Choice,
    Question,
    QuestionnaireDef,
    Text,
    choices_for,
    questionnaire_from_dict,
)

from .extensions import db
from .models import Channel, Questionnaire, Response, Service
from .results import pack_services
from .steering.imports import HEADER_ROW, MAX_LISTED, ImportRefused, RowError
from .storage import Submission, store_responses

__all__ = [
    "FIXED_COLUMNS",
    "REQUIRED_COLUMNS",
    "HistoryInterrupted",
    "HistoryRefused",
    "HistoryReport",
    "import_responses",
]

#: The columns that are not questions.
FIXED_COLUMNS = ("service", "submitted_at", "channel", "site")
#: Columns every file must have (``overall`` as on the survey).
REQUIRED_COLUMNS = ("service", "submitted_at", "overall")
#: What separates the codes of a multiple choice in one cell: "a|b" or "a;b".
MULTIPLE_SEPARATOR = re.compile(r"[|;]")
#: Responses per transaction in pass 2 (and per progress report).
BATCH = 5000
#: Tokens looked up in one `IN (...)`: SQLite before 3.32 allows 999 parameters.
_TOKENS_PER_SELECT = 900
#: Imported history older than this is a typing error (0224 for 2024), not history.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
TOKEN_PREFIX = "import-"
_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_WHOLE = re.compile(r"-?\d{1,3}(?:[.,]0*)?")
_CSV_SUFFIXES = (".csv", ".txt")
_XLSX_SUFFIXES = (".xlsx", ".xlsm")
#: Bytes read at a time when telling UTF-8 from Windows-1252.
_CHUNK = 1 << 20

Progress = Callable[[str, int, int | None], None]


class HistoryRefused(ImportRefused):
    """A file refused whole; ``errors`` lists the first problems found, ``total`` counts
    them all (a file wrong on every row of a million is not listed in full)."""

    def __init__(self, errors: Iterable[RowError], total: int | None = None):
        errors = tuple(errors)
        super().__init__(errors)
        self.total = len(errors) if total is None else total
        if self.total > len(errors[:MAX_LISTED]):
            shown = "\n".join(str(e) for e in errors[:MAX_LISTED])
            self.args = (f"{shown}\n… et {self.total - len(errors[:MAX_LISTED])} autre(s) erreur(s)",)

    def __str__(self) -> str:
        return self.args[0]


class HistoryInterrupted(RuntimeError):
    """Pass 2 stopped (the database failed, the file changed): ``imported`` responses
    were stored before, and the same import run again stores the rest."""

    def __init__(self, imported: int, reason: str):
        self.imported, self.reason = imported, reason
        super().__init__(
            f"import interrompu après {imported} réponse(s) importée(s) : {reason}\n"
            "Relancez la même commande sur le même fichier pour le terminer : les réponses "
            "déjà importées ne seront pas comptées deux fois."
        )


@dataclass(frozen=True)
class HistoryReport:
    """What an import read and wrote."""

    #: Data rows of the file.
    rows: int
    #: Responses stored by this import.
    imported: int
    #: Rows whose response an earlier import of the same rows had stored.
    known: int
    #: Only checked (nothing written).
    checked_only: bool = False

    def summary(self) -> str:
        """One French line."""
        if self.checked_only:
            return f"fichier valide : {self.rows} ligne(s) ; rien n'a été importé (vérification seule)."
        line = f"{self.imported} réponse(s) importée(s)"
        if self.known:
            line += f", {self.known} déjà présente(s) (import précédent des mêmes lignes)"
        return line + "."


# Reading -------------------------------------------------------------------------


def _file_rows(path: Path) -> Iterator[tuple[int, list]]:
    """Each row of the file, ``(row number, values)``, the header included, one at a
    time: rows as a spreadsheet numbers them (CSV records, XLSX sheet rows)."""
    suffix = path.suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        yield from _xlsx_rows(path)
    else:
        yield from _csv_rows(path)


def _csv_rows(path: Path) -> Iterator[tuple[int, list]]:
    # The same rules as `steering.imports.read_table`, without reading the file whole.
    encoding = _encoding(path)
    with path.open(encoding=encoding, errors="replace", newline="") as f:
        first = f.readline()
        delimiter = max((";", ",", "\t"), key=first.count)
        lines = _chain([first], f)
        yield from enumerate(csv.reader(lines, delimiter=delimiter), start=1)


def _chain(first: list[str], rest: Iterable[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when every byte of the file decodes as such,
    Windows-1252 otherwise (as spreadsheets of a French Windows save CSV)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list]]:
    from openpyxl import load_workbook

    try:
        # Read-only: the sheet is parsed as it is read, never held whole.
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError or its own errors
        raise HistoryRefused([RowError(None, None, "classeur XLSX illisible")]) from exc
    try:
        for number, values in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1):
            yield number, list(values)
    finally:
        book.close()


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _shown(raw) -> str:
    return f"« {str(raw).strip()} »"


# The services ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What a row of one service is judged and stored with."""

    slug: str
    service_id: int
    version_id: int
    questionnaire: QuestionnaireDef
    areas: tuple[Choice, ...]
    sites: Mapping[str, int]
    #: The questionnaire's questions by key.
    questions: Mapping[str, Question]


def _targets() -> dict[str, _Target]:
    """Every service by slug, with its questionnaire's current version."""
    services = db.session.execute(
        select(Service).options(
            selectinload(Service.organisation),
            selectinload(Service.sites),
            selectinload(Service.questionnaire).selectinload(Questionnaire.versions),
        )
    ).scalars()
    definitions: dict[int, QuestionnaireDef] = {}
    targets = {}
    for service in services:
        version = service.questionnaire.current
        if version.id not in definitions:
            definitions[version.id] = questionnaire_from_dict(version.definition)
        areas = tuple(Choice(code=a["code"], label=Text(**a["label"])) for a in service.organisation.areas or ())
        targets[service.slug] = _Target(
            slug=service.slug,
            service_id=service.id,
            version_id=version.id,
            questionnaire=definitions[version.id],
            areas=areas,
            sites={site.code: site.id for site in service.sites},
            questions={q.key: q for q in definitions[version.id].questions},
        )
    return targets


# Values --------------------------------------------------------------------------


def _moment(raw, now: datetime) -> datetime:
    """A submission time in UTC from an ISO date (midnight) or date and time; a time
    without an offset is taken as UTC, so that it stays in the month written (reports
    work by month in UTC)."""
    hint = "(AAAA-MM-JJ ou AAAA-MM-JJ HH:MM attendu)"
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    else:
        text = str(raw).strip()
        if not isinstance(raw, str) or not _ISO_MOMENT.fullmatch(text):
            raise ValueError(f"date invalide : {_shown(raw)} {hint}")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"date invalide : {_shown(raw)} {hint}") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now:
        raise ValueError(f"date dans le futur : {_shown(raw)}")
    if moment < EARLIEST:
        raise ValueError(f"date trop ancienne : {_shown(raw)} (avant {EARLIEST.year})")
    return moment


def _prepared(q: Question, raw) -> Any:
    """A cell as `QuestionnaireDef.clean` takes a form's value: numbers of a scale may
    come as 4.0 or "4,0" from a spreadsheet, the codes of a multiple choice are
    separated by | or ;, and "NA" is "na" (non concerné)."""
    if isinstance(raw, str):
        raw = raw.strip()
    if q.type in ("scale", "nps"):
        if isinstance(raw, str):
            if raw.lower() == NOT_APPLICABLE:
                return NOT_APPLICABLE
            if _WHOLE.fullmatch(raw):
                return int(float(raw.replace(",", ".")))
        return raw
    if q.type == "multiple":
        return [code.strip() for code in MULTIPLE_SEPARATOR.split(str(raw)) if code.strip()]
    if q.type in ("single", "text") and not isinstance(raw, str):
        # A code or a comment a spreadsheet took for a number.
        return str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
    return raw


def _reason(q: Question, code: str, params: Mapping, raw, areas: tuple[Choice, ...]) -> str:
    """The French words for an error of `QuestionnaireDef.clean`."""
    if code == "required":
        return "valeur manquante (réponse obligatoire, comme sur le questionnaire)"
    if code == "out_of_range":
        return f"valeur hors de l'échelle {params['low']}–{params['high']} : {_shown(raw)}"
    if code == "unknown_choice":
        if q.type == "yesno":
            return f"valeur inconnue : {_shown(raw)} (oui/non ou 1/0 attendu)"
        codes = ", ".join(c.code for c in choices_for(q, areas))
        return f"code inconnu : {_shown(raw)} (codes possibles : {codes})"
    if code == "too_long":
        return f"texte trop long ({params['max']} caractères au plus)"
    if code == "too_many":
        return f"trop de choix ({params['max']} au plus)"
    if q.type in ("scale", "nps"):
        extra = ", ou na pour non concerné" if q.not_applicable else ""
        return f"valeur invalide : {_shown(raw)} (nombre entier attendu{extra})"
    return f"valeur invalide : {_shown(raw)}"


# Rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """A row judged valid, as it will be stored."""

    target: _Target
    site_id: int | None
    site_code: str
    submitted_at: datetime
    channel: Channel
    answers: dict[str, Any]

    def canonical(self) -> bytes:
        """The row's cleaned values, written one way only: what its token and the
        file's checksum are computed from."""
        values = [
            self.target.slug,
            self.site_code,
            self.submitted_at.isoformat(),
            self.channel.value,
            sorted((k, list(v) if isinstance(v, tuple) else v) for k, v in self.answers.items()),
        ]
        return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


class _Judge:
    """Checks a file's header, then its rows one at a time."""

    def __init__(self, targets: Mapping[str, _Target], now: datetime):
        self.targets = targets
        self.now = now
        self.question_keys = {q.key for t in targets.values() for q in t.questionnaire.questions}
        self.header: list[str] = []
        self.unnamed = False

    def check_header(self, number: int, values: list) -> None:
        if number != HEADER_ROW:
            raise HistoryRefused([RowError(HEADER_ROW, None, "la première ligne doit nommer les colonnes")])
        header = ["" if v is None else str(v).strip().lower() for v in values]
        known = set(FIXED_COLUMNS) | self.question_keys | set(PROFILE_KEYS)
        errors, seen = [], set()
        for name in header:
            if not name:
                continue
            if name in seen:
                errors.append(RowError(HEADER_ROW, name, "colonne en double"))
            elif name not in known:
                errors.append(
                    RowError(
                        HEADER_ROW,
                        name,
                        "colonne inconnue (colonnes possibles : "
                        f"{', '.join(FIXED_COLUMNS)}, les clés des questions et {', '.join(PROFILE_KEYS)})",
                    )
                )
            seen.add(name)
        errors += [RowError(HEADER_ROW, c, "colonne manquante") for c in REQUIRED_COLUMNS if c not in seen]
        if errors:
            raise HistoryRefused(errors)
        self.header = header
        self.unnamed = "" in header

    def judge(self, number: int, values: list) -> tuple[_Row | None, list[RowError]]:
        """The row, or the errors that refuse it."""
        header = self.header
        if (len(values) > len(header) or self.unnamed) and any(
            not _blank(v) for j, v in enumerate(values) if j >= len(header) or not header[j]
        ):
            return None, [RowError(number, None, "valeur dans une colonne sans nom")]
        raw = {h: values[j] if j < len(values) else None for j, h in enumerate(header) if h}
        errors: list[RowError] = []

        target = None
        if _blank(raw.get("service")):
            errors.append(RowError(number, "service", "valeur manquante"))
        elif (target := self.targets.get(str(raw["service"]).strip())) is None:
            errors.append(RowError(number, "service", f"service inconnu : {_shown(raw['service'])}"))

        submitted_at = None
        if _blank(raw.get("submitted_at")):
            errors.append(RowError(number, "submitted_at", "valeur manquante"))
        else:
            try:
                submitted_at = _moment(raw["submitted_at"], self.now)
            except ValueError as exc:
                errors.append(RowError(number, "submitted_at", str(exc)))

        channel = Channel.imported
        if not _blank(raw.get("channel")):
            try:
                channel = Channel(str(raw["channel"]).strip().lower())
            except ValueError:
                names = ", ".join(c.value for c in Channel)
                errors.append(RowError(number, "channel", f"canal inconnu : {_shown(raw['channel'])} ({names})"))

        if target is None:
            return None, errors

        site_code, site_id = "", None
        if not _blank(raw.get("site")):
            site_code = str(raw["site"]).strip()
            site_id = target.sites.get(site_code)
            if site_id is None:
                sites = ", ".join(target.sites) or "aucun"
                errors.append(
                    RowError(
                        number,
                        "site",
                        f"site inconnu du service {target.slug} : {_shown(site_code)} (sites : {sites})",
                    )
                )

        questionnaire = target.questionnaire
        questions = target.questions
        given = {}
        for key, value in raw.items():
            if key in FIXED_COLUMNS or _blank(value):
                continue
            if key not in questions:
                errors.append(
                    RowError(number, key, f"question absente du questionnaire du service {target.slug} : laisser vide")
                )
                continue
            given[key] = _prepared(questions[key], value)
        answers, problems = questionnaire.clean(given, areas=target.areas)
        for key, (code, params) in problems.items():
            q = questions[key]
            errors.append(RowError(number, key, _reason(q, code, params, raw.get(key), target.areas)))
        if errors:
            return None, errors
        return _Row(
            target, site_id, site_code, submitted_at.replace(minute=0, second=0, microsecond=0), channel, answers
        ), []


def _judged_rows(path: Path, judge: _Judge) -> Iterator[tuple[int, list]]:
    """The file's data rows, after its header was checked."""
    rows = ((n, v) for n, v in _file_rows(path) if any(not _blank(x) for x in v))
    first = next(rows, None)
    if first is None:
        raise HistoryRefused([RowError(None, None, "fichier vide")])
    judge.check_header(*first)
    yield from rows


# The import ----------------------------------------------------------------------


def _token(checksum: bytes, ordinal: int, canonical: bytes) -> str:
    digest = hashlib.sha256(checksum + ordinal.to_bytes(8, "big") + canonical).hexdigest()
    return TOKEN_PREFIX + digest[:48]


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def import_responses(
    source: str | Path, *, check_only: bool = False, progress: Progress | None = None, batch: int = BATCH
) -> HistoryReport:
    """Check a file of responses whole, then store its rows as responses, in batches;
    see the module's docstring.

    Raises `HistoryRefused` (nothing written) when a row or the file is wrong, and
    `HistoryInterrupted` when the database fails part way (the batches before stay;
    the same import run again completes it). ``progress(stage, count, total)`` is
    called every ``batch`` rows: stage "checked" with the rows read by pass 1 (total
    None), then "stored" with the rows pass 2 has stored or found stored, of ``total``,
    then "packed" with the services whose months are packed (`results.pack_services`).
    """
    path = Path(source)
    if path.suffix.lower() not in _CSV_SUFFIXES + _XLSX_SUFFIXES:
        raise HistoryRefused(
            [RowError(None, None, f"format non reconnu ({path.suffix or 'sans extension'}) : .csv ou .xlsx attendu")]
        )
    try:
        stamp = _stamp(path)
    except OSError as exc:
        raise HistoryRefused([RowError(None, None, f"lecture impossible ({exc.strerror or exc})")]) from exc

    def report(stage: str, count: int, total: int | None = None) -> None:
        if progress is not None:
            progress(stage, count, total)

    # Pass 1: judge every row, keep only a checksum of what will be stored.
    targets = _targets()
    db.session.rollback()  # no transaction stays open while the file is read
    judge = _Judge(targets, datetime.now(UTC))
    checksum = hashlib.sha256()
    errors: list[RowError] = []
    total_errors = rows = 0
    for number, values in _judged_rows(path, judge):
        row, problems = judge.judge(number, values)
        rows += 1
        if problems:
            total_errors += len(problems)
            errors += problems[: max(0, MAX_LISTED - len(errors))]
        elif not total_errors:
            checksum.update(row.canonical() + b"\n")
        if rows % batch == 0:
            report("checked", rows)
    if total_errors:
        raise HistoryRefused(errors, total_errors)
    if not rows:
        raise HistoryRefused([RowError(None, None, "aucune ligne de données sous les noms de colonnes")])
    report("checked", rows)
    if check_only:
        return HistoryReport(rows=rows, imported=0, known=0, checked_only=True)

    # Pass 2: the same rows again, stored in batches; tokens already stored are skipped.
    digest = checksum.digest()
    imported = known = 0
    touched: set[int] = set()
    if _stamp(path) != stamp:
        raise HistoryInterrupted(0, "le fichier a changé depuis sa vérification")
    pending: list[tuple[str, _Row]] = []

    def flush() -> None:
        nonlocal imported, known
        stored = _tokens_stored([token for token, _ in pending])
        subs = [
            Submission(
                service_id=row.target.service_id,
                version_id=row.target.version_id,
                token=token,
                questionnaire=row.target.questionnaire,
                answers=row.answers,
                site_id=row.site_id,
                channel=row.channel,
                submitted_at=row.submitted_at,
            )
            for token, row in pending
            if token not in stored
        ]
        known += len(pending) - len(subs)
        touched.update(sub.service_id for sub in subs)
        if subs:
            imported += store_responses(subs, batch=len(subs))
        pending.clear()
        report("stored", imported + known, rows)

    try:
        for ordinal, (number, values) in enumerate(_judged_rows(path, judge), start=1):
            row, problems = judge.judge(number, values)
            if problems:
                raise HistoryInterrupted(
                    imported, f"ligne {number} refusée : le fichier a changé depuis sa vérification"
                )
            pending.append((_token(digest, ordinal, row.canonical()), row))
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    except SQLAlchemyError as exc:
        db.session.rollback()
        raise HistoryInterrupted(
            imported, f"la base de données a refusé l'écriture ({exc.__class__.__name__})"
        ) from exc
    except HistoryRefused as exc:
        raise HistoryInterrupted(imported, f"le fichier a changé depuis sa vérification ({exc})") from exc
    db.session.rollback()  # a last batch found stored leaves its lookup's transaction open
    # The months imported, packed for the pages' first reader (`results.pack_services`).
    for done, service_id in enumerate(sorted(touched), start=1):
        pack_services([service_id])
        report("packed", done, len(touched))
    return HistoryReport(rows=rows, imported=imported, known=known)


def _tokens_stored(tokens: list[str]) -> set[str]:
    """Those of `tokens` a response already has."""
    found: set[str] = set()
    for start in range(0, len(tokens), _TOKENS_PER_SELECT):
        chunk = tokens[start : start + _TOKENS_PER_SELECT]
        found.update(db.session.execute(select(Response.token).where(Response.token.in_(chunk))).scalars())
    return found
