"""The survey definition schema: the project's files load, bad files are refused."""

import pytest

from surveys.schema import (
    DEFAULT_ROOT,
    NOT_APPLICABLE,
    PREFER_NOT_TO_SAY,
    PROFILE_KEYS,
    RESERVED_QUESTION_KEYS,
    Choice,
    DefinitionError,
    Text,
    load_bundle,
    questionnaire_from_dict,
)
from tests.helpers import edit_yaml, question_of, service_of

CORE_DRIVERS = ("courtesy", "waiting_time", "clarity", "ease", "opening_hours", "competence", "outcome", "fairness")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_ROOT)


def test_catalogue_has_nine_domains_and_about_55_policies(bundle):
    assert len(bundle.catalogue.domains) == 9
    assert 50 <= len(bundle.catalogue.policies) <= 60
    assert all(d.policies for d in bundle.catalogue.domains)


def test_core_questionnaire_is_the_design(bundle):
    # The wordings of ../shared/DESIGN.md, section "The core questionnaire".
    core = bundle.questionnaires["core"]
    overall = core.question("overall")
    assert overall.label.fr == "Globalement, êtes-vous satisfait(e) de ce service ?"
    assert overall.type == "scale" and overall.required
    assert overall.scale.values == (1, 2, 3, 4, 5)
    assert overall.scale.points[0].label.fr == "Pas du tout satisfait"
    assert overall.scale.points[-1].label.fr == "Très satisfait"
    assert core.drivers == CORE_DRIVERS
    for key in CORE_DRIVERS:
        driver = core.question(key)
        assert driver.type == "scale" and driver.scale.values == (1, 2, 3, 4, 5), key
        assert driver.not_applicable, key
        answers, errors = core.clean({"overall": "3", key: NOT_APPLICABLE})
        assert errors == {} and answers[key] == NOT_APPLICABLE, key
    # Stated importance, optional, is asked of the eight drivers.
    importance = core.question("important_attributes")
    assert importance.type == "multiple" and not importance.required
    assert tuple(c.code for c in importance.choices) == CORE_DRIVERS
    recommend = core.question("recommend")
    assert recommend.type == "nps"
    assert "(0 = pas du tout, 10 = certainement)" in recommend.label.fr
    assert core.clean({"overall": "3", "recommend": "0"})[0]["recommend"] == 0
    assert core.clean({"overall": "3", "recommend": "10"})[0]["recommend"] == 10
    assert core.clean({"overall": "3", "recommend": "11"})[1] == {"recommend": ("out_of_range", {"low": 0, "high": 10})}
    comment = core.question("comment")
    assert comment.type == "text"
    assert comment.hint.fr == "N'indiquez ni nom, ni adresse e-mail, ni numéro de téléphone."
    assert comment.hint.en == "Do not enter your name, e-mail address or phone number."
    for key in PROFILE_KEYS:
        profile = core.question(key)
        assert profile.role == "profile" and not profile.required, key
        # core.yaml words DESIGN.md's "préfère ne pas dire" as a full sentence.
        assert profile.choices[-1] == Choice(
            code=PREFER_NOT_TO_SAY, label=Text(fr="Je préfère ne pas le dire", en="I prefer not to say")
        ), key
    assert [q.key for q in core.questions if q.required] == ["overall"]


def test_drivers_offer_non_concerne_on_the_page(app, bundle):
    from barometer.respond.forms import _options

    core = bundle.questionnaires["core"]
    with app.test_request_context("/s/piscine"):
        for key in CORE_DRIVERS:
            assert _options(core.question(key), "fr", ())[-1] == (NOT_APPLICABLE, "Non concerné"), key


def test_extensions_keep_core_keys_and_add_their_own(bundle):
    extensions = [q for q in bundle.questionnaires.values() if q.extends == "core"]
    assert len(extensions) >= 3
    core_keys = [q.key for q in bundle.questionnaires["core"].questions]
    for q in extensions:
        keys = [x.key for x in q.questions]
        assert set(core_keys) < set(keys)
        assert keys.index("overall") == 0


def test_stated_importance_offers_every_attribute_an_extension_adds(bundle):
    for q in bundle.questionnaires.values():
        importance = q.question("important_attributes")
        drivers = [x for x in q.questions if x.role == "driver"]
        assert [c.code for c in importance.choices] == [d.key for d in drivers], q.key
        assert [c.label for c in importance.choices] == [d.label for d in drivers], q.key
    piscine = bundle.questionnaires["piscine"].question("important_attributes")
    assert [c.code for c in piscine.choices] == [*CORE_DRIVERS, "water_cleanliness"]
    answers, errors = bundle.questionnaires["piscine"].clean(
        {"overall": "4", "important_attributes": ["water_cleanliness", "courtesy"]}
    )
    assert errors == {} and answers["important_attributes"] == ("courtesy", "water_cleanliness")


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


def refusal(tree) -> DefinitionError:
    """Why loading the definitions of `tree` is refused."""
    with pytest.raises(DefinitionError) as info:
        load_bundle(tree)
    return info.value


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
            lambda d: question_of(d, "important_attributes").update(choices_from="attributes"),
            "questions.important_attributes.choices_from",
            "source de choix inconnue 'attributes' (attendu : areas, drivers)",
        ),
        (
            "questionnaires/core.yaml",
            lambda d: [q.pop("role") for q in d["questions"] if q.get("role") == "driver"],
            "questions.important_attributes.choices_from",
            "le questionnaire n'a aucun attribut (role: driver)",
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
        "unknown-choice-source",
        "importance-without-drivers",
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
    err = refusal(tree)
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
        service_of(d, "piscine")["sites"][0]["code"] = "poster"

    edit_yaml(tree / "services" / "demo-commune.yaml", change)
    with pytest.raises(DefinitionError, match=r"services\.piscine\.sites\[0\]\.code: code de site réservé 'poster'"):
        load_bundle(tree)


# ------------------------------------------------------------- duplicate YAML keys


def _repeat_line(path, line: str, again: str) -> tuple[int, int]:
    """Add `again` right after `line` in a file; the line numbers of both (1-based)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines.index(line) + 1
    indent = line[: len(line) - len(line.lstrip())]
    lines.insert(first, indent + again)
    path.write_text("".join(lines), encoding="utf-8")
    return first, first + 1


def test_a_question_with_two_labels_is_refused(tree):
    path = tree / "questionnaires" / "core.yaml"
    first, second = _repeat_line(
        path,
        "    label: {fr: L'accueil et la courtoisie, en: Welcome and courtesy}\n",
        "label: {fr: Accueil, en: Welcome}\n",
    )
    err = refusal(tree)
    assert err.source.endswith("questionnaires/core.yaml")
    assert err.where == "questions.courtesy.label"
    assert err.problem == f"clé en double (ligne {second}, déjà donnée ligne {first})"


def test_a_catalogue_with_two_domains_lists_is_refused(tree):
    path = tree / "catalogue.yaml"
    first = path.read_text(encoding="utf-8").splitlines().index("domains:") + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write("domains: []\n")
    second = len(path.read_text(encoding="utf-8").splitlines())
    err = refusal(tree)
    assert err.source.endswith("catalogue.yaml")
    assert err.where == "domains"
    assert err.problem == f"clé en double (ligne {second}, déjà donnée ligne {first})"
    assert str(err) == f"{err.source}: domains: clé en double (ligne {second}, déjà donnée ligne {first})"


def test_a_duplicate_key_deep_in_a_list_is_named_by_its_path(tree):
    path = tree / "services" / "demo-commune.yaml"
    first, second = _repeat_line(path, "    policy: lecture-publique\n", "policy: lecture-publique\n")
    err = refusal(tree)
    assert err.where == "services.mediatheque.policy"
    assert err.problem == f"clé en double (ligne {second}, déjà donnée ligne {first})"


def test_yaml_keys_equal_once_read_are_duplicates(tree):
    # "yes" and "true" both read as True: one of the two answers would be lost.
    path = tree / "questionnaires" / "core.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "extra:\n  yes: 1\n  true: 2\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"core\.yaml: extra\.True: clé en double"):
        load_bundle(tree)


def test_yaml_merge_keys_are_not_duplicates(tree):
    # `<<:` copies a mapping on purpose; the keys given beside it override it.
    path = tree / "questionnaires" / "core.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "base: &base {a: 1, b: 2}\nother:\n  <<: *base\n  a: 3\n", encoding="utf-8")
    assert refusal(tree).problem == "champ inconnu : base, other"


# ----------------------------------------------------------- reserved question keys


@pytest.mark.parametrize(
    "key",
    ["website", "token", "channel", "csrf_token", "submit", "meta", "data", "errors", "validate", "validate_overall"],
)
def test_a_question_key_the_survey_form_uses_is_refused(tree, key):
    edit_yaml(
        tree / "questionnaires" / "piscine.yaml",
        lambda d: d["questions"].append(
            {"key": key, "type": "yesno", "section": "more", "label": {"fr": "a", "en": "b"}}
        ),
    )
    err = refusal(tree)
    assert err.source.endswith("questionnaires/piscine.yaml")
    assert err.where == f"questions.{key}"
    assert err.problem == f"clé de question réservée {key!r} (ce nom est déjà pris par le formulaire de l'enquête)"


def test_reserved_question_keys_cover_every_name_of_the_survey_form(surveys):
    import re

    from barometer.respond.forms import SurveyFormBase

    with surveys.test_request_context("/s/piscine"):
        form = SurveyFormBase()
    # A question becomes a form attribute named by its key (forms.survey_form_class).
    names = {n for n in (*dir(SurveyFormBase), *vars(form)) if not n.startswith("_") and n.islower()}
    assert names <= RESERVED_QUESTION_KEYS
    # Every input the page sends, and the submit button's id, that is not a question.
    html = surveys.test_client().get("/s/piscine").get_data(as_text=True)
    keys = {q.key for q in load_bundle(DEFAULT_ROOT).questionnaires["piscine"].questions}
    inputs = set(re.findall(r'<(?:input|textarea|select)\b[^>]*?\bname="([^"]+)"', html))
    own = (inputs | set(re.findall(r'<button\b[^>]*?\bid="([^"]+)"', html))) - keys
    assert own and own <= RESERVED_QUESTION_KEYS, own - RESERVED_QUESTION_KEYS
