"""Loading definitions: upsert, versions on change after responses, all-or-nothing."""

import pytest
from sqlalchemy import func, select

from barometer.extensions import db
from barometer.loader import load_surveys
from barometer.models import (
    Domain,
    Policy,
    PopulationMargin,
    Questionnaire,
    QuestionnaireVersion,
    Response,
    Service,
    Site,
)
from surveys.schema import DefinitionError
from tests.helpers import edit_yaml, question_of


def n(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def reword_courtesy(root, text):
    edit_yaml(root / "questionnaires" / "core.yaml", lambda d: question_of(d, "courtesy")["label"].update(fr=text))


def answer_once(client, slug):
    from tests.helpers import open_form

    _, tokens = open_form(client, f"/s/{slug}")
    assert client.post(f"/s/{slug}", data={"overall": "4", "courtesy": "5", **tokens}).status_code == 200


def test_load_creates_everything_once(app, tree):
    with app.app_context():
        report = load_surveys(tree)
        assert n(Domain) == 9 and n(Policy) == 56 and n(Service) == 31
        assert n(Site) == 10 and n(PopulationMargin) == 12
        assert n(QuestionnaireVersion) == n(Questionnaire) == 5
        assert "créé : service piscine" in report.lines()
        again = load_surveys(tree)
        assert again.lines() == ["aucun changement"]
        assert n(QuestionnaireVersion) == 5


def test_a_change_makes_a_new_version_even_before_any_response(app, tree):
    with app.app_context():
        load_surveys(tree)
        reword_courtesy(tree, "La qualité de l'accueil")
        report = load_surveys(tree)
        # Extensions carry the core's questions, so they change with it.
        assert sorted(report.new_versions) == [
            f"questionnaire {k} v2" for k in ("core", "creche", "dechets", "mediatheque", "piscine")
        ]
        assert n(QuestionnaireVersion) == 10


def test_a_change_after_responses_creates_a_new_version(app, tree):
    client = app.test_client()
    with app.app_context():
        load_surveys(tree)
    answer_once(client, "etat-civil")
    with app.app_context():
        reword_courtesy(tree, "La qualité de l'accueil")
        report = load_surveys(tree)
        assert "questionnaire core v2" in report.new_versions
        core = db.session.execute(select(Questionnaire).where(Questionnaire.key == "core")).scalar_one()
        v1, v2 = core.versions
        old = db.session.execute(select(Response)).scalar_one()
        # The old response stays tied to the version it answered; keys stay comparable.
        assert old.version_id == v1.id
        labels = {
            v.number: next(q for q in v.definition["questions"] if q["key"] == "courtesy")["label"]["fr"]
            for v in (v1, v2)
        }
        assert labels == {1: "L'accueil et la courtoisie", 2: "La qualité de l'accueil"}
    answer_once(client, "etat-civil")
    with app.app_context():
        versions = db.session.execute(select(Response.version_id).order_by(Response.id)).scalars().all()
        assert versions == [v1.id, v2.id]
        # Each questionnaire got its second version (extensions carry the core).
        assert n(QuestionnaireVersion) == 10


def test_a_bad_file_writes_nothing(app, tree):
    edit_yaml(tree / "services" / "demo-commune.yaml", lambda d: d["services"][-1].update(policy="inconnue"))
    with app.app_context():
        with pytest.raises(DefinitionError):
            load_surveys(tree)
        assert n(Domain) == 0 and n(Service) == 0 and n(Questionnaire) == 0


def test_load_surveys_command_names_file_key_and_problem(app, tree):
    edit_yaml(tree / "questionnaires" / "core.yaml", lambda d: question_of(d, "ease").update(type="stars"))
    result = app.test_cli_runner().invoke(args=["barometer", "load-surveys", str(tree)])
    assert result.exit_code == 1
    assert "définitions refusées, rien n'a été chargé" in result.output
    assert "core.yaml: questions.ease.type: type de question inconnu 'stars'" in result.output
    ok = app.test_cli_runner().invoke(args=["barometer", "load-surveys"])
    assert ok.exit_code == 0
    assert (
        "créés : 9 × domaine, 56 × politique, 5 × questionnaire, 1 × collectivité, 31 × service, 10 × site, 12 × marge"
        in ok.output
    )


def test_demo_help_lists_the_planted_effects(runner):
    from barometer import demo

    result = runner.invoke(args=["barometer", "demo", "--help"])
    for planted in demo.PLANTED:
        assert planted.service in result.output and planted.detail in result.output
    assert "aucun effet introduit" in result.output
