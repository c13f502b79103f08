"""Importing responses collected elsewhere: a file is checked whole, a bad row imports
nothing and is named with its column and reason, the same rows imported twice add
nothing, and the imported months reach the results read model."""

import csv
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from openpyxl import Workbook
from sqlalchemy import select

from barometer import history, results
from barometer.extensions import db
from barometer.history import HistoryInterrupted, HistoryRefused, import_responses
from barometer.models import Answer, Channel, Response, ResultPack, Service, Site, web_channel
from tests.helpers import count_rows

HEADER = [
    "service",
    "submitted_at",
    "site",
    "overall",
    "courtesy",
    "water_cleanliness",
    "crowding",
    "important_attributes",
    "recommend",
    "comment",
    "age_band",
    "sex",
    "area",
    "frequency",
]
GOOD = [
    HEADER,
    ["piscine", "2019-03-04 10:42", "bassin-nord", 4, 5, "na", "oui", "courtesy|water_cleanliness", 9, "", "a30_44"]
    + ["f", "nord", "regular"],
    ["piscine", "2019-03-12", "", 2, "", "", "", "", "", "Écrire à jean.dupont@example.fr", "", "", "", ""],
    ["piscine", "2019-04-01T08:05:00+02:00", "centre-aquatique", 5, 4, 5, "0", "", 10, "", "", "m", "", ""],
    ["mediatheque", "2019-04-20", "centrale", 3, "na", "", "", "courtesy;ease", "", "", "a60_74", "", "", ""],
]


def write(tmp_path, rows, suffix=".csv", *, delimiter=",", encoding="utf-8", name="reponses"):
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".xlsx":
        book = Workbook()
        for row in rows:
            book.active.append(row)
        book.save(path)
    else:
        with path.open("w", newline="", encoding=encoding) as f:
            csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def edited(rows, row, column, value):
    """A copy of `rows` with one cell changed (row 0 is the header)."""
    out = [list(r) for r in rows]
    out[row][rows[0].index(column)] = value
    return out


def without(rows, column):
    """A copy of `rows` without one column."""
    j = rows[0].index(column)
    return [r[:j] + r[j + 1 :] for r in rows]


def stored(app):
    """Each stored response as (service, site, submitted_at in UTC, channel, profile,
    {question: values}), in order of submission."""
    with app.app_context():
        responses = db.session.execute(
            select(Response, Service.slug, Site.code)
            .join(Service, Service.id == Response.service_id)
            .outerjoin(Site, Site.id == Response.site_id)
            .order_by(Response.submitted_at, Service.slug)
        ).all()
        out = []
        for response, slug, site in responses:
            answers = {}
            for a in db.session.execute(select(Answer).where(Answer.response_id == response.id)).scalars():
                value = a.value if a.value is not None else a.choice if a.choice is not None else a.text
                answers.setdefault(a.question_key, []).append(value)
            moment = response.submitted_at
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            profile = (response.age_band, response.sex, response.area, response.frequency)
            out.append((slug, site, moment, response.channel, profile, answers))
    return out


def imported(app, path, **options):
    with app.app_context():
        return import_responses(path, **options)


def refused(app, path) -> str:
    with app.app_context(), pytest.raises(HistoryRefused) as caught:
        import_responses(path)
    assert count_rows(app) == 0
    return str(caught.value)


EXPECTED = [
    (
        "piscine",
        "bassin-nord",
        datetime(2019, 3, 4, 10, tzinfo=UTC),  # kept to the hour, as the survey's
        Channel.imported,
        ("a30_44", "f", "nord", "regular"),
        {
            "overall": [4.0],
            "courtesy": [5.0],
            "water_cleanliness": ["na"],
            "crowding": [1.0],
            "important_attributes": ["courtesy", "water_cleanliness"],
            "recommend": [9.0],
        },
    ),
    (
        "piscine",
        None,
        datetime(2019, 3, 12, tzinfo=UTC),
        Channel.imported,
        (None, None, None, None),
        {"overall": [2.0], "comment": ["Écrire à [e-mail masqué]"]},
    ),
    (
        "piscine",
        "centre-aquatique",
        datetime(2019, 4, 1, 6, tzinfo=UTC),  # 08:05 at +02:00
        Channel.imported,
        (None, "m", None, None),
        {"overall": [5.0], "courtesy": [4.0], "water_cleanliness": [5.0], "crowding": [0.0], "recommend": [10.0]},
    ),
    (
        "mediatheque",
        "centrale",
        datetime(2019, 4, 20, tzinfo=UTC),
        Channel.imported,
        ("a60_74", None, None, None),
        {"overall": [3.0], "courtesy": ["na"], "important_attributes": ["courtesy", "ease"]},
    ),
]


# Good files --------------------------------------------------------------------------


def test_a_good_csv_imports_each_row_as_a_response(surveys, tmp_path):
    app = surveys
    report = imported(app, write(tmp_path, GOOD))
    assert (report.rows, report.imported, report.known) == (4, 4, 0)
    assert stored(app) == EXPECTED


def test_a_good_xlsx_imports_with_typed_cells(surveys, tmp_path):
    app = surveys
    rows = edited(GOOD, 1, "submitted_at", datetime(2019, 3, 4, 10, 42))  # a date cell, not text
    rows = edited(rows, 2, "submitted_at", date(2019, 3, 12))
    rows = edited(rows, 3, "crowding", 0)
    report = imported(app, write(tmp_path, rows, ".xlsx"))
    assert (report.rows, report.imported) == (4, 4)
    assert stored(app) == EXPECTED


def test_a_windows_csv_with_semicolons_and_decimal_commas_imports(surveys, tmp_path):
    app = surveys
    rows = edited(GOOD, 1, "overall", "4,0")
    rows = edited(rows, 2, "comment", "Très bien, merci à l'équipe")
    imported(app, write(tmp_path, rows, delimiter=";", encoding="cp1252"))
    responses = stored(app)
    assert responses[0][5]["overall"] == [4.0]
    assert responses[1][5]["comment"] == ["Très bien, merci à l'équipe"]


def test_a_channel_given_is_kept_and_an_import_is_no_web_channel(surveys, tmp_path):
    app = surveys
    rows = [[*GOOD[0], "channel"], [*GOOD[1], "qr"], [*GOOD[2], ""]]
    imported(app, write(tmp_path, rows))
    assert [r[3] for r in stored(app)] == [Channel.qr, Channel.imported]
    with app.app_context():
        assert db.session.execute(select(Response.channel).order_by(Response.id)).scalars().all() == [
            Channel.qr,
            Channel.imported,
        ]
    # A survey form claiming to come "by import" is taken as a link.
    assert web_channel("import") == Channel.link


def test_only_the_overall_column_is_required_of_the_questions(surveys, tmp_path):
    app = surveys
    rows = [["service", "submitted_at", "overall"], ["etat-civil", "2020-01-15", "5"]]
    imported(app, write(tmp_path, rows))
    assert stored(app) == [
        ("etat-civil", None, datetime(2020, 1, 15, tzinfo=UTC), Channel.imported, (None,) * 4, {"overall": [5.0]})
    ]


# The same rows twice -----------------------------------------------------------------


def test_the_same_file_imported_twice_adds_nothing(surveys, tmp_path):
    app = surveys
    path = write(tmp_path, GOOD)
    imported(app, path)
    again = imported(app, path)
    assert (again.rows, again.imported, again.known) == (4, 0, 4)
    assert stored(app) == EXPECTED
    # The same rows saved as XLSX are the same responses.
    assert imported(app, write(tmp_path, GOOD, ".xlsx")).imported == 0
    assert count_rows(app) == 4


def test_identical_rows_of_one_file_are_distinct_responses(surveys, tmp_path):
    # Two paper questionnaires of the same day may say the same thing.
    app = surveys
    rows = [["service", "submitted_at", "overall"], ["piscine", "2020-05-02", 5], ["piscine", "2020-05-02", 5]]
    assert imported(app, write(tmp_path, rows)).imported == 2
    assert imported(app, write(tmp_path, rows)).imported == 0
    assert count_rows(app) == 2


def test_an_interrupted_import_is_completed_by_running_it_again(surveys, tmp_path, monkeypatch):
    app = surveys
    path = write(tmp_path, GOOD)
    real = history.store_responses
    calls = []

    def failing_second_time(subs, **kwargs):
        calls.append(len(subs))
        if len(calls) == 2:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("INSERT", {}, Exception("disque plein"))
        return real(subs, **kwargs)

    monkeypatch.setattr(history, "store_responses", failing_second_time)
    with app.app_context(), pytest.raises(HistoryInterrupted) as caught:
        import_responses(path, batch=2)
    assert caught.value.imported == 2
    assert "Relancez la même commande" in str(caught.value)
    assert count_rows(app) == 2
    monkeypatch.setattr(history, "store_responses", real)
    report = imported(app, path, batch=2)
    assert (report.imported, report.known) == (2, 2)
    assert stored(app) == EXPECTED


def test_checking_only_writes_nothing(surveys, tmp_path):
    app = surveys
    report = imported(app, write(tmp_path, GOOD), check_only=True)
    assert (report.rows, report.imported, report.checked_only) == (4, 0, True)
    assert count_rows(app) == 0


# Bad files: nothing imported, the row, column and reason named -------------------------

FUTURE = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")

MALFORMED = {
    "missing service column": (without(GOOD, "service"), "ligne 1, colonne service : colonne manquante"),
    "missing submitted_at column": (
        without(GOOD, "submitted_at"),
        "ligne 1, colonne submitted_at : colonne manquante",
    ),
    "missing overall column": (without(GOOD, "overall"), "ligne 1, colonne overall : colonne manquante"),
    "unknown column": (
        [[*GOOD[0], "humeur"], *[[*r, ""] for r in GOOD[1:]]],
        "ligne 1, colonne humeur : colonne inconnue",
    ),
    "unknown service": (
        edited(GOOD, 3, "service", "patinoire"),
        "ligne 4, colonne service : service inconnu : « patinoire »",
    ),
    "unknown site": (
        edited(GOOD, 3, "site", "bassin-sud"),
        "ligne 4, colonne site : site inconnu du service piscine : « bassin-sud »",
    ),
    "site of another service": (
        edited(GOOD, 4, "site", "bassin-nord"),
        "ligne 5, colonne site : site inconnu du service mediatheque : « bassin-nord »",
    ),
    "value off the scale": (
        edited(GOOD, 3, "overall", 6),
        "ligne 4, colonne overall : valeur hors de l'échelle 1–5 : « 6 »",
    ),
    "nps off the scale": (
        edited(GOOD, 2, "recommend", 11),
        "ligne 3, colonne recommend : valeur hors de l'échelle 0–10",
    ),
    "not a number": (edited(GOOD, 3, "courtesy", "bien"), "ligne 4, colonne courtesy : valeur invalide : « bien »"),
    "unknown profile code": (edited(GOOD, 2, "age_band", "40"), "ligne 3, colonne age_band : code inconnu : « 40 »"),
    "unknown area": (edited(GOOD, 2, "area", "sud"), "ligne 3, colonne area : code inconnu : « sud »"),
    "question of another questionnaire": (
        edited(GOOD, 4, "water_cleanliness", 4),
        "ligne 5, colonne water_cleanliness : question absente du questionnaire du service mediatheque",
    ),
    "too many choices": (
        edited(GOOD, 2, "important_attributes", "courtesy|ease|clarity|outcome"),
        "ligne 3, colonne important_attributes : trop de choix (3 au plus)",
    ),
    "bad date": (
        edited(GOOD, 3, "submitted_at", "04/03/2019"),
        "ligne 4, colonne submitted_at : date invalide : « 04/03/2019 »",
    ),
    "impossible date": (edited(GOOD, 2, "submitted_at", "2019-02-30"), "ligne 3, colonne submitted_at : date invalide"),
    "date in the future": (
        edited(GOOD, 3, "submitted_at", FUTURE),
        "ligne 4, colonne submitted_at : date dans le futur",
    ),
    "empty date": (edited(GOOD, 3, "submitted_at", ""), "ligne 4, colonne submitted_at : valeur manquante"),
    "empty overall": (edited(GOOD, 3, "overall", ""), "ligne 4, colonne overall : valeur manquante"),
    "empty service": (edited(GOOD, 3, "service", ""), "ligne 4, colonne service : valeur manquante"),
    "unknown channel": (
        [[*GOOD[0], "channel"], *[[*r, "courrier" if i == 2 else ""] for i, r in enumerate(GOOD[1:], start=1)]],
        "ligne 3, colonne channel : canal inconnu : « courrier »",
    ),
}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_imports_nothing_and_names_the_row(surveys, tmp_path, case, suffix):
    rows, message = MALFORMED[case]
    assert message in refused(surveys, write(tmp_path, rows, suffix))


def test_every_error_is_listed_up_to_a_limit_then_counted(surveys, tmp_path):
    rows = [["service", "submitted_at", "overall"]] + [["piscine", "2020-01-01", 9]] * 25
    message = refused(surveys, write(tmp_path, rows))
    assert "ligne 2, colonne overall" in message and "ligne 21, colonne overall" in message
    assert "ligne 22," not in message
    assert "… et 5 autre(s) erreur(s)" in message


def test_a_file_without_rows_or_of_another_format_is_refused(surveys, tmp_path):
    assert "aucune ligne de données" in refused(surveys, write(tmp_path, [GOOD[0]]))
    assert "fichier vide" in refused(surveys, write(tmp_path, []))
    other = tmp_path / "reponses.ods"
    other.write_bytes(b"PK")
    assert "format non reconnu (.ods)" in refused(surveys, other)
    broken = tmp_path / "casse.xlsx"
    broken.write_bytes(b"pas un classeur")
    assert "classeur XLSX illisible" in refused(surveys, broken)


# The command ------------------------------------------------------------------------


def test_the_command_imports_then_refuses_a_bad_file_naming_the_row(surveys, tmp_path):
    runner = surveys.test_cli_runner()
    result = runner.invoke(args=["barometer", "import-responses", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "4 réponse(s) importée(s)." in result.output
    result = runner.invoke(args=["barometer", "import-responses", str(write(tmp_path, GOOD))])
    assert "0 réponse(s) importée(s), 4 déjà présente(s)" in result.output
    bad = write(tmp_path, edited(GOOD, 2, "overall", 0), name="mauvais")
    result = runner.invoke(args=["barometer", "import-responses", str(bad)])
    assert result.exit_code == 1
    assert "fichier refusé, rien n'a été importé" in result.output
    assert "ligne 3, colonne overall : valeur hors de l'échelle 1–5 : « 0 »" in result.output
    assert count_rows(surveys) == 4


# Trends ----------------------------------------------------------------------------


def test_imported_months_are_in_the_read_model(surveys, tmp_path):
    app = surveys
    imported(app, write(tmp_path, GOOD))
    with app.app_context():
        pool = db.session.execute(select(Service.id).where(Service.slug == "piscine")).scalar_one()
        cells = results.cells_frame([pool])
    responses = cells[cells["question_key"] == results.RESPONSES_KEY].groupby("period")["n"].sum()
    assert responses.to_dict() == {pd.Period("2019-03", "M"): 2, pd.Period("2019-04", "M"): 1}
    overall = cells[cells["question_key"] == "overall"].groupby("period")[["n", "total", "satisfied"]].sum()
    assert overall.loc[pd.Period("2019-03", "M")].tolist() == [2, 6.0, 1]
    # The months imported are packed for the pages' first reader, at their current version.
    with app.app_context():
        packed = {
            (str(month)[:7], kind): version
            for month, kind, version in db.session.execute(
                select(ResultPack.month, ResultPack.kind, ResultPack.version).where(ResultPack.service_id == pool)
            )
        }
        for month in (date(2019, 3, 1), date(2019, 4, 1)):
            version = results.range_versions([pool], month, month)[pool]
            for kind in ("overall", "cells", "moments"):
                assert packed[(month.isoformat()[:7], kind)] == version
    # As a rebuild from the stored answers would have them.
    with app.app_context(), db.engine.begin() as connection:
        results.rebuild_service(connection, pool)
    with app.app_context():
        rebuilt = results.cells_frame([pool])
    pd.testing.assert_frame_equal(rebuilt, cells)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_rows_are_numbered_as_the_spreadsheet_shows_them(surveys, tmp_path, suffix):
    # A blank row is skipped, not renumbered: the error names the row the user sees.
    rows = [GOOD[0], GOOD[1], [None] * len(GOOD[0]), edited(GOOD, 2, "overall", 9)[2]]
    assert "ligne 4, colonne overall" in refused(surveys, write(tmp_path, rows, suffix))
