"""The survey definition schema: the project's files load, bad files are refused."""

import pytest

from surveys.schema import (
    DEFAULT_ROOT,
    NOT_APPLICABLE,
    PROFILE_KEYS,
    DefinitionError,
    load_bundle,
    questionnaire_from_dict,
)
from tests.helpers import edit_yaml, question_of

CORE_DRIVERS = ("courtesy", "waiting_time", "clarity", "ease", "opening_hours", "competence", "outcome", "fairness")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_ROOT)


def test_catalogue_has_nine_domains_and_about_55_policies(bundle):
    assert len(bundle.catalogue.domains) == 9
    assert 50 <= len(bundle.catalogue.policies) <= 60
    assert all(d.policies for d in bundle.catalogue.domains)


def test_core_questionnaire_is_the_design(bundle):
    core = bundle.questionnaires["core"]
    overall = core.question("overall")
    assert overall.required and overall.scale.values == (1, 2, 3, 4, 5)
    assert overall.scale.points[0].label.fr == "Pas du tout satisfait"
    assert core.drivers == CORE_DRIVERS
    assert all(core.question(k).not_applicable for k in CORE_DRIVERS)
    assert core.question("recommend").type == "nps"
    assert core.question("comment").type == "text"
    for key in PROFILE_KEYS:
        codes = [c.code for c in core.question(key).choices]
        assert "nsp" in codes, key
    assert sum(q.required for q in core.questions) == 1


def test_extensions_keep_core_keys_and_add_their_own(bundle):
    extensions = [q for q in bundle.questionnaires.values() if q.extends == "core"]
    assert len(extensions) >= 3
    core_keys = [q.key for q in bundle.questionnaires["core"].questions]
    for q in extensions:
        keys = [x.key for x in q.questions]
        assert set(core_keys) < set(keys)
        assert keys.index("overall") == 0


def test_demo_commune_spreads_about_30_services_over_the_9_domains(bundle):
    (org,) = bundle.organisations
    assert 25 <= len(org.services) <= 35
    domain_of = {p.slug: d.slug for d in bundle.catalogue.domains for p in d.policies}
    assert len({domain_of[s.policy] for s in org.services}) == 9
    assert sum(bool(s.sites) for s in org.services) >= 3
    assert set(org.margins) == {"age_band", "sex", "area"}


def test_show_if_values_are_compared_as_cleaned_answers(bundle):
    # "equals: 1" on a yes/no question matches the cleaned answer 1, whatever was sent.
    q = bundle.questionnaires["piscine"]
    assert q.question("crowding_time").show_if.values == (1,)
    for sent in ("1", "oui", 1):
        answers, _ = q.clean({"overall": "3", "crowding": sent, "crowding_time": "lunch"})
        assert answers["crowding_time"] == "lunch"


def test_control_characters_are_removed_from_text(bundle):
    answers, errors = bundle.questionnaires["core"].clean({"overall": "3", "comment": "a\x00b\tc\nd\x1b"})
    assert errors == {} and answers["comment"] == "ab\tc\nd"


def test_definitions_round_trip_through_their_stored_form(bundle):
    for q in bundle.questionnaires.values():
        again = questionnaire_from_dict(q.to_dict())
        assert again == q and again.checksum == q.checksum


def test_clean_keeps_valid_answers_and_words_errors_as_codes(bundle):
    q = bundle.questionnaires["piscine"]
    answers, errors = q.clean(
        {
            "overall": "5",
            "courtesy": "na",
            "recommend": "10",
            "important_attributes": ["ease", "courtesy"],
            "crowding": "0",
            "crowding_time": "lunch",
            "comment": "  Très bien  ",
        }
    )
    assert errors == {}
    # crowding_time is a follow-up of crowding = yes: dropped when the answer is no.
    assert answers == {
        "overall": 5,
        "courtesy": NOT_APPLICABLE,
        "recommend": 10,
        "important_attributes": ("courtesy", "ease"),
        "crowding": 0,
        "comment": "Très bien",
    }
    _, errors = q.clean(
        {
            "courtesy": "6",
            "recommend": "11",
            "age_band": "a99",
            "comment": "x" * 1001,
            "important_attributes": ["ease", "clarity", "courtesy", "fairness"],
        }
    )
    assert errors == {
        "overall": ("required", {}),
        "courtesy": ("out_of_range", {"low": 1, "high": 5}),
        "recommend": ("out_of_range", {"low": 0, "high": 10}),
        "age_band": ("unknown_choice", {}),
        "comment": ("too_long", {"max": 1000}),
        "important_attributes": ("too_many", {"max": 3}),
    }


# ----------------------------------------------------------------- refused files


@pytest.mark.parametrize(
    ("file", "change", "where", "problem"),
    [
        (
            "questionnaires/core.yaml",
            lambda d: question_of(d, "courtesy").update(type="slider"),
            "questions.courtesy.type",
            "type de question inconnu 'slider' (attendu : scale, nps, single, multiple, yesno, text)",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: d["questions"].append(dict(question_of(d, "clarity"))),
            "questions.clarity",
            "clé de question en double 'clarity'",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: d["questions"].append(
                {"key": "clarity", "type": "yesno", "section": "more", "label": {"fr": "a", "en": "b"}}
            ),
            "questions.clarity",
            "clé de question en double 'clarity'",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: d["scales"]["satisfaction5"].pop("points"),
            "scales.satisfaction5",
            "une échelle doit avoir des libellés (points)",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: d["scales"]["satisfaction5"]["points"][0].pop("label"),
            "scales.satisfaction5.points[0]",
            "une échelle doit avoir des libellés : label manquant",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: question_of(d, "crowding_time").update(show_if={"question": "nope", "equals": 1}),
            "questions.crowding_time.show_if.question",
            "show_if porte sur une question inconnue ou placée après : 'nope'",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: question_of(d, "overall").update(scale="satisfaction7"),
            "questions.overall.scale",
            "échelle inconnue 'satisfaction7'",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: question_of(d, "overall").update(label={"fr": "Globalement ?"}),
            "questions.overall.label",
            "libellé manquant dans la langue : en",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: question_of(d, "sex").update(choices=[]),
            "questions.sex.choices",
            "une question à choix doit avoir des choix",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: d.update(extends="base"),
            "extends",
            "questionnaire de base inconnu 'base'",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: d.update(questions=[q for q in d["questions"] if q["key"] != "overall"]),
            "questions",
            "la question « overall » (satisfaction globale) est obligatoire",
        ),
        (
            "services/demo-commune.yaml",
            lambda d: d["services"][0].update(policy="inexistante"),
            "services.urbanisme.policy",
            "politique inconnue du catalogue 'inexistante'",
        ),
        (
            "services/demo-commune.yaml",
            lambda d: d["services"][0].update(questionnaire="nope"),
            "services.urbanisme.questionnaire",
            "questionnaire inconnu 'nope'",
        ),
        (
            "services/demo-commune.yaml",
            lambda d: d["services"].append(dict(d["services"][0])),
            "services.urbanisme",
            "service en double 'urbanisme'",
        ),
        (
            "services/demo-commune.yaml",
            lambda d: d["margins"]["sex"].update(f=0.6),
            "margins.sex",
            "les parts doivent totaliser 1 (total : 1.0800)",
        ),
        (
            "catalogue.yaml",
            lambda d: d["domains"][1]["policies"].append({"slug": "tourisme", "name": "Encore"}),
            "domains.developpement-economique.policies[6]",
            "politique en double 'tourisme'",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: question_of(d, "crowding_time").update(required=True),
            "questions.crowding_time.required",
            "une question conditionnelle (show_if) ne peut pas être obligatoire",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: question_of(d, "crowding_time").update(show_if={"question": "crowding", "equals": "peut-être"}),
            "questions.crowding_time.show_if",
            "valeur impossible pour la question 'crowding' : 'peut-être'",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: question_of(d, "crowding_time").update(
                show_if={"question": "important_attributes", "equals": "ease"}
            ),
            "questions.crowding_time.show_if.question",
            "show_if ne peut porter que sur une question à réponse unique (type : multiple)",
        ),
        (
            "questionnaires/piscine.yaml",
            lambda d: question_of(d, "crowding").pop("section"),
            "questions.crowding.section",
            "section manquante (le questionnaire est découpé en sections)",
        ),
    ],
    ids=[
        "unknown-type",
        "duplicate-key",
        "extension-duplicates-core-key",
        "scale-without-labels",
        "scale-point-without-label",
        "show-if-unknown-question",
        "unknown-scale",
        "missing-translation",
        "choice-without-choices",
        "unknown-parent",
        "no-overall",
        "unknown-policy",
        "unknown-questionnaire",
        "duplicate-service",
        "margins-not-summing-to-one",
        "duplicate-policy",
        "required-follow-up",
        "impossible-show-if-value",
        "show-if-on-multiple-choice",
        "missing-section",
    ],
)
def test_a_bad_file_is_refused_with_file_key_and_problem(tree, file, change, where, problem):
    edit_yaml(tree / file, change)
    with pytest.raises(DefinitionError) as info:
        load_bundle(tree)
    err = info.value
    assert err.source.endswith(file)
    assert err.where == where
    assert err.problem == problem
    assert str(err).startswith(err.source)


def test_invalid_yaml_names_the_file(tree):
    (tree / "questionnaires" / "creche.yaml").write_text("key: creche\nquestions: [\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"creche\.yaml: YAML: syntaxe invalide"):
        load_bundle(tree)


def test_a_site_cannot_take_the_poster_address(tree):
    def change(d):
        next(s for s in d["services"] if s["slug"] == "piscine")["sites"][0]["code"] = "poster"

    edit_yaml(tree / "services" / "demo-commune.yaml", change)
    with pytest.raises(DefinitionError, match=r"services\.piscine\.sites\[0\]\.code: code de site réservé 'poster'"):
        load_bundle(tree)
