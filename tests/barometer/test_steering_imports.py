"""Importing the director's inputs: a file is validated whole, a bad row imports nothing
and is named with its column and reason, a re-import updates without doubling."""

import csv
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from barometer.extensions import db
from barometer.models import Allocation, Policy, Priority, Service
from barometer.steering.imports import ImportRefused, import_allocations, import_priorities
from tests.helpers import count_rows

ALLOCATIONS = [
    ["service", "year", "budget_eur", "fte", "volume"],
    ["piscine", 2025, "1200000.50", "21.5", 85000],
    ["piscine", 2026, "1150000", "21", 83000],
    ["mediatheque", 2026, "640000", "12.2", ""],
]
PRIORITIES = [
    ["policy", "priority", "floor_eur", "target_satisfied", "deadline"],
    ["piscines", 3, "900000", "0.7", "2027-12-31"],
    ["lecture-publique", 2, "", "0.75", ""],
]


def write(tmp_path, rows, suffix=".csv", *, delimiter=",", name="fichier"):
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".xlsx":
        book = Workbook()
        for row in rows:
            book.active.append(row)
        book.save(path)
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def edited(rows, row, column, value):
    """A copy of `rows` with one cell changed (row 0 is the header)."""
    out = [list(r) for r in rows]
    out[row][rows[0].index(column) if isinstance(column, str) else column] = value
    return out


def allocations(app):
    with app.app_context():
        rows = db.session.execute(
            select(Service.slug, Allocation.year, Allocation.budget_eur, Allocation.staff_fte, Allocation.volume)
            .join(Service, Service.id == Allocation.service_id)
            .order_by(Service.slug, Allocation.year)
        ).all()
    return [tuple(r) for r in rows]


def priorities(app):
    with app.app_context():
        rows = db.session.execute(
            select(Policy.slug, Priority.level, Priority.floor_eur, Priority.satisfaction_target, Priority.deadline)
            .join(Policy, Policy.id == Priority.policy_id)
            .order_by(Policy.slug)
        ).all()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_good_allocations_file_imports_and_a_reimport_updates_without_doubling(surveys, tmp_path, suffix):
    app = surveys
    with app.app_context():
        report = import_allocations(write(tmp_path, ALLOCATIONS, suffix))
    assert (report.created, report.updated) == (3, 0)
    assert allocations(app) == [
        ("mediatheque", 2026, Decimal("640000.00"), Decimal("12.20"), None),
        ("piscine", 2025, Decimal("1200000.50"), Decimal("21.50"), 85000),
        ("piscine", 2026, Decimal("1150000.00"), Decimal("21.00"), 83000),
    ]
    # The same pool year with a new budget, and a new year: one update, one creation.
    again = [ALLOCATIONS[0], ["piscine", 2026, "1100000", "20", 80000], ["piscine", 2027, "1000000", "19", 79000]]
    with app.app_context():
        report = import_allocations(write(tmp_path, again, suffix, name="encore"))
    assert (report.created, report.updated) == (1, 1)
    assert count_rows(app, Allocation) == 4
    assert ("piscine", 2026, Decimal("1100000.00"), Decimal("20.00"), 80000) in allocations(app)
    assert ("piscine", 2025, Decimal("1200000.50"), Decimal("21.50"), 85000) in allocations(app)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_good_priorities_file_imports_and_a_reimport_updates_without_doubling(surveys, tmp_path, suffix):
    app = surveys
    with app.app_context():
        report = import_priorities(write(tmp_path, PRIORITIES, suffix))
    assert (report.created, report.updated) == (2, 0)
    assert priorities(app) == [
        ("lecture-publique", 2, None, 0.75, None),
        ("piscines", 3, Decimal("900000.00"), 0.7, date(2027, 12, 31)),
    ]
    with app.app_context():
        import_priorities(
            write(tmp_path, [PRIORITIES[0], ["piscines", 2, "950000", "0.8", "2028-06-30"]], suffix, name="b")
        )
    assert count_rows(app, Priority) == 2
    assert ("piscines", 2, Decimal("950000.00"), 0.8, date(2028, 6, 30)) in priorities(app)


def test_french_spreadsheet_csv_with_semicolons_decimal_commas_and_windows_encoding(surveys, tmp_path):
    app = surveys
    path = tmp_path / "budgets.csv"
    path.write_bytes("service;year;budget_eur;fte;volume\r\npiscine;2026;1 234 567,89;21,5;85000\r\n".encode("cp1252"))
    with app.app_context():
        import_allocations(path)
    assert allocations(app) == [("piscine", 2026, Decimal("1234567.89"), Decimal("21.50"), 85000)]


MALFORMED_ALLOCATIONS = [
    # (rows, the row, the column, words of the reason)
    ([r[:4] for r in ALLOCATIONS], 1, "volume", "colonne manquante"),
    ([[*ALLOCATIONS[0], "x"]] + [[*r, ""] for r in ALLOCATIONS[1:]], 1, "x", "colonne inconnue"),
    (edited(ALLOCATIONS, 2, "service", "piscine-olympique"), 3, "service", "service inconnu : « piscine-olympique »"),
    (edited(ALLOCATIONS, 3, "budget_eur", "-5000"), 4, "budget_eur", "montant négatif"),
    (edited(ALLOCATIONS, 1, "budget_eur", "beaucoup"), 2, "budget_eur", "valeur non numérique : « beaucoup »"),
    (edited(ALLOCATIONS, 2, "fte", "-1"), 3, "fte", "montant négatif"),
    (edited(ALLOCATIONS, 3, "volume", "-10"), 4, "volume", "valeur négative"),
    (edited(ALLOCATIONS, 3, "volume", "12,5"), 4, "volume", "nombre entier attendu"),
    (edited(ALLOCATIONS, 2, "year", "2025"), 3, "service", "ligne en double : piscine 2025 figure déjà ligne 2"),
    (edited(ALLOCATIONS, 1, "year", "l'an dernier"), 2, "year", "valeur non numérique"),
    (edited(ALLOCATIONS, 1, "budget_eur", ""), 2, "budget_eur", "valeur manquante"),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize(("rows", "row", "column", "reason"), MALFORMED_ALLOCATIONS)
def test_a_malformed_allocations_file_imports_nothing_and_names_the_row(
    surveys, runner, tmp_path, suffix, rows, row, column, reason
):
    app = surveys
    with app.app_context():
        import_allocations(write(tmp_path, [ALLOCATIONS[0], ["piscine", 2020, "1", "1", 1]], suffix, name="avant"))
    before = allocations(app)
    path = write(tmp_path, rows, suffix)
    with app.app_context(), pytest.raises(ImportRefused) as refused:
        import_allocations(path)
    assert [(e.row, e.column) for e in refused.value.errors] == [(row, column)]
    assert reason in refused.value.errors[0].reason
    assert allocations(app) == before
    # The command says the same, in French, and fails.
    result = runner.invoke(args=["barometer", "import-allocations", str(path)])
    assert result.exit_code == 1
    assert "fichier refusé, rien n'a été importé" in result.output
    assert f"ligne {row}, colonne {column} : " in result.output and reason in result.output
    assert allocations(app) == before


MALFORMED_PRIORITIES = [
    ([r[1:] for r in PRIORITIES], 1, "policy", "colonne manquante"),
    (edited(PRIORITIES, 1, "policy", "piscines-olympiques"), 2, "policy", "politique inconnue"),
    (edited(PRIORITIES, 2, "priority", "4"), 3, "priority", "priorité invalide : « 4 » (1 essentielle"),
    (edited(PRIORITIES, 2, "priority", "haute"), 3, "priority", "priorité invalide"),
    (edited(PRIORITIES, 1, "floor_eur", "-1"), 2, "floor_eur", "montant négatif"),
    (edited(PRIORITIES, 1, "floor_eur", "un million"), 2, "floor_eur", "valeur non numérique"),
    (
        edited(PRIORITIES, 1, "target_satisfied", "80"),
        2,
        "target_satisfied",
        "hors de l'intervalle 0–1 : « 80 » (80 % s'écrit 0,8)",
    ),
    (edited(PRIORITIES, 2, "target_satisfied", "-0.1"), 3, "target_satisfied", "hors de l'intervalle 0–1"),
    (
        edited(PRIORITIES, 1, "deadline", "31/12/2027"),
        2,
        "deadline",
        "date invalide : « 31/12/2027 » (format AAAA-MM-JJ",
    ),
    (edited(PRIORITIES, 1, "deadline", "2027-02-30"), 2, "deadline", "date invalide"),
    (edited(PRIORITIES, 2, "policy", "piscines"), 3, "policy", "ligne en double : piscines figure déjà ligne 2"),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize(("rows", "row", "column", "reason"), MALFORMED_PRIORITIES)
def test_a_malformed_priorities_file_imports_nothing_and_names_the_row(
    surveys, runner, tmp_path, suffix, rows, row, column, reason
):
    app = surveys
    with app.app_context():
        import_priorities(
            write(tmp_path, [PRIORITIES[0], ["voirie-eclairage", 1, "5", "0.5", ""]], suffix, name="avant")
        )
    before = priorities(app)
    path = write(tmp_path, rows, suffix)
    with app.app_context(), pytest.raises(ImportRefused) as refused:
        import_priorities(path)
    assert [(e.row, e.column) for e in refused.value.errors] == [(row, column)]
    assert reason in refused.value.errors[0].reason
    assert priorities(app) == before
    result = runner.invoke(args=["barometer", "import-priorities", str(path)])
    assert result.exit_code == 1
    assert f"ligne {row}, colonne {column} : " in result.output and reason in result.output
    assert priorities(app) == before


def test_every_bad_row_is_listed_and_good_rows_are_not_imported_either(surveys, tmp_path):
    app = surveys
    rows = ALLOCATIONS + [["inconnu", 2026, "1", "1", 1], ["piscine", 2024, "-1", "1", 1]]
    with app.app_context(), pytest.raises(ImportRefused) as refused:
        import_allocations(write(tmp_path, rows))
    assert [(e.row, e.column) for e in refused.value.errors] == [(5, "service"), (6, "budget_eur")]
    assert allocations(app) == []


def test_a_file_of_another_format_or_unreadable_is_refused_with_its_reason(surveys, tmp_path):
    app = surveys
    ods = tmp_path / "budgets.ods"
    ods.write_bytes(b"PK")
    broken = tmp_path / "budgets.xlsx"
    broken.write_bytes(b"not a workbook")
    with app.app_context():
        with pytest.raises(ImportRefused, match=r"format non reconnu \(\.ods\) : \.csv ou \.xlsx attendu"):
            import_allocations(ods)
        with pytest.raises(ImportRefused, match="classeur XLSX illisible"):
            import_allocations(broken)
        with pytest.raises(ImportRefused, match="lecture impossible"):
            import_allocations(tmp_path / "absent.csv")
        with pytest.raises(ImportRefused, match="aucune ligne de données"):
            import_allocations(write(tmp_path, ALLOCATIONS[:1]))


def test_import_commands_print_what_they_wrote(surveys, runner, tmp_path):
    result = runner.invoke(args=["barometer", "import-allocations", str(write(tmp_path, ALLOCATIONS, ".xlsx"))])
    assert result.exit_code == 0, result.output
    assert "3 allocation(s) créée(s), 0 mise(s) à jour." in result.output
    result = runner.invoke(args=["barometer", "import-priorities", str(write(tmp_path, PRIORITIES))])
    assert result.exit_code == 0, result.output
    assert "2 priorité(s) créée(s), 0 mise(s) à jour." in result.output


def test_a_name_column_is_ignored_and_a_row_without_figures_is_passed_over(surveys, tmp_path):
    """The templates the director's pages give carry each service's name, and a line for
    every service, figures or not."""
    app = surveys
    rows = [
        ["service", "name", "year", "budget_eur", "fte", "volume"],
        ["piscine", "=Piscine", 2026, "1000", "2", "30"],
        ["mediatheque", "Médiathèque", 2026, "", "", ""],
    ]
    with app.app_context():
        report = import_allocations(write(tmp_path, rows))
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    assert allocations(app) == [("piscine", 2026, Decimal("1000.00"), Decimal("2.00"), 30)]
    with app.app_context():
        report = import_allocations(write(tmp_path, rows, name="encore"))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert report.summary("allocation(s)") == "0 allocation(s) créée(s), 0 mise(s) à jour. 1 inchangée(s)."


def test_an_import_limited_to_some_services_refuses_the_others(surveys, tmp_path):
    app = surveys
    with app.app_context():
        services = dict(db.session.execute(select(Service.slug, Service.id).where(Service.slug == "piscine")).all())
        with pytest.raises(ImportRefused) as refused:
            import_allocations(write(tmp_path, ALLOCATIONS), services=services)
    assert [(e.row, e.column, e.reason) for e in refused.value.errors] == [
        (4, "service", "service inconnu : « mediatheque »")
    ]
    assert allocations(app) == []
