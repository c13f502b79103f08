"""Parsing: documents read from YAML turned into definitions, each fault refused with
the path of its place in the file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from .cleaning import InvalidAnswer, clean_value
from .definitions import (
    Catalogue,
    Choice,
    DomainDef,
    OrganisationDef,
    Point,
    PolicyDef,
    Question,
    QuestionnaireDef,
    Scale,
    Section,
    ServiceDef,
    ShowIf,
    SiteDef,
    Text,
)
from .vocabulary import (
    CHOICE_SOURCES,
    KEY_PATTERN,
    LANGUAGES,
    ORGANISATION_KINDS,
    PROFILE_KEYS,
    QUESTION_TYPES,
    RESERVED_QUESTION_KEYS,
    RESERVED_QUESTION_PREFIX,
    RESERVED_SITE_CODES,
    SCALE_DISPLAYS,
    SLUG_PATTERN,
    TEXT_MAX_LENGTH,
)


class DefinitionError(ValueError):
    """A survey file is wrong; the message names the file, the key and the problem."""

    def __init__(self, source: str, where: str, problem: str):
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}: {where}: {problem}")


class _Reader:
    """Walks a YAML document, raising DefinitionError with the path of the fault."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> DefinitionError:
        return DefinitionError(self.source, where, problem)

    def mapping(self, node: Any, where: str) -> Mapping:
        if not isinstance(node, Mapping):
            raise self.fail(where, "attendu : un dictionnaire (clé: valeur)")
        return node

    def seq(self, node: Any, where: str) -> list:
        if not isinstance(node, list):
            raise self.fail(where, "attendu : une liste")
        return node

    def text(self, node: Any, where: str, *, optional: bool = False) -> Text | None:
        if node is None and optional:
            return None
        if isinstance(node, str) and node.strip():
            raise self.fail(where, "le libellé doit être donné en français et en anglais (fr:, en:)")
        node = self.mapping(node, where)
        missing = [lang for lang in LANGUAGES if not isinstance(node.get(lang), str) or not node[lang].strip()]
        if missing:
            raise self.fail(where, f"libellé manquant dans la langue : {', '.join(missing)}")
        return Text(fr=node["fr"].strip(), en=node["en"].strip())

    def key(self, node: Any, where: str, pattern: re.Pattern = KEY_PATTERN) -> str:
        if not isinstance(node, str) or not pattern.match(node):
            raise self.fail(
                where, f"identifiant invalide {node!r} (minuscules, chiffres, {'_' if pattern is KEY_PATTERN else '-'})"
            )
        return node

    def unknown_fields(self, node: Mapping, allowed: set[str], where: str) -> None:
        extra = sorted(set(node) - allowed)
        if extra:
            raise self.fail(where, f"champ inconnu : {', '.join(map(str, extra))}")


def _open(r: _Reader, node: Mapping, where: str) -> bool:
    """A service's or site's `open` flag: true (the default) or false."""
    value = node.get("open", True)
    if not isinstance(value, bool):
        raise r.fail(f"{where}.open", f"valeur {value!r} invalide (attendu : true ou false)")
    return value


def _parse_scales(r: _Reader, node: Any) -> dict[str, Scale]:
    scales: dict[str, Scale] = {}
    for name, spec in (r.mapping(node, "scales") if node is not None else {}).items():
        where = f"scales.{name}"
        r.key(name, where)
        spec = r.mapping(spec, where)
        points_node = spec.get("points")
        if not points_node:
            raise r.fail(where, "une échelle doit avoir des libellés (points)")
        points = []
        for i, p in enumerate(r.seq(points_node, f"{where}.points")):
            pw = f"{where}.points[{i}]"
            p = r.mapping(p, pw)
            if not isinstance(p.get("value"), int) or isinstance(p.get("value"), bool):
                raise r.fail(pw, "valeur entière attendue (value)")
            if "label" not in p:
                raise r.fail(pw, "une échelle doit avoir des libellés : label manquant")
            points.append(Point(value=p["value"], label=r.text(p["label"], f"{pw}.label"), smiley=p.get("smiley")))
        values = [p.value for p in points]
        if values != sorted(set(values)) or len(values) < 2:
            raise r.fail(where, "les valeurs de l'échelle doivent être distinctes et croissantes (au moins deux)")
        scales[name] = Scale(key=name, points=tuple(points))
    return scales


# A question's YAML keys are its fields.
_QUESTION_FIELDS = frozenset(f.name for f in fields(Question))


def _parse_question(r: _Reader, node: Any, where: str, scales: Mapping[str, Scale], sections: set[str]) -> Question:
    node = r.mapping(node, where)
    r.unknown_fields(node, _QUESTION_FIELDS, where)
    key = r.key(node.get("key"), f"{where}.key")
    where = f"questions.{key}"
    if key in RESERVED_QUESTION_KEYS or key.startswith(RESERVED_QUESTION_PREFIX):
        raise r.fail(where, f"clé de question réservée {key!r} (ce nom est déjà pris par le formulaire de l'enquête)")
    qtype = node.get("type")
    if qtype not in QUESTION_TYPES:
        raise r.fail(f"{where}.type", f"type de question inconnu {qtype!r} (attendu : {', '.join(QUESTION_TYPES)})")
    kwargs: dict[str, Any] = {
        "key": key,
        "type": qtype,
        "label": r.text(node.get("label"), f"{where}.label"),
        "hint": r.text(node.get("hint"), f"{where}.hint", optional=True),
        "required": bool(node.get("required", False)),
        "role": node.get("role"),
    }
    if node.get("role") not in (None, "driver", "profile", "outcome"):
        raise r.fail(f"{where}.role", f"rôle inconnu {node.get('role')!r}")
    section = node.get("section")
    if section is None and sections:
        raise r.fail(f"{where}.section", "section manquante (le questionnaire est découpé en sections)")
    if section is not None and section not in sections:
        raise r.fail(f"{where}.section", f"section inconnue {section!r}")
    kwargs["section"] = section
    if qtype == "scale":
        name = node.get("scale")
        if name is None:
            raise r.fail(f"{where}.scale", "une question de type scale doit nommer son échelle")
        if name not in scales:
            raise r.fail(f"{where}.scale", f"échelle inconnue {name!r}")
        kwargs["scale"] = scales[name]
        display = node.get("display", "text")
        if display not in SCALE_DISPLAYS:
            raise r.fail(f"{where}.display", f"affichage inconnu {display!r} (attendu : {', '.join(SCALE_DISPLAYS)})")
        kwargs["display"] = display
        kwargs["not_applicable"] = bool(node.get("not_applicable", False))
    elif "scale" in node:
        raise r.fail(f"{where}.scale", f"seules les questions de type scale ont une échelle (type : {qtype})")
    if qtype in ("single", "multiple"):
        choices = []
        seen: set[str] = set()
        for i, c in enumerate(r.seq(node.get("choices", []), f"{where}.choices")):
            cw = f"{where}.choices[{i}]"
            c = r.mapping(c, cw)
            code = r.key(c.get("code"), f"{cw}.code")
            if code in seen:
                raise r.fail(cw, f"code de choix en double {code!r}")
            seen.add(code)
            choices.append(Choice(code=code, label=r.text(c.get("label"), f"{cw}.label")))
        kwargs["choices"] = tuple(choices)
        choices_from = node.get("choices_from")
        if choices_from not in (None, *CHOICE_SOURCES):
            raise r.fail(
                f"{where}.choices_from",
                f"source de choix inconnue {choices_from!r} (attendu : {', '.join(CHOICE_SOURCES)})",
            )
        kwargs["choices_from"] = choices_from
        if not choices and not choices_from:
            raise r.fail(f"{where}.choices", "une question à choix doit avoir des choix")
        if qtype == "multiple" and node.get("max_choices") is not None:
            mc = node["max_choices"]
            if not isinstance(mc, int) or mc < 1:
                raise r.fail(f"{where}.max_choices", "entier positif attendu")
            kwargs["max_choices"] = mc
    elif "choices" in node:
        raise r.fail(f"{where}.choices", f"les questions de type {qtype} n'ont pas de choix")
    if qtype == "text":
        ml = node.get("max_length", TEXT_MAX_LENGTH)
        if not isinstance(ml, int) or not 1 <= ml <= TEXT_MAX_LENGTH:
            raise r.fail(f"{where}.max_length", f"entier entre 1 et {TEXT_MAX_LENGTH} attendu")
        kwargs["max_length"] = ml
    if key in PROFILE_KEYS and qtype != "single":
        raise r.fail(f"{where}.type", "une question de profil doit être à choix unique (single)")
    return Question(**kwargs)


def _parse_show_if(r: _Reader, node: Any, where: str, earlier: dict[str, Question]) -> ShowIf:
    node = r.mapping(node, where)
    target = node.get("question")
    if target not in earlier:
        raise r.fail(f"{where}.question", f"show_if porte sur une question inconnue ou placée après : {target!r}")
    question = earlier[target]
    if question.type in ("multiple", "text"):
        raise r.fail(
            f"{where}.question",
            f"show_if ne peut porter que sur une question à réponse unique (type : {question.type})",
        )
    values = node.get("in", [node["equals"]] if "equals" in node else None)
    if not values or not isinstance(values, list):
        raise r.fail(where, "show_if doit donner equals: ou in: [liste]")
    cleaned = []
    for value in values:
        if question.choices_from and isinstance(value, str):
            cleaned.append(value)  # the organisation's areas are only known later
            continue
        try:
            # Compare with answers as they are once cleaned (yes/no is 1/0, scales ints).
            cleaned.append(clean_value(question, value, ()))
        except InvalidAnswer:
            raise r.fail(where, f"valeur impossible pour la question {target!r} : {value!r}") from None
    return ShowIf(question=target, values=tuple(cleaned))


def parse_questionnaire(
    doc: Any, source: str, *, parents: Mapping[str, QuestionnaireDef] | None = None
) -> QuestionnaireDef:
    """Build a questionnaire from a YAML document; `parents` resolves `extends`."""
    r = _Reader(source)
    doc = r.mapping(doc, "racine")
    r.unknown_fields(doc, {"key", "title", "intro", "extends", "scales", "sections", "questions"}, "racine")
    key = r.key(doc.get("key"), "key")
    parent = None
    if doc.get("extends"):
        parent = (parents or {}).get(doc["extends"])
        if parent is None:
            raise r.fail("extends", f"questionnaire de base inconnu {doc['extends']!r}")
    scales = dict(parent.scales) if parent else {}
    for name, scale in _parse_scales(r, doc.get("scales")).items():
        if name in scales:
            raise r.fail(f"scales.{name}", "échelle déjà définie par le questionnaire de base")
        scales[name] = scale
    sections = list(parent.sections) if parent else []
    for i, s in enumerate(r.seq(doc.get("sections", []), "sections")):
        s = r.mapping(s, f"sections[{i}]")
        skey = r.key(s.get("key"), f"sections[{i}].key")
        if any(x.key == skey for x in sections):
            raise r.fail(f"sections[{i}]", f"section en double {skey!r}")
        sections.append(Section(key=skey, title=r.text(s.get("title"), f"sections.{skey}.title")))
    section_keys = {s.key for s in sections}
    questions: dict[str, Question] = {q.key: q for q in parent.questions} if parent else {}
    own = r.seq(doc.get("questions"), "questions") if doc.get("questions") is not None else []
    if not own and parent is None:
        raise r.fail("questions", "un questionnaire doit avoir au moins une question")
    for i, qnode in enumerate(own):
        q = _parse_question(r, qnode, f"questions[{i}]", scales, section_keys)
        if q.key in questions:
            raise r.fail(f"questions.{q.key}", f"clé de question en double {q.key!r}")
        if "show_if" in qnode:
            sw = f"questions.{q.key}.show_if"
            if q.required:
                # A hidden question that must be answered would block the resident.
                raise r.fail(
                    f"questions.{q.key}.required", "une question conditionnelle (show_if) ne peut pas être obligatoire"
                )
            q = replace(q, show_if=_parse_show_if(r, qnode["show_if"], sw, questions))
        questions[q.key] = q
    # Extension questions join the end of their section, before the next section.
    order = {s.key: i for i, s in enumerate(sections)}
    ordered = sorted(questions.values(), key=lambda q: order.get(q.section, len(order)))
    for i, q in enumerate(ordered):
        if q.choices_from == "drivers":
            ordered[i] = q = _with_driver_choices(q, ordered)
            if not q.choices:
                raise r.fail(f"questions.{q.key}.choices_from", "le questionnaire n'a aucun attribut (role: driver)")
    if not any(q.key == "overall" for q in ordered):
        raise r.fail("questions", "la question « overall » (satisfaction globale) est obligatoire")
    return QuestionnaireDef(
        key=key,
        title=r.text(doc.get("title"), "title") if doc.get("title") or not parent else parent.title,
        intro=r.text(doc.get("intro"), "intro", optional=True) or (parent.intro if parent else None),
        sections=tuple(sections),
        questions=tuple(ordered),
        extends=parent.key if parent else None,
        scales=scales,
    )


def _with_driver_choices(q: Question, questions: list[Question]) -> Question:
    """One choice per attribute (driver) of the questionnaire, in its order, labelled as
    asked, then the question's other choices; an extension's attributes are offered too."""
    drivers = tuple(Choice(code=d.key, label=d.label) for d in questions if d.role == "driver")
    codes = {c.code for c in drivers}
    return replace(q, choices=drivers + tuple(c for c in q.choices if c.code not in codes))


def parse_catalogue(doc: Any, source: str) -> Catalogue:
    r = _Reader(source)
    doc = r.mapping(doc, "racine")
    domains = []
    seen: set[str] = set()
    for i, d in enumerate(r.seq(doc.get("domains"), "domains")):
        dw = f"domains[{i}]"
        d = r.mapping(d, dw)
        dslug = r.key(d.get("slug"), f"{dw}.slug", SLUG_PATTERN)
        if dslug in seen:
            raise r.fail(dw, f"domaine en double {dslug!r}")
        seen.add(dslug)
        policies = []
        for j, p in enumerate(r.seq(d.get("policies"), f"domains.{dslug}.policies")):
            pw = f"domains.{dslug}.policies[{j}]"
            p = r.mapping(p, pw)
            pslug = r.key(p.get("slug"), f"{pw}.slug", SLUG_PATTERN)
            if pslug in seen:
                raise r.fail(pw, f"politique en double {pslug!r}")
            seen.add(pslug)
            policies.append(PolicyDef(slug=pslug, name=_name(r, p, pw)))
        domains.append(DomainDef(slug=dslug, name=_name(r, d, dw), policies=tuple(policies)))
    return Catalogue(domains=tuple(domains))


def _name(r: _Reader, node: Mapping, where: str) -> str:
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        raise r.fail(f"{where}.name", "nom manquant")
    return name.strip()


def parse_organisation(
    doc: Any, source: str, *, catalogue: Catalogue, questionnaires: Mapping[str, QuestionnaireDef]
) -> OrganisationDef:
    r = _Reader(source)
    doc = r.mapping(doc, "racine")
    r.unknown_fields(doc, {"organisation", "areas", "services", "margins"}, "racine")
    org = r.mapping(doc.get("organisation"), "organisation")
    kind = org.get("kind")
    if kind not in ORGANISATION_KINDS:
        raise r.fail(
            "organisation.kind", f"type de collectivité inconnu {kind!r} (attendu : {', '.join(ORGANISATION_KINDS)})"
        )
    areas = []
    for i, a in enumerate(r.seq(doc.get("areas", []), "areas")):
        a = r.mapping(a, f"areas[{i}]")
        areas.append(
            Choice(code=r.key(a.get("code"), f"areas[{i}].code"), label=r.text(a.get("label"), f"areas[{i}].label"))
        )
    if len({a.code for a in areas}) != len(areas):
        raise r.fail("areas", "code de quartier en double")
    services = []
    seen: set[str] = set()
    policies = catalogue.policies
    for i, s in enumerate(r.seq(doc.get("services"), "services")):
        sw = f"services[{i}]"
        s = r.mapping(s, sw)
        r.unknown_fields(s, {"slug", "name", "policy", "questionnaire", "sites", "open"}, sw)
        slug = r.key(s.get("slug"), f"{sw}.slug", SLUG_PATTERN)
        sw = f"services.{slug}"
        if slug in seen:
            raise r.fail(sw, f"service en double {slug!r}")
        seen.add(slug)
        if s.get("policy") not in policies:
            raise r.fail(f"{sw}.policy", f"politique inconnue du catalogue {s.get('policy')!r}")
        if s.get("questionnaire") not in questionnaires:
            raise r.fail(f"{sw}.questionnaire", f"questionnaire inconnu {s.get('questionnaire')!r}")
        sites = []
        for j, site in enumerate(r.seq(s.get("sites", []), f"{sw}.sites")):
            site = r.mapping(site, f"{sw}.sites[{j}]")
            code = r.key(site.get("code"), f"{sw}.sites[{j}].code", SLUG_PATTERN)
            if any(x.code == code for x in sites):
                raise r.fail(f"{sw}.sites", f"site en double {code!r}")
            if code in RESERVED_SITE_CODES:
                raise r.fail(f"{sw}.sites[{j}].code", f"code de site réservé {code!r} (il sert d'adresse à l'affiche)")
            r.unknown_fields(site, {"code", "name", "open"}, f"{sw}.sites.{code}")
            sites.append(
                SiteDef(code=code, name=_name(r, site, f"{sw}.sites.{code}"), open=_open(r, site, f"{sw}.sites.{code}"))
            )
        services.append(
            ServiceDef(
                slug=slug,
                name=_name(r, s, sw),
                policy=s["policy"],
                questionnaire=s["questionnaire"],
                sites=tuple(sites),
                open=_open(r, s, sw),
            )
        )
    if any(q.choices_from == "areas" for q in _used(questionnaires, services)) and not areas:
        raise r.fail("areas", "les questionnaires demandent le quartier : la liste areas est obligatoire")
    margins = _parse_margins(r, doc.get("margins"), areas)
    return OrganisationDef(
        slug=r.key(org.get("slug"), "organisation.slug", SLUG_PATTERN),
        name=_name(r, org, "organisation"),
        kind=kind,
        areas=tuple(areas),
        services=tuple(services),
        margins=margins,
    )


def _used(questionnaires: Mapping[str, QuestionnaireDef], services: list[ServiceDef]):
    for key in {s.questionnaire for s in services}:
        yield from questionnaires[key].questions


def _parse_margins(r: _Reader, node: Any, areas: list[Choice]) -> dict[str, dict[str, float]]:
    margins: dict[str, dict[str, float]] = {}
    if node is None:
        return margins
    for dim, shares in r.mapping(node, "margins").items():
        where = f"margins.{dim}"
        if dim not in PROFILE_KEYS:
            raise r.fail(where, f"dimension inconnue {dim!r} (attendu : {', '.join(PROFILE_KEYS)})")
        shares = r.mapping(shares, where)
        if dim == "area":
            unknown = set(shares) - {a.code for a in areas}
            if unknown:
                raise r.fail(where, f"quartier inconnu : {', '.join(sorted(unknown))}")
        if any(not isinstance(v, int | float) or v <= 0 for v in shares.values()):
            raise r.fail(where, "les parts doivent être des nombres positifs")
        total = sum(shares.values())
        if abs(total - 1) > 1e-6:
            raise r.fail(where, f"les parts doivent totaliser 1 (total : {total:.4f})")
        margins[dim] = {str(k): float(v) for k, v in shares.items()}
    return margins
