"""The director's pages in a browser: axe-core on the overview, the scenarios and the
board, and a scenario run, saved and exported (XLSX and PDF)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from barometer.extensions import db
from barometer.models import Role, User
from barometer.steering.services import clear_cache
from tests.helpers import add_neighbour

pytestmark = pytest.mark.e2e

PASSWORD = "un mot de passe assez long"


@pytest.fixture
def short_demo(surveys):
    """A short demo, its director's password set."""
    clear_cache()
    result = surveys.test_cli_runner().invoke(args=["barometer", "demo", "--months", "2", "--per-month", "1500"])
    assert result.exit_code == 0, result.output
    with surveys.app_context():
        db.session.execute(select(User).where(User.email == "direction@demo.invalid")).scalar_one().set_password(
            PASSWORD
        )
        db.session.commit()
    return surveys


@pytest.fixture
def sign_in(signed_in):
    """Open a desktop browser signed in as ``email`` on the overview."""
    return lambda email: signed_in(email, PASSWORD, "/pilotage/", accept_downloads=True)


@pytest.fixture
def director(short_demo, sign_in):
    """A desktop browser signed in as the demo's director, on a short demo."""
    return sign_in("direction@demo.invalid")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_steering_pages_have_no_axe_violations(director, assert_no_axe_violations, live_server, lang):
    page = director
    for path, heading in (
        ("/pilotage/", {"fr": "Pilotage : vue d'ensemble", "en": "Steering: overview"}),
        ("/pilotage/tableau", {"fr": "Tableau de bord des indicateurs", "en": "Indicators board"}),
        ("/pilotage/scenarios", {"fr": "Scénarios budgétaires", "en": "Budget scenarios"}),
    ):
        page.goto(f"{live_server}{path}?lang={lang}")
        expect(page.locator("h1")).to_contain_text(heading[lang])
        assert_no_axe_violations(page, f"{path} ({lang})")
    # The scenario page with both solutions, then with the form's errors.
    page.fill("#saving", "8 %")
    page.fill("#reinvest", "25")
    page.click("#run")
    expect(page.locator("#summary-caption")).to_be_visible()
    assert_no_axe_violations(page, f"the scenario's two solutions ({lang})")
    page.fill("#saving", "beaucoup")
    page.click("#run")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_no_axe_violations(page, f"the scenario form with errors ({lang})")


def test_a_scenario_is_run_saved_and_exported(director, live_server, tmp_path):
    page = director
    page.goto(live_server + "/pilotage/scenarios")
    page.fill("#saving", "1 000 000")
    page.fill("#name", "Un million en moins")
    page.click("#save")
    expect(page.locator("h1")).to_have_text("Scénario « Un million en moins »")
    expect(page.locator("#summary-caption")).to_be_visible()
    with page.expect_download() as download:
        page.click("text=Exporter (XLSX)")
    path = tmp_path / "scenario.xlsx"
    download.value.save_as(path)
    from openpyxl import load_workbook

    summary = dict(load_workbook(path)["Synthèse"].iter_rows(values_only=True))
    assert summary["Économie (€)"] == pytest.approx(1_000_000)
    with page.expect_download() as download:
        page.click("text=Exporter (PDF)")
    assert download.value.suggested_filename.startswith("scenario-")
    path = tmp_path / "scenario.pdf"
    download.value.save_as(path)
    from pypdf import PdfReader

    assert path.read_bytes().startswith(b"%PDF-")
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(path).pages)
    assert "Scénario « Un million en moins »" in text and "économie : 1 000 000 €" in text
    assert "Se déconnecter" not in text and "Exporter" not in text
    page.goto(live_server + "/pilotage/scenarios")
    expect(page.locator("#saved-caption")).to_be_visible()
    expect(page.get_by_role("link", name="Un million en moins", exact=True)).to_be_visible()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_same_policy_across_organisations_has_no_axe_violations(
    short_demo, sign_in, assert_no_axe_violations, live_server, lang
):
    add_neighbour(short_demo, PASSWORD)
    with short_demo.app_context():
        admin = User(email="admin@partout.invalid", role=Role.admin)
        admin.set_password(PASSWORD)
        db.session.add(admin)
        db.session.commit()
    page = sign_in("admin@partout.invalid")
    page.goto(f"{live_server}/pilotage/?lang={lang}")
    expect(page.locator("#across-caption")).to_be_visible()
    expect(page.locator("#attributes-caption")).to_be_visible()
    assert_no_axe_violations(page, f"the overview of two organisations ({lang})")
