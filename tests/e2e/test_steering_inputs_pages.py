"""The director's inputs in a browser: axe-core on the budgets and the strategic framework
pages (desktop and phone, with and without errors), a budget changed and seen on the
board, and a file refused then imported."""

from __future__ import annotations

import pytest
from babel.numbers import format_decimal
from playwright.sync_api import expect
from sqlalchemy import select

from barometer import demo
from barometer.extensions import db
from barometer.models import User
from barometer.steering.services import clear_cache
from tests.e2e.conftest import PHONE

pytestmark = pytest.mark.e2e

PASSWORD = "un mot de passe assez long"
LAST_YEAR = 2025
VIEWPORTS = {"desktop": {"viewport": {"width": 1280, "height": 900}}, "phone": PHONE}


@pytest.fixture
def sign_in(signed_in, surveys):
    """Open a browser signed in as the demo commune's director (two years of budgets,
    its framework, no responses), on a desktop or a phone."""
    clear_cache()
    with surveys.app_context():
        demo.add_budgets(seed=1, years=2, last_year=LAST_YEAR)
        demo.add_users()
        db.session.execute(select(User).where(User.email == "direction@demo.invalid")).scalar_one().set_password(
            PASSWORD
        )
        db.session.commit()
    yield lambda viewport="desktop": signed_in(
        "direction@demo.invalid", PASSWORD, "/pilotage/budgets", **VIEWPORTS[viewport]
    )
    clear_cache()


def bad_file(tmp_path):
    path = tmp_path / "budgets.csv"
    path.write_text(
        f"service;year;budget_eur;fte;volume\npiscine;{LAST_YEAR};-5;2;30\nmediatheque;{LAST_YEAR};1000;;30\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(("viewport", "lang"), [("desktop", "fr"), ("phone", "fr"), ("phone", "en")])
def test_the_input_pages_have_no_axe_violations(
    sign_in, assert_no_axe_violations, live_server, tmp_path, viewport, lang
):
    page = sign_in(viewport)
    budget = {"fr": "Budget (€) – Piscine municipale", "en": "Budget (€) – Piscine municipale"}[lang]
    # The budgets page, then with a field's error, then with a file refused.
    page.goto(f"{live_server}/pilotage/budgets?lang={lang}")
    expect(page.locator("h1")).to_contain_text({"fr": "Budgets des services", "en": "Service budgets"}[lang])
    assert_no_axe_violations(page, f"budgets ({viewport}, {lang})")
    page.get_by_label(budget, exact=True).fill("beaucoup")
    page.click("#save")
    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.get_by_label(budget, exact=True)).to_have_attribute("aria-invalid", "true")
    assert_no_axe_violations(page, f"budgets with an error ({viewport}, {lang})")
    page.set_input_files("#fichier-file", bad_file(tmp_path))
    page.click("#fichier-upload")
    expect(page.locator("#file-errors")).to_be_visible()
    assert_no_axe_violations(page, f"budgets with a file refused ({viewport}, {lang})")
    # The framework page, then with a field's error.
    page.goto(f"{live_server}/pilotage/priorites?lang={lang}")
    expect(page.locator("h1")).to_have_text({"fr": "Référentiel stratégique", "en": "Strategic framework"}[lang])
    assert_no_axe_violations(page, f"framework ({viewport}, {lang})")
    target = {"fr": "Cible (part de satisfaits, %) – ", "en": "Target (share satisfied, %) – "}[lang]
    page.get_by_label(target + "Piscines et centres aquatiques", exact=True).fill("120")
    page.click("#save")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_no_axe_violations(page, f"framework with an error ({viewport}, {lang})")


def test_a_budget_changed_in_the_browser_shows_on_the_board(sign_in, live_server):
    page = sign_in("desktop")
    field = page.get_by_label("Budget (€) – Piscine municipale", exact=True)
    field.fill("1 234 567")
    page.click("#save")
    expect(page.locator(".flash")).to_have_text("1 allocation enregistrée.")
    expect(field).to_have_value("1234567")
    page.goto(live_server + "/pilotage/tableau")
    row = page.locator("tr", has=page.get_by_role("rowheader", name="Service : Piscine municipale"))
    expect(row).to_contain_text(f"{format_decimal(1234567, '#,##0', locale='fr')}\xa0€")


def test_a_file_is_refused_whole_then_imported(sign_in, live_server, tmp_path):
    page = sign_in("desktop")
    before = page.get_by_label("Budget (€) – Piscine municipale", exact=True).input_value()
    page.set_input_files("#fichier-file", bad_file(tmp_path))
    page.click("#fichier-upload")
    errors = page.locator("#file-errors")
    expect(errors).to_contain_text("Fichier refusé : rien n'a été importé")
    expect(errors).to_contain_text("Ligne 2, colonne budget_eur : montant négatif : « -5 »")
    expect(errors).to_contain_text("Ligne 3, colonne fte : valeur manquante")
    expect(page.get_by_label("Budget (€) – Piscine municipale", exact=True)).to_have_value(before)
    good = tmp_path / "bon.csv"
    good.write_text(f"service;year;budget_eur;fte;volume\npiscine;{LAST_YEAR};987654;20;50000\n", encoding="utf-8")
    page.set_input_files("#fichier-file", good)
    page.click("#fichier-upload")
    expect(page.locator(".flash")).to_have_text("1 allocation enregistrée.")
    expect(page.get_by_label("Budget (€) – Piscine municipale", exact=True)).to_have_value("987654")
