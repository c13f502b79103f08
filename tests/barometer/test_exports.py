"""The service's anonymised responses as CSV and XLSX, and the report as a PDF: who may
download them, what they hold (one row per response, nothing finer than the month, no
identifier), and what they never do (run a formula, show markup, publish a small base)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from barometer.charts import svg_cache
from barometer.extensions import db
from barometer.models import Response
from barometer.reports.exports import CHOICE_SEPARATOR, MIN_EXPORTED_RESPONSES, RESPONSE_COLUMNS
from barometer.respond import services as respond_services
from tests.barometer.test_reports import (  # noqa: F401  (_fresh_caches: autouse fixture)
    ROLES,
    _fresh_caches,
    add_accounts,
    last_month_start,
    signed_in,
    store,
)
from tests.helpers import VALID

RESPONSE_URLS = [
    "/rapports/piscine/reponses.csv",
    "/rapports/piscine/reponses.xlsx",
    "/rapports/piscine/reponses.csv?comments=1",
    "/rapports/piscine/reponses.xlsx?comments=1&grain=quarter",
    "/rapports/piscine/reponses.csv?site=centre-aquatique",
]
PDF_URLS = ["/rapports/piscine/rapport.pdf", "/rapports/piscine/rapport.pdf?site=centre-aquatique"]
#: A comment a spreadsheet would run and a browser would read as markup.
HOSTILE = '=HYPERLINK("http://x.example","clic") <b>gras</b> <script>alert(1)</script>'


@pytest.fixture(autouse=True)
def _fresh_surveys():
    """A test before this module may leave a survey cached with ids of emptied tables
    (PostgreSQL does not reuse them)."""
    respond_services.clear_cache()


def in_last_month(days: int = 3) -> datetime:
    return datetime.combine(last_month_start(), datetime.min.time(), tzinfo=UTC) + timedelta(days=days, hours=13)


def csv_rows(answer, delimiter: str = ";") -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.data.decode("utf-8-sig")), delimiter=delimiter))


def sheet_rows(answer) -> list[list]:
    sheet = load_workbook(io.BytesIO(answer.data)).active
    return [[c.value for c in row] for row in sheet.iter_rows()]


def pdf_text(answer) -> str:
    reader = PdfReader(io.BytesIO(answer.data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


@pytest.fixture
def pool(surveys):
    """The pool with 40 responses last month (30 at its site) and 40 some months before;
    the four accounts."""
    add_accounts(surveys)
    store(surveys, "piscine", 30, answers=VALID, when=in_last_month(), site="centre-aquatique")
    store(surveys, "piscine", 10, answers={"overall": "3", "comment": HOSTILE}, when=in_last_month(5))
    store(surveys, "piscine", 40, when=datetime.now(UTC) - timedelta(days=200))
    return surveys


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("role", ROLES)
def test_each_export_url_answers_by_role_and_scope(pool, role):
    client = signed_in(pool, ROLES[role])
    expected = {"anonymous": 302, "manager A": 200, "manager B": 404, "director": 200, "admin": 200}[role]
    for url in RESPONSE_URLS + PDF_URLS:
        answer = client.get(url)
        assert answer.status_code == expected, f"{role}: GET {url} -> {answer.status_code}"
        if expected == 302:
            assert answer.location.startswith("/connexion")
        elif expected == 404:
            assert b"Piscine" not in answer.data and b"piscine" not in answer.data
        else:
            assert "attachment" in answer.headers["Content-Disposition"]
            assert answer.headers["Cache-Control"] == "no-store"


def test_an_unknown_site_or_format_is_not_found(pool):
    client = signed_in(pool, "a@example.fr")
    for url in (
        "/rapports/piscine/reponses.pdf",
        "/rapports/piscine/reponses.csv?site=inconnu",
        "/rapports/piscine/rapport.pdf?site=inconnu",
        "/rapports/inconnu/reponses.csv",
        "/rapports/inconnu/rapport.pdf",
    ):
        assert client.get(url).status_code == 404, url


# ------------------------------------------------------------------------ responses


def test_the_responses_export_has_one_row_per_response_and_no_identifier_or_hour(pool):
    client = signed_in(pool, "a@example.fr")
    answer = client.get("/rapports/piscine/reponses.csv")
    assert answer.mimetype == "text/csv" and answer.is_streamed
    assert re.fullmatch(
        r'attachment; filename="piscine-reponses-\d{8}-\d{8}\.csv"', answer.headers["Content-Disposition"]
    )
    header, *rows = csv_rows(answer)
    # The default range is the report's: the last twelve whole months, last month included.
    assert len(rows) == 80
    assert header[: len(RESPONSE_COLUMNS)] == list(RESPONSE_COLUMNS)
    assert {"overall", "courtesy", "clarity", "important_attributes", "water_cleanliness", "crowding_time"} <= set(
        header
    )
    assert not {"id", "response_id", "token", "submitted_at", "comment"} & set(header)
    month = f"{last_month_start():%Y-%m}"
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    full = [r for r in by_column if r["site"] == "centre-aquatique"]
    assert len(full) == 30 and all(r["month"] == month for r in full)
    first = full[0]
    assert (first["overall"], first["courtesy"], first["waiting_time"], first["clarity"]) == ("4", "5", "2", "na")
    assert first["important_attributes"] == CHOICE_SEPARATOR.join(["waiting_time", "ease"])
    assert (first["crowding"], first["crowding_time"], first["recommend"]) == ("1", "evening", "8")
    assert (first["age_band"], first["sex"], first["area"], first["frequency"]) == ("a30_44", "f", "nord", "regular")
    assert first["channel"] == "link" and first["service"] == "piscine" and first["version"] == "1"
    # Nothing finer than the month, and nothing that names a response.
    assert all(re.fullmatch(r"\d{4}-\d{2}", r["month"]) for r in by_column)
    body = answer.data.decode("utf-8-sig")
    assert not re.search(r"\d{1,2}:\d{2}", body)
    with pool.app_context():
        stored = db.session.execute(select(Response.id, Response.token)).all()
    assert len(stored) == 80
    assert not any(token in body for _, token in stored)

    book = sheet_rows(client.get("/rapports/piscine/reponses.xlsx"))
    assert book[0] == header  # the same keys, then their labels
    assert book[1][: len(RESPONSE_COLUMNS)][:2] == ["Service", "Mois de la réponse"]
    assert "Globalement, êtes-vous satisfait(e) de ce service ?" in book[1]
    assert len(book) == 2 + 80
    assert sorted(r[header.index("overall")] for r in book[2:]) == sorted(int(r["overall"]) for r in by_column)


def test_the_responses_export_follows_the_site_the_range_and_the_language(pool):
    client = signed_in(pool, "a@example.fr")
    _, *rows = csv_rows(client.get("/rapports/piscine/reponses.csv?site=centre-aquatique"))
    assert len(rows) == 30
    last = last_month_start()
    _, *rows = csv_rows(client.get(f"/rapports/piscine/reponses.csv?start={last.isoformat()}"))
    assert len(rows) == 40
    english = csv_rows(client.get("/rapports/piscine/reponses.csv?lang=en"), delimiter=",")
    assert english[0][:2] == ["service", "month"] and len(english) == 81
    labels = sheet_rows(client.get("/rapports/piscine/reponses.xlsx?lang=en"))[1]
    assert labels[1] == "Month of the response"


def test_comments_come_only_when_asked_masked_and_neutralised(pool):
    client = signed_in(pool, "a@example.fr")
    plain = client.get("/rapports/piscine/reponses.csv").data.decode("utf-8-sig")
    assert "HYPERLINK" not in plain and "Écrivez-moi" not in plain
    header, *rows = csv_rows(client.get("/rapports/piscine/reponses.csv?comments=1"))
    comments = [r[header.index("comment")] for r in rows if r[header.index("comment")]]
    assert len(comments) == 40
    # As stored: the e-mail address and the phone number were masked on submission.
    masked = next(c for c in comments if c.startswith("Écrivez-moi"))
    assert "marie.curie@example.fr" not in masked and "06 11 22 33 44" not in masked
    # A formula is text: the apostrophe makes a spreadsheet show it, never run it.
    assert ("'" + HOSTILE) in comments
    book = load_workbook(io.BytesIO(client.get("/rapports/piscine/reponses.xlsx?comments=1").data)).active
    column = book[1].index(next(c for c in book[1] if c.value == "comment"))
    cells = [row[column] for row in book.iter_rows(min_row=3) if row[column].value]
    hostile = [c for c in cells if "HYPERLINK" in c.value]
    assert len(hostile) == 10
    assert all(c.value == "'" + HOSTILE and c.data_type == "s" for c in hostile)


@pytest.mark.parametrize("text", ["=1+1", "+1+1", "-1+1", "@SUM(A1:A2)"])
def test_each_formula_start_is_neutralised_in_both_formats(surveys, text):
    add_accounts(surveys)
    store(surveys, "piscine", MIN_EXPORTED_RESPONSES, answers={"overall": "4", "comment": f"{text} !"})
    client = signed_in(surveys, "a@example.fr")
    header, *rows = csv_rows(client.get("/rapports/piscine/reponses.csv?comments=1"))
    assert {r[header.index("comment")] for r in rows} == {f"'{text} !"}
    book = sheet_rows(client.get("/rapports/piscine/reponses.xlsx?comments=1"))
    assert {r[book[0].index("comment")] for r in book[2:]} == {f"'{text} !"}


def test_a_selection_below_the_publication_threshold_exports_no_rows_but_says_why(surveys):
    add_accounts(surveys)
    store(surveys, "etat-civil", 12, answers={"overall": "4", "courtesy": "5", "comment": "Très bien"})
    store(surveys, "piscine", 40, when=in_last_month())
    store(surveys, "piscine", 20, when=in_last_month(), site="centre-aquatique")
    b = signed_in(surveys, "b@example.fr")
    for url in ("/rapports/etat-civil/reponses.csv", "/rapports/etat-civil/reponses.csv?comments=1"):
        rows = csv_rows(b.get(url))
        assert rows[0] == ["message"] and len(rows) == 2
        assert rows[1][0].startswith("Aucune réponse exportée : la sélection compte moins de 30 réponses.")
        assert "Très bien" not in rows[1][0]
    assert sheet_rows(b.get("/rapports/etat-civil/reponses.xlsx?comments=1")) == [["message"], [rows[1][0]]]
    # The rule holds for a site: the pool exports its 60 responses, its site's 20 none.
    a = signed_in(surveys, "a@example.fr")
    assert len(csv_rows(a.get("/rapports/piscine/reponses.csv"))) == 61
    assert csv_rows(a.get("/rapports/piscine/reponses.csv?site=centre-aquatique"))[0] == ["message"]


# ----------------------------------------------------------------------------- PDF


def test_the_pdf_is_the_report_with_its_numbers_and_its_comments_as_text(pool):
    client = signed_in(pool, "a@example.fr")
    answer = client.get("/rapports/piscine/rapport.pdf")
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF")
    assert re.fullmatch(
        r'attachment; filename="piscine-rapport-\d{8}-\d{8}\.pdf"', answer.headers["Content-Disposition"]
    )
    text = pdf_text(answer)
    assert "Piscine municipale" in text
    assert "Usagers satisfaits" in text and "IC 95 %" in text
    # Charts are drawn: their accessible name and description are not printed as text.
    assert "Les mêmes données figurent dans le tableau qui suit le graphique" not in text
    # The page's forms and links to other pages are not printed.
    assert "Afficher" not in text and "Se déconnecter" not in text and "Télécharger" not in text
    # The markup and the formula of a comment are printed as text.
    assert '=HYPERLINK("http://x.example","clic") <b>gras</b> <script>alert(1)</script>' in text
    assert re.search(r"Rapport édité le \d{1,2} \w+ \d{4}\.", text)
    # Only one page of comments is printed, and the PDF says where the others are.
    assert "l'export des réponses avec les commentaires les donne tous" in text
    pages = PdfReader(io.BytesIO(answer.data)).pages
    assert len(pages) >= 6  # each section starts a page


def test_the_pdf_of_a_site_and_in_english(pool):
    client = signed_in(pool, "a@example.fr")
    text = pdf_text(client.get("/rapports/piscine/rapport.pdf?site=centre-aquatique&lang=en"))
    assert "Centre aquatique" in text and "Satisfied users" in text


def test_the_pdf_of_a_service_with_12_responses_shows_no_percentage(surveys):
    add_accounts(surveys)
    store(surveys, "etat-civil", 12, answers={"overall": "4", "courtesy": "5", "comment": "Très bien"})
    text = pdf_text(signed_in(surveys, "b@example.fr").get("/rapports/etat-civil/rapport.pdf"))
    assert "État civil" in text and "non publié : moins de 30 réponses" in text
    # The only percentage is the confidence level the report explains.
    assert re.findall(r"\d+(?:[.,]\d+)?\s?%", text.replace("95 %", "")) == []


def test_the_pdf_fetches_the_apps_static_files_and_nothing_else(app):
    from barometer.reports.pdf import StaticFilesFetcher

    steering = app.blueprints["steering"].static_folder
    fetcher = StaticFilesFetcher("http://barometre.test/", {"/static": app.static_folder, "/pilotage/static": steering})
    css = fetcher("http://barometre.test/static/css/print.css")
    assert b"@page" in css.read() and css.content_type == "text/css"
    assert b".num" in fetcher("http://barometre.test/pilotage/static/steering.css").read()
    for url in (
        "http://barometre.test/static/../config.py",
        "http://barometre.test/static/%2e%2e/__init__.py",
        "http://barometre.test/pilotage/static/../views.py",
        "http://barometre.test/pilotage/static/%2e%2e/views.py",
        "http://barometre.test/pilotage/static/css/print.css",
        "http://barometre.test/pilotage/",
        "http://barometre.test/static/css/absent.css",
        "http://barometre.test/rapports/piscine",
        "http://ailleurs.example/static/css/print.css",
        "https://barometre.test/static/css/print.css",
        "file:///etc/passwd",
        "data:text/css,body{}",
    ):
        with pytest.raises(ValueError):
            fetcher(url)


def test_charts_drawn_after_a_pdf_are_still_svg_a_browser_draws(pool):
    """WeasyPrint touches ElementTree's global namespace registry on import; the page's
    charts, drawn after a PDF in the same process, keep their plain <svg> elements."""
    client = signed_in(pool, "a@example.fr")
    assert client.get("/rapports/piscine/rapport.pdf").status_code == 200
    svg_cache.clear()
    html = client.get("/rapports/piscine").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and "ns0:" not in html
