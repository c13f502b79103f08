"""Loading definitions: upsert, versions on change after responses, all-or-nothing."""

import pytest
from sqlalchemy import func, select

from barometer.extensions import db
from barometer.loader import load_surveys
from barometer.models import (
    Domain,
    Organisation,
    Policy,
    PopulationMargin,
    Questionnaire,
    QuestionnaireVersion,
    Response,
    Service,
    Site,
)
from barometer.respond.services import clear_cache
from surveys.schema import DefinitionError
from tests.helpers import edit_yaml, question_of, service_of


def n(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def reword_courtesy(root, text):
    edit_yaml(root / "questionnaires" / "core.yaml", lambda d: question_of(d, "courtesy")["label"].update(fr=text))


def answer_once(client, slug):
    from tests.helpers import open_form

    _, tokens = open_form(client, f"/s/{slug}")
    assert client.post(f"/s/{slug}", data={"overall": "4", "courtesy": "5", **tokens}).status_code == 200


def loaded_and_answered(app, tree, slug):
    """The definitions of `tree` loaded and one response to `slug`; a resident's client."""
    client = app.test_client()
    with app.app_context():
        load_surveys(tree)
    answer_once(client, slug)
    return client


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
    client = loaded_and_answered(app, tree, "etat-civil")
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
    clear_cache()  # this worker reads the surveys again at once
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


COURTESY_LABEL = "    label: {fr: L'accueil et la courtoisie, en: Welcome and courtesy}\n"


@pytest.mark.parametrize(
    ("file", "change"),
    [
        ("questionnaires/core.yaml", lambda t: t.replace(COURTESY_LABEL, COURTESY_LABEL * 2)),
        ("catalogue.yaml", lambda t: t + "domains: []\n"),
    ],
    ids=["question-label-twice", "catalogue-domains-twice"],
)
def test_a_duplicate_key_writes_nothing(app, tree, file, change):
    path = tree / file
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    with app.app_context():
        with pytest.raises(DefinitionError, match="clé en double"):
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


# ------------------------------------------------------------ question types across versions


def courtesy_as_yesno(doc):
    q = question_of(doc, "courtesy")
    for name in ("scale", "not_applicable", "display"):
        q.pop(name, None)
    q["type"] = "yesno"


def test_a_new_version_cannot_change_a_question_type(app, tree):
    core = tree / "questionnaires" / "core.yaml"
    with app.app_context():
        load_surveys(tree)
        edit_yaml(core, courtesy_as_yesno)
        reword_courtesy(tree, "Vous a-t-on bien accueilli ?")
        with pytest.raises(DefinitionError) as info:
            load_surveys(tree)
        err = info.value
        assert err.source.endswith("questionnaires/core.yaml")
        assert err.where == "questions.courtesy.type"
        assert err.problem == (
            "type de question changé de scale à yesno (version 1) : "
            "les réponses ne seraient plus comparables, utilisez une nouvelle clé"
        )
        assert n(QuestionnaireVersion) == 5


def test_a_key_cannot_come_back_with_another_type(app, tree):
    core = tree / "questionnaires" / "core.yaml"
    removed = []

    def remove(d):
        removed.append(question_of(d, "courtesy"))
        d["questions"].remove(removed[0])

    def add_back_as_yesno(d):
        d["questions"].append(removed[0])
        courtesy_as_yesno(d)

    with app.app_context():
        load_surveys(tree)
        edit_yaml(core, remove)
        load_surveys(tree)
        edit_yaml(core, add_back_as_yesno)
        with pytest.raises(
            DefinitionError, match=r"questions\.courtesy\.type: type de question changé de scale à yesno"
        ):
            load_surveys(tree)
        assert n(QuestionnaireVersion) == 10


def test_new_labels_or_scale_points_keep_the_key_in_a_new_version(app, tree):
    core = tree / "questionnaires" / "core.yaml"
    with app.app_context():
        load_surveys(tree)
        edit_yaml(
            core, lambda d: d["scales"]["satisfaction5"]["points"][-1]["label"].update(fr="Tout à fait satisfait")
        )
        reword_courtesy(tree, "La qualité de l'accueil")
        assert "questionnaire core v2" in load_surveys(tree).new_versions


# ------------------------------------------------------ what a services file no longer lists


def edit_services(root, change):
    edit_yaml(root / "services" / "demo-commune.yaml", change)


def without_service(slug):
    return lambda d: d.update(services=[s for s in d["services"] if s["slug"] != slug])


def test_a_service_gone_from_its_file_is_closed_and_keeps_its_responses(app, tree):
    client = loaded_and_answered(app, tree, "etat-civil")
    with app.app_context():
        edit_services(tree, without_service("etat-civil"))
        report = load_surveys(tree)
        assert report.closed == ["service etat-civil"]
        assert "fermé : service etat-civil" in report.lines()
        assert "fermé : service etat-civil" in report.summary()
        service = db.session.execute(select(Service).where(Service.slug == "etat-civil")).scalar_one()
        assert service.is_open is False
        assert n(Service) == 31 and n(Response) == 1
        assert load_surveys(tree).lines() == ["aucun changement"]
    clear_cache()  # this worker reads the surveys again at once
    assert client.get("/s/etat-civil").status_code == 410
    # Listed again, it takes answers again.
    edit_services(
        tree,
        lambda d: d["services"].append(
            {"slug": "etat-civil", "name": "État civil", "policy": "etat-civil-citoyennete", "questionnaire": "core"}
        ),
    )
    with app.app_context():
        assert "rouvert : service etat-civil" in load_surveys(tree).lines()
    clear_cache()
    assert client.get("/s/etat-civil").status_code == 200


def test_a_site_gone_from_its_file_is_closed_and_keeps_its_responses(app, tree):
    def drop_site(d):
        piscine = service_of(d, "piscine")
        piscine["sites"] = [x for x in piscine["sites"] if x["code"] != "bassin-nord"]

    client = loaded_and_answered(app, tree, "piscine/bassin-nord")
    with app.app_context():
        edit_services(tree, drop_site)
        report = load_surveys(tree)
        assert "fermé : site piscine/bassin-nord" in report.lines()
        assert "fermé : site piscine/bassin-nord" in report.summary()
        assert n(Site) == 10 and n(Response) == 1
        assert load_surveys(tree).lines() == ["aucun changement"]
    clear_cache()  # this worker reads the surveys again at once
    page = client.get("/s/piscine/bassin-nord")
    assert page.status_code == 410 and "Cette enquête est close" in page.get_data(as_text=True)
    assert client.get("/s/piscine").status_code == 200  # the service itself stays open


def test_a_site_can_be_closed_in_its_file_and_opened_again(app, tree):
    client = app.test_client()

    def set_open(value):
        def change(d):
            piscine = service_of(d, "piscine")
            next(x for x in piscine["sites"] if x["code"] == "bassin-nord")["open"] = value

        return change

    with app.app_context():
        load_surveys(tree)
        edit_services(tree, set_open(False))
        assert load_surveys(tree).lines() == ["fermé : site piscine/bassin-nord"]
    clear_cache()  # this worker reads the surveys again at once
    assert client.get("/s/piscine/bassin-nord").status_code == 410
    with app.app_context():
        edit_services(tree, set_open(True))
        assert load_surveys(tree).summary() == ["rouvert : site piscine/bassin-nord"]
    clear_cache()
    assert client.get("/s/piscine/bassin-nord").status_code == 200


def test_a_service_closed_or_reopened_in_its_file_is_reported(app, tree):
    def set_open(value):
        return lambda d: service_of(d, "piscine").update(open=value)

    with app.app_context():
        load_surveys(tree)
        edit_services(tree, set_open(False))
        assert load_surveys(tree).lines() == ["fermé : service piscine"]
        assert load_surveys(tree).lines() == ["aucun changement"]
        edit_services(tree, set_open(True))
        assert load_surveys(tree).lines() == ["rouvert : service piscine"]


def test_one_organisation_in_two_files_is_refused(app, tree):
    source = tree / "services" / "demo-commune.yaml"
    (tree / "services" / "autre.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    edit_yaml(tree / "services" / "autre.yaml", lambda d: d.update(services=[]))
    with app.app_context(), pytest.raises(DefinitionError, match="collectivité présente dans deux fichiers"):
        load_surveys(tree)
    with app.app_context():
        assert n(Organisation) == 0


@pytest.mark.parametrize("value", ["non", 0, None])
def test_open_must_be_true_or_false(app, tree, value):
    def change(d):
        service_of(d, "piscine")["open"] = value

    edit_services(tree, change)
    with app.app_context(), pytest.raises(DefinitionError, match=r"services\.piscine\.open: valeur .* invalide"):
        load_surveys(tree)


def test_a_margin_gone_from_its_file_is_deleted(app, tree):
    def change(d):
        d["margins"]["area"] = {"centre": 0.5, "nord": 0.5}
        del d["margins"]["sex"]

    with app.app_context():
        load_surveys(tree)
        edit_services(tree, change)
        report = load_surveys(tree)
        rows = db.session.execute(select(PopulationMargin.dimension, PopulationMargin.category, PopulationMargin.share))
        shares: dict[str, dict[str, float]] = {}
        for dim, category, share in rows:
            shares.setdefault(dim, {})[category] = share
        assert shares["area"] == {"centre": 0.5, "nord": 0.5}
        assert set(shares) == {"age_band", "area"}
        assert sum(shares["age_band"].values()) == pytest.approx(1)
        assert "supprimé : marge saint-aubin-des-pres area=gare" in report.lines()
        assert "supprimé : marge saint-aubin-des-pres sex=f" in report.lines()
        assert "supprimés : 5 × marge" in report.summary()
        assert load_surveys(tree).lines() == ["aucun changement"]
