"""The director's pages as PDFs: a saved scenario, a comparison of scenarios and the
indicators board. Who may download them, and that each holds the numbers of its page,
laid out for print (landscape A4, column headers on every page, no navigation or form),
with a scenario's name printed as the text it was typed."""

from __future__ import annotations

import io
import re

import pytest
from babel.numbers import format_decimal, format_percent
from pypdf import PdfReader

from barometer.extensions import db
from barometer.models import Scenario
from tests.barometer import test_steering
from tests.barometer.test_exports import pdf_text
from tests.barometer.test_steering import post_scenario, text_of

# The steering tests' demo, accounts and saved scenario, built again for this module.
steering_app = test_steering.steering_app
clients = test_steering.clients
recommendations = test_steering.recommendations
saved = test_steering.saved

#: A name a spreadsheet would run and a browser would read as markup.
HOSTILE = '=HYPERLINK("http://x.example","clic") <b>Budget</b> -8 %'
STATUSES = ("atteint", "en bonne voie", "en retard", "pas assez de données", "sans objectif")


def eur(value: float) -> str:
    """An amount as the pages write it, spaces as the PDF's extracted text gives them."""
    return " ".join(f"{format_decimal(value, '#,##0', locale='fr')} €".split())


def pct(value: float) -> str:
    return " ".join(format_percent(value, locale="fr").split())


def pdf_pages(answer) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(answer.data)).pages]


def assert_printed_page(answer, filename: str) -> str:
    """A PDF download, landscape, without the page's navigation, forms or links; its text."""
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF-")
    assert answer.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert answer.headers["Cache-Control"] == "no-store"
    box = PdfReader(io.BytesIO(answer.data)).pages[0].mediabox
    assert float(box.width) > float(box.height)  # A4 on its side
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (297, 210)
    text = pdf_text(answer)
    for words in ("Se déconnecter", "Vue d'ensemble", "Scénarios budgétaires", "Exporter", "Afficher", "Retour"):
        assert words not in text, words
    return text


@pytest.fixture(scope="module")
def hostile(clients):
    """A scenario of 1,000,000 € saved by the demo's director under a name that looks
    like a formula and holds markup: its id."""
    page = post_scenario(clients["director"], saving="1 000 000", reinvest="0", name=HOSTILE, save="1", run=None)
    assert page.status_code == 302, page.get_data(as_text=True)
    return int(page.location.rsplit("/", 1)[1])


def pdf_urls(saved, hostile):
    return [
        f"/pilotage/scenarios/{saved}.pdf",
        f"/pilotage/scenarios/comparer.pdf?id={saved}&id={hostile}",
        "/pilotage/tableau.pdf",
    ]


@pytest.mark.parametrize("index", range(3))
def test_only_directors_and_admins_download_each_pdf(clients, saved, hostile, index):
    url = pdf_urls(saved, hostile)[index]
    anonymous = clients["anonymous"].get(url)
    assert anonymous.status_code == 302 and anonymous.location.startswith("/connexion")
    refused = clients["manager"].get(url)
    assert refused.status_code == 403 and not refused.data.startswith(b"%PDF")
    assert not re.search(r"\d\s?%|€", text_of(refused))
    for role in ("director", "admin", "admin_everywhere"):
        answer = clients[role].get(url)
        assert answer.status_code == 200 and answer.data.startswith(b"%PDF-"), role
        assert answer.headers["Cache-Control"] == "no-store", role
    # Another organisation's director: its scenarios are not found; the board is its own (empty).
    elsewhere = clients["director_elsewhere"].get(url)
    if "scenarios" in url:
        assert elsewhere.status_code == 404 and not elsewhere.data.startswith(b"%PDF")
    else:
        assert elsewhere.status_code == 200
        text = pdf_text(elsewhere)
        assert "Aucune allocation" in text and "Conservatoire" not in text


def test_the_scenario_pdf_holds_its_numbers_and_its_name_as_typed(steering_app, clients, hostile):
    client = clients["director"]
    page = client.get(f"/pilotage/scenarios/{hostile}").get_data(as_text=True)
    assert f'href="/pilotage/scenarios/{hostile}.pdf"' in page
    text = assert_printed_page(client.get(f"/pilotage/scenarios/{hostile}.pdf"), f"scenario-{hostile}.pdf")
    with steering_app.app_context():
        doc = db.session.get(Scenario, hostile).result
    # The name, its markup and its formula shown as they were typed.
    assert f"Scénario « {HOSTILE} »" in text
    even, strategic = doc["solutions"]["even"], doc["solutions"]["strategic"]
    assert f"Budget {doc['year']} : {eur(doc['total_before'])} ; économie : {eur(1_000_000)}." in text
    assert f"Satisfaction actuelle : {pct(doc['satisfied_before'])} d'usagers satisfaits." in text
    assert f"Budget après {eur(even['total_after'])} {eur(strategic['total_after'])}" in text
    policy = strategic["policies"][0]
    assert policy["name"] in text and eur(policy["floor"]) in text and eur(policy["before"]) in text
    service = next(s for s in strategic["services"] if s["after"] < s["before"])
    assert service["name"] in text and eur(service["after"]) in text
    assert "Élasticité utilisée" in text


def test_the_scenario_pdf_prints_the_policies_table_with_its_headers_on_each_page(clients, saved):
    answer = clients["director"].get(f"/pilotage/scenarios/{saved}.pdf")
    pages = pdf_pages(answer)
    assert len(pages) >= 2
    # The policy table's column headers head every page its rows run over.
    with_rows = [p for p in pages if "Stratégique : satisfaits projetés" in p]
    assert len(with_rows) >= 2
    assert all("Politique Plancher Avant" in p for p in with_rows)
    assert "sous le plancher" in pdf_text(answer)  # 8 % of everything breaks the essential floors


def test_the_comparison_pdf_puts_the_scenarios_side_by_side(steering_app, clients, saved, hostile):
    client = clients["director"]
    url = f"/pilotage/scenarios/comparer.pdf?id={saved}&id={hostile}"
    assert f'href="{url.replace("&", "&amp;")}"' in client.get(url.replace(".pdf", "")).get_data(as_text=True)
    text = assert_printed_page(client.get(url), "scenarios-comparaison.pdf")
    with steering_app.app_context():
        docs = [db.session.get(Scenario, i).result for i in (saved, hostile)]
    assert "Budget -8 %" in text
    # The name heads a narrow column, where it may wrap (after "http://" here).
    assert HOSTILE.replace(" ", "") in text.replace(" ", "")
    assert f"Économie {eur(docs[0]['saving'])} {eur(docs[1]['saving'])}" in text
    assert re.search(r"Comparaison éditée le \d{1,2} \w+ \d{4}\.", text)
    # Nothing to compare: back to the scenarios, as the page does.
    empty = client.get("/pilotage/scenarios/comparer.pdf")
    assert empty.status_code == 302 and empty.location.endswith("/pilotage/scenarios")


def test_the_board_pdf_gives_the_boards_statuses_and_numbers_on_every_page(clients, recommendations):
    client = clients["director"]
    page = client.get("/pilotage/tableau")
    year = re.search(r"Tableau de bord des indicateurs (\d{4})", text_of(page)).group(1)
    assert f'href="/pilotage/tableau.pdf?annee={year}"' in page.get_data(as_text=True)
    answer = client.get(f"/pilotage/tableau.pdf?annee={year}")
    text = assert_printed_page(answer, f"tableau-de-bord-{year}.pdf")
    assert f"Tableau de bord des indicateurs {year}" in text
    assert re.search(r"Tableau édité le \d{1,2} \w+ \d{4}\.", text)
    # The statuses the page's table shows (after its caption, not in the legend above it).
    table = text_of(page).split("allocation, échéance et statut")[-1]
    shown = {s for s in STATUSES if f" {s} " in table.replace("\xa0", " ")}
    assert {"atteint", "en retard", "pas assez de données"} <= shown
    printed = text.split("allocation, échéance et statut")[-1]
    assert {s for s in STATUSES if f" {s} " in printed} == shown
    # The under-served service: its share satisfied, its target, late; its level printed.
    row = text[text.index("Service : Service urbanisme") :][:200]
    assert pct(recommendations["urbanisme"]["evidence"]["satisfied"]) in row and "70 %" in row
    assert "en retard" in row
    assert "pas assez de données" in text[text.index("Service : Cimetière") :][:200]
    pages = pdf_pages(answer)
    assert len(pages) >= 2
    assert all("Domaine, politique, service Objectif Satisfaits (IC 95 %)" in p for p in pages[1:])


def test_the_board_pdf_follows_the_year_and_the_language(clients):
    client = clients["director"]
    years = re.findall(r'<option value="(\d{4})"', client.get("/pilotage/tableau").get_data(as_text=True))
    assert len(years) >= 2
    earliest = min(years)
    text = pdf_text(client.get(f"/pilotage/tableau.pdf?annee={earliest}"))
    assert f"Tableau de bord des indicateurs {earliest}" in text
    english = client.get("/pilotage/tableau.pdf?lang=en")
    assert "Indicators board" in pdf_text(english) and "Tableau de bord" not in pdf_text(english)
