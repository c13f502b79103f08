"""The `flask barometer` commands: French help, a clear refusal before `flask db upgrade`,
and a demo that can be redone after an interruption."""

import re

import pytest
from sqlalchemy import select

from barometer import demo
from barometer.cli import barometer_cli
from barometer.extensions import db
from barometer.models import Allocation, Organisation, OrganisationKind, Response, Service, User
from barometer.storage import store_response
from tests.conftest import _make_app
from tests.helpers import count_rows, valid_submission

#: Each command's line in the group's French help.
SHORT_HELP = {
    "load-surveys": "Valide et charge les questionnaires et les services.",
    "demo": "Remplit la commune de démonstration.",
    "create-user": "Crée un compte du personnel ou change son mot de passe.",
    "is-empty": "Dit si la base est encore sans réponse (code de sortie).",
    "urls": "Affiche les adresses principales.",
    "import-allocations": "Importe les budgets, effectifs et volumes des services.",
    "import-priorities": "Importe le référentiel stratégique des politiques.",
    "rebuild-results": "Recalcule les résultats agrégés à partir des réponses.",
    "import-responses": "Importe des réponses recueillies ailleurs (historique).",
    "recommend": "Recommande, par service, de renforcer, réduire, maintenir ou surveiller.",
    "scenario": "Compare la réduction uniforme et la réduction stratégique.",
}
#: The start of each command's French help.
HELP = {
    "load-surveys": "Valide puis charge les définitions de questionnaires et de services du DOSSIER",
    "demo": "Remplit la commune de démonstration",
    "create-user": "Crée le compte du personnel EMAIL, ou change son mot de passe.",
    "is-empty": "Sort avec le code 0 si la base ne contient encore aucune réponse",
    "urls": "Affiche les adresses principales",
    "import-allocations": "Importe les allocations du FICHIER (CSV ou XLSX)",
    "import-priorities": "Importe le référentiel stratégique du FICHIER (CSV ou XLSX)",
    "rebuild-results": "Recalcule les résultats agrégés (les sommes par mois, site et profil",
    "import-responses": "Importe les réponses du FICHIER (CSV ou XLSX) recueillies ailleurs",
    "recommend": "Recommande pour chaque service de renforcer (besoins mal couverts), réduire",
    "scenario": "Compare deux façons d'économiser --saving sur les budgets de l'année",
}
#: Phrases of the English help the commands used to show.
ENGLISH = (
    "Show this message",
    "surveys, demo data and accounts",
    "Validate and load",
    "Fill the demo commune",
    "Create a staff account",
    "Exit 0 when",
    "Print the main URLs",
    "[default:",
)


def flat(text: str) -> str:
    """Help text with Click's line wrapping and indentation undone."""
    return " ".join(text.split())


def test_every_command_is_listed_with_french_help(runner):
    result = runner.invoke(args=["barometer", "--help"])
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert "Baromètre : questionnaires, données de démonstration et comptes." in output
    assert "Affiche cette aide et quitte." in output
    assert set(SHORT_HELP) == set(HELP) == set(barometer_cli.commands)
    for name, text in SHORT_HELP.items():
        assert f"{name} {text}" in output
    assert not [phrase for phrase in ENGLISH if phrase in output]


@pytest.mark.parametrize("name", sorted(HELP))
def test_command_help_is_french_for_the_command_and_each_option(runner, name):
    result = runner.invoke(args=["barometer", name, "--help"])
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert HELP[name] in output
    assert "Affiche cette aide et quitte." in output
    assert not [phrase for phrase in ENGLISH if phrase in output]
    for param in barometer_cli.commands[name].params:
        if param.param_type_name == "option":
            assert param.help and flat(param.help) in output, param.name
        else:  # arguments have no help of their own: the command's help names them
            assert param.metavar.strip("[]") in flat(HELP[name]), param.name


@pytest.fixture
def bare_runner(tmp_path):
    """A runner on an empty SQLite file, as before `flask db upgrade`."""
    path = tmp_path / "vide.sqlite3"
    path.touch()
    app = _make_app(f"sqlite:///{path}")
    yield app.test_cli_runner()
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ["load-surveys"],
        ["demo"],
        ["demo", "--remplacer"],
        ["create-user", "agent@example.org", "--password", "un-long-mot-de-passe"],
        ["is-empty"],
        ["urls"],
        ["import-allocations", "budgets.csv"],
        ["import-priorities", "priorites.csv"],
        ["rebuild-results"],
        ["import-responses", "reponses.csv"],
        ["recommend"],
        ["scenario", "--saving", "0.08"],
    ],
)
def test_commands_before_db_upgrade_say_to_run_it(bare_runner, args):
    result = bare_runner.invoke(args=["barometer", *args])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # not an SQLAlchemy error
    assert "n'a pas encore son schéma" in result.output
    assert "lancez d'abord `flask db upgrade` (ou `make run`" in result.output


def test_commands_before_the_last_migration_say_to_run_it(tmp_path):
    from flask_migrate import upgrade

    app = _make_app(f"sqlite:///{tmp_path / 'behind.sqlite3'}")
    with app.app_context():
        upgrade(revision="0001")  # an older release's schema
    result = app.test_cli_runner().invoke(args=["barometer", "load-surveys"])
    assert result.exit_code == 1 and "pas sa dernière version" in result.output
    with app.app_context():
        upgrade()
        db.engine.dispose()
    assert app.test_cli_runner().invoke(args=["barometer", "load-surveys"]).exit_code == 0


def test_commands_on_an_unreachable_database_say_so(tmp_path):
    app = _make_app(f"sqlite:///{tmp_path / 'absent' / 'base.sqlite3'}")
    result = app.test_cli_runner().invoke(args=["barometer", "is-empty"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "base de données injoignable" in result.output and "DATABASE_URL" in result.output


def test_an_interrupted_demo_keeps_budgets_and_accounts_and_names_the_way_out(app, runner, monkeypatch):
    stored_months = []
    store = demo.store_responses

    def store_one_month_then_interrupt(subs):
        if stored_months:
            raise KeyboardInterrupt
        stored_months.append(len(subs))
        return store(subs)

    monkeypatch.setattr(demo, "store_responses", store_one_month_then_interrupt)
    result = runner.invoke(args=["barometer", "demo", "--months", "3", "--per-month", "60"])
    assert result.exit_code == 130, result.output
    assert "Démonstration interrompue" in result.output
    assert "flask barometer demo --remplacer" in result.output
    assert count_rows(app, Response) == stored_months[0] > 0
    assert count_rows(app, Allocation) == 3 * count_rows(app, Service)
    assert count_rows(app, User) == 3
    assert "piscine@demo.invalid" in result.output  # the passwords were shown before the interruption

    # The default stays: a database with responses is refused, and the refusal says what to do.
    monkeypatch.undo()
    again = runner.invoke(args=["barometer", "demo", "--months", "2", "--per-month", "60"])
    assert again.exit_code == 1
    assert "déjà des réponses" in again.output and "--remplacer" in again.output
    assert count_rows(app, Response) == stored_months[0]


def test_demo_replace_redoes_an_interrupted_demo(surveys, runner):
    app = surveys
    with app.app_context():
        store_response(valid_submission(app, "piscine", "left-by-an-interrupted-demo", {"overall": "4"}))
    result = runner.invoke(args=["barometer", "demo", "--months", "2", "--per-month", "60", "--remplacer"])
    assert result.exit_code == 0, result.output
    assert "réponses supprimées de la commune de démonstration : 1" in result.output
    stored = int(re.search(r"(\d+) réponses enregistrées sur 2 mois", result.output).group(1))
    with app.app_context():
        tokens = set(db.session.execute(select(Response.token)).scalars())
    assert "left-by-an-interrupted-demo" not in tokens and len(tokens) == stored > 0


def test_demo_replace_refuses_a_database_with_other_organisations_responses(surveys, runner):
    app = surveys
    with app.app_context():
        piscine = db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one()
        other = Organisation(slug="autre-commune", name="Autre commune", kind=OrganisationKind.commune, areas=[])
        db.session.add(
            Service(
                slug="autre-accueil",
                name="Accueil",
                organisation=other,
                policy_id=piscine.policy_id,
                questionnaire_id=piscine.questionnaire_id,
            )
        )
        db.session.commit()
        store_response(valid_submission(app, "piscine", "left-by-an-interrupted-demo", {"overall": "4"}))
        store_response(valid_submission(app, "autre-accueil", "a-real-resident", {"overall": "4"}))
    result = runner.invoke(args=["barometer", "demo", "--months", "2", "--per-month", "60", "--remplacer"])
    assert result.exit_code == 1
    assert "réponses d'autres collectivités que la commune de démonstration" in result.output
    with app.app_context():
        assert db.session.execute(select(User)).first() is None  # no demo account created
        assert set(db.session.execute(select(Response.token)).scalars()) == {
            "left-by-an-interrupted-demo",
            "a-real-resident",
        }
        # Deleting the demo's responses touches no other organisation's.
        assert demo.delete_responses() == 1
        assert set(db.session.execute(select(Response.token)).scalars()) == {"a-real-resident"}
