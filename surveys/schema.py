"""Survey definitions as data: frozen dataclasses, parsed and validated from YAML.

This module is pure Python (no Flask): the web form, the demo generator and the
import paths all read the same objects, and `Questionnaire.clean` is the one place
where an answer is judged valid.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

#: Languages every label must be given in; the first is the default.
LANGUAGES = ("fr", "en")
#: Question types and what an answer to each looks like once cleaned.
QUESTION_TYPES = ("scale", "nps", "single", "multiple", "yesno", "text")
#: How a scale is shown to residents.
SCALE_DISPLAYS = ("text", "smileys")
#: Profile questions are stored on the response itself (weighting and segments).
PROFILE_KEYS = ("age_band", "sex", "area", "frequency")
#: Choice code of "non concerné" on a scale question.
NOT_APPLICABLE = "na"
#: Choice code of "préfère ne pas dire" on profile questions.
PREFER_NOT_TO_SAY = "nsp"
#: Default and hard maximum length of a free-text answer (characters).
TEXT_MAX_LENGTH = 2000
#: How a yes/no answer may arrive; True and False hash as 1 and 0, so they are covered too.
_YES_NO = {"1": 1, "0": 0, "yes": 1, "no": 0, "oui": 1, "non": 0, 1: 1, 0: 0}
#: Question keys and slugs: lower case, digits, underscores or hyphens.
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ORGANISATION_KINDS = ("commune", "epci", "departement", "region")
#: Site codes that would shadow a survey's own pages (/s/<service>/poster).
RESERVED_SITE_CODES = frozenset({"poster"})
#: Question keys the survey page already uses. Each question becomes a form field named
#: by its key (barometer/respond/forms.py), so a key must not shadow the form's own
#: fields (token, channel), Flask-WTF's csrf_token, or a WTForms form attribute; nor
#: the page's other inputs: the honeypot (website) and the submit button's id.
RESERVED_QUESTION_KEYS = frozenset(
    {
        "token",
        "channel",
        "website",
        "submit",
        "csrf_token",
        "meta",
        "data",
        "errors",
        "form_errors",
        "hidden_tag",
        "is_submitted",
        "populate_obj",
        "post_process",
        "process",
        "show_errors",
        "validate",
        "validate_on_submit",
    }
)
#: WTForms calls a form attribute validate_<key> as a validator of the field <key>.
RESERVED_QUESTION_PREFIX = "validate_"
#: Where a choice question's choices may come from (`choices_from`).
CHOICE_SOURCES = ("areas", "drivers")
#: Removed from free text: every control character but tab and newline.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class DefinitionError(ValueError):
    """A survey file is wrong; the message names the file, the key and the problem."""

    def __init__(self, source: str, where: str, problem: str):
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}: {where}: {problem}")


@dataclass(frozen=True)
class Text:
    """A label in every interface language."""

    fr: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.fr


@dataclass(frozen=True)
class Point:
    value: int
    label: Text
    smiley: str | None = None


@dataclass(frozen=True)
class Scale:
    key: str
    points: tuple[Point, ...]

    @cached_property
    def values(self) -> tuple[int, ...]:
        return tuple(p.value for p in self.points)


@dataclass(frozen=True)
class Choice:
    code: str
    label: Text


@dataclass(frozen=True)
class ShowIf:
    """Ask a question only when another question's answer is one of `values`."""

    question: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Question:
    key: str
    type: str
    label: Text
    hint: Text | None = None
    required: bool = False
    section: str | None = None
    #: "driver" (an attribute of satisfaction), "profile", "outcome" or None.
    role: str | None = None
    scale: Scale | None = None
    display: str = "text"
    not_applicable: bool = False
    choices: tuple[Choice, ...] = ()
    #: Where the choices come from besides `choices`: "areas" (the organisation's list,
    #: known per service) or "drivers" (one choice per attribute of the questionnaire,
    #: an extension's included: which ones matter most, its stated importance).
    choices_from: str | None = None
    max_choices: int | None = None
    max_length: int = TEXT_MAX_LENGTH
    show_if: ShowIf | None = None


@dataclass(frozen=True)
class Section:
    key: str
    title: Text


@dataclass(frozen=True)
class Questionnaire:
    """A resolved questionnaire: an extension already carries the core's questions."""

    key: str
    title: Text
    intro: Text | None
    sections: tuple[Section, ...]
    questions: tuple[Question, ...]
    extends: str | None = None
    scales: Mapping[str, Scale] = field(default_factory=dict, compare=False, repr=False)

    def question(self, key: str) -> Question:
        for q in self.questions:
            if q.key == key:
                return q
        raise KeyError(key)

    @cached_property
    def types(self) -> dict[str, str]:
        """Question key -> question type."""
        return {q.key: q.type for q in self.questions}

    @property
    def drivers(self) -> tuple[str, ...]:
        return tuple(q.key for q in self.questions if q.role == "driver")

    def to_dict(self) -> dict:
        """Canonical plain form, stored with each version and hashed to detect changes."""
        return _plain(self, skip={"scales"})

    @property
    def checksum(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def clean(
        self, raw: Mapping[str, Any], *, areas: tuple[Choice, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, tuple[str, dict]]]:
        """Check raw answers (strings from a form, or typed values) against the definition.

        Returns ``(answers, errors)``. ``answers`` maps a question key to an int (scale,
        nps, yes/no as 1/0), a choice code, a tuple of codes (multiple), a text, or
        `NOT_APPLICABLE`; unanswered questions and follow-ups whose condition is not
        met are left out. ``errors`` maps a question key to ``(code, params)`` where
        code is one of required, invalid, out_of_range, unknown_choice, too_long,
        too_many: the caller words the message in the resident's language.
        """
        answers: dict[str, Any] = {}
        errors: dict[str, tuple[str, dict]] = {}
        for q in self.questions:
            value = raw.get(q.key)
            if _blank(value):
                if q.required:
                    errors[q.key] = ("required", {})
                continue
            try:
                answers[q.key] = _clean_value(q, value, areas)
            except _Invalid as exc:
                errors[q.key] = (exc.code, exc.params)
        # A follow-up answered while its condition is not met is dropped, not refused:
        # without JavaScript every follow-up is on the page.
        for q in self.questions:
            if q.show_if and q.key in answers and answers.get(q.show_if.question) not in q.show_if.values:
                del answers[q.key]
        return answers, errors


class _Invalid(Exception):
    def __init__(self, code: str, **params):
        self.code, self.params = code, params


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, list | tuple | set | frozenset):
        return len(value) == 0
    return False


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid("invalid")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,3}", value.strip()):
        return int(value.strip())
    raise _Invalid("invalid")


def _clean_value(q: Question, value: Any, areas: tuple[Choice, ...]) -> Any:
    if q.type == "scale":
        if q.not_applicable and value == NOT_APPLICABLE:
            return NOT_APPLICABLE
        number = _as_int(value)
        if number not in q.scale.values:
            raise _Invalid("out_of_range", low=q.scale.values[0], high=q.scale.values[-1])
        return number
    if q.type == "nps":
        number = _as_int(value)
        if not 0 <= number <= 10:
            raise _Invalid("out_of_range", low=0, high=10)
        return number
    if q.type == "yesno":
        key = value.strip().lower() if isinstance(value, str) else value
        if key not in _YES_NO:
            raise _Invalid("unknown_choice")
        return _YES_NO[key]
    if q.type == "single":
        codes = {c.code for c in choices_for(q, areas)}
        if value not in codes:
            raise _Invalid("unknown_choice")
        return value
    if q.type == "multiple":
        values = (value,) if isinstance(value, str) else tuple(value)
        codes = [c.code for c in choices_for(q, areas)]
        if any(v not in codes for v in values):
            raise _Invalid("unknown_choice")
        if q.max_choices and len(set(values)) > q.max_choices:
            raise _Invalid("too_many", max=q.max_choices)
        return tuple(c for c in codes if c in values)  # definition order, no repeats
    if q.type == "text":
        if not isinstance(value, str):
            raise _Invalid("invalid")
        # Control characters (NUL among them, which PostgreSQL refuses) carry nothing.
        text = CONTROL_CHARACTERS.sub("", value).strip()
        if len(text) > q.max_length:
            raise _Invalid("too_long", max=q.max_length)
        return text
    raise _Invalid("invalid")  # unreachable: types are checked at load time


def choices_for(q: Question, areas: tuple[Choice, ...] = ()) -> tuple[Choice, ...]:
    """The choices a resident sees, with the organisation's areas where asked."""
    if q.choices_from == "areas":
        return areas + q.choices
    return q.choices


def _plain(obj: Any, skip: frozenset | set = frozenset()) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__ if name not in skip}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- parsing


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


def load_yaml(path: Path) -> Any:
    """Read a YAML file, refusing a key given twice in one mapping (YAML would keep the last)."""
    try:
        with open(path, encoding="utf-8") as fh:
            loader = yaml.SafeLoader(fh)
            try:
                node = loader.get_single_node()
                if node is None:
                    return None
                _refuse_duplicate_keys(loader, node, str(path))
                return loader.construct_document(node)
            finally:
                loader.dispose()
    except yaml.YAMLError as exc:
        raise DefinitionError(str(path), "YAML", f"syntaxe invalide ({exc})") from exc
    except OSError as exc:
        raise DefinitionError(str(path), "fichier", f"illisible ({exc.strerror})") from exc


#: Fields that name an item of a list in a fault's path (questions.courtesy, not questions[1]).
_ITEM_NAMES = ("key", "slug", "code")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _refuse_duplicate_keys(loader: yaml.SafeLoader, root: yaml.Node, source: str) -> None:
    """Raise DefinitionError at the first mapping key given twice, anywhere in the document.

    Keys are compared once read, as the document would hold them (`yes` and `true` are
    the same key). Keys a merge (`<<: *anchor`) brings in may be overridden: that is
    what a merge is for.
    """
    seen: set[int] = set()  # an alias is its anchor's node: walk each node once

    def walk(node: yaml.Node, where: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, _join(where, _item_name(item) or f"[{i}]"))
        elif isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue  # a key that is a list or a mapping is refused when the document is read
                key = loader.construct_object(key_node)
                path, line = _join(where, str(key)), key_node.start_mark.line + 1
                if key in lines:
                    raise DefinitionError(source, path, f"clé en double (ligne {line}, déjà donnée ligne {lines[key]})")
                lines[key] = line
                walk(value_node, path)

    walk(root, "")


def _item_name(node: yaml.Node) -> str | None:
    """The key, slug or code a list item gives once, to name it in a path."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for name in _ITEM_NAMES:
        values = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == name]
        if len(values) == 1 and isinstance(values[0], yaml.ScalarNode) and values[0].value:
            return values[0].value
    return None


def _join(where: str, part: str) -> str:
    if not where or part.startswith("["):
        return where + part
    return f"{where}.{part}"


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
            cleaned.append(_clean_value(question, value, ()))
        except _Invalid:
            raise r.fail(where, f"valeur impossible pour la question {target!r} : {value!r}") from None
    return ShowIf(question=target, values=tuple(cleaned))


def parse_questionnaire(doc: Any, source: str, *, parents: Mapping[str, Questionnaire] | None = None) -> Questionnaire:
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
    return Questionnaire(
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


# ------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Policy:
    slug: str
    name: str


@dataclass(frozen=True)
class Domain:
    slug: str
    name: str
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class Catalogue:
    domains: tuple[Domain, ...]

    @property
    def policies(self) -> dict[str, Policy]:
        return {p.slug: p for d in self.domains for p in d.policies}


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
            policies.append(Policy(slug=pslug, name=_name(r, p, pw)))
        domains.append(Domain(slug=dslug, name=_name(r, d, dw), policies=tuple(policies)))
    return Catalogue(domains=tuple(domains))


def _name(r: _Reader, node: Mapping, where: str) -> str:
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        raise r.fail(f"{where}.name", "nom manquant")
    return name.strip()


# -------------------------------------------------------------------- services


@dataclass(frozen=True)
class SiteDef:
    code: str
    name: str
    #: A closed site's survey says so instead of taking answers.
    open: bool = True


@dataclass(frozen=True)
class ServiceDef:
    slug: str
    name: str
    policy: str
    questionnaire: str
    sites: tuple[SiteDef, ...] = ()
    open: bool = True


@dataclass(frozen=True)
class OrganisationDef:
    slug: str
    name: str
    kind: str
    areas: tuple[Choice, ...]
    services: tuple[ServiceDef, ...]
    #: {dimension: {category: share}} population margins for weighting.
    margins: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def parse_organisation(
    doc: Any, source: str, *, catalogue: Catalogue, questionnaires: Mapping[str, Questionnaire]
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


def _used(questionnaires: Mapping[str, Questionnaire], services: list[ServiceDef]):
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


# ------------------------------------------------------------------------ bundle


@dataclass(frozen=True)
class Bundle:
    """Everything under a surveys folder, validated together."""

    catalogue: Catalogue
    questionnaires: Mapping[str, Questionnaire]
    organisations: tuple[OrganisationDef, ...]
    #: The file each questionnaire comes from, by key, to name it in later refusals.
    sources: Mapping[str, str] = field(default_factory=dict)


def load_bundle(root: Path | str) -> Bundle:
    """Read and validate a surveys folder; the first fault raises DefinitionError.

    Layout: ``catalogue.yaml``, ``questionnaires/*.yaml`` (a base before those that
    extend it) and ``services/*.yaml`` (one organisation a file).
    """
    root = Path(root)
    if not root.is_dir():
        raise DefinitionError(str(root), "dossier", "introuvable")
    cat_path = root / "catalogue.yaml"
    catalogue = parse_catalogue(load_yaml(cat_path), str(cat_path))
    docs = {p: load_yaml(p) for p in sorted((root / "questionnaires").glob("*.yaml"))}
    questionnaires: dict[str, Questionnaire] = {}
    sources: dict[str, str] = {}
    pending = dict(docs)
    # Resolve `extends` in dependency order, whatever the file names.
    while pending:
        progressed = False
        for path, doc in list(pending.items()):
            parent = doc.get("extends") if isinstance(doc, Mapping) else None
            if (
                parent
                and parent not in questionnaires
                and any(isinstance(d, Mapping) and d.get("key") == parent for d in pending.values())
            ):
                continue
            q = parse_questionnaire(doc, str(path), parents=questionnaires)
            if q.key in questionnaires:
                raise DefinitionError(str(path), "key", f"questionnaire en double {q.key!r}")
            questionnaires[q.key], sources[q.key] = q, str(path)
            del pending[path]
            progressed = True
        if not progressed:
            path = next(iter(pending))
            raise DefinitionError(str(path), "extends", "héritage circulaire entre questionnaires")
    organisations = tuple(
        parse_organisation(load_yaml(p), str(p), catalogue=catalogue, questionnaires=questionnaires)
        for p in sorted((root / "services").glob("*.yaml"))
    )
    organisation_slugs = [o.slug for o in organisations]
    if twice := sorted({s for s in organisation_slugs if organisation_slugs.count(s) > 1}):
        raise DefinitionError(
            str(root / "services"), "slug", f"collectivité présente dans deux fichiers : {', '.join(twice)}"
        )
    slugs = [s.slug for o in organisations for s in o.services]
    dupes = {s for s in slugs if slugs.count(s) > 1}
    if dupes:
        raise DefinitionError(
            str(root / "services"), "services", f"service présent dans deux fichiers : {', '.join(sorted(dupes))}"
        )
    return Bundle(catalogue=catalogue, questionnaires=questionnaires, organisations=organisations, sources=sources)


DEFAULT_ROOT = Path(__file__).resolve().parent


def questionnaire_from_dict(d: Mapping[str, Any]) -> Questionnaire:
    """Rebuild a questionnaire from its stored canonical form (`to_dict`)."""

    def text(x):
        return Text(fr=x["fr"], en=x["en"]) if x else None

    def scale(x):
        if not x:
            return None
        points = tuple(Point(value=p["value"], label=text(p["label"]), smiley=p.get("smiley")) for p in x["points"])
        return Scale(key=x["key"], points=points)

    def question(x):
        show_if = x.get("show_if")
        return Question(
            key=x["key"],
            type=x["type"],
            label=text(x["label"]),
            hint=text(x.get("hint")),
            required=x["required"],
            section=x.get("section"),
            role=x.get("role"),
            scale=scale(x.get("scale")),
            display=x.get("display", "text"),
            not_applicable=x.get("not_applicable", False),
            choices=tuple(Choice(code=c["code"], label=text(c["label"])) for c in x.get("choices", ())),
            choices_from=x.get("choices_from"),
            max_choices=x.get("max_choices"),
            max_length=x.get("max_length", TEXT_MAX_LENGTH),
            show_if=ShowIf(question=show_if["question"], values=tuple(show_if["values"])) if show_if else None,
        )

    questions = tuple(question(q) for q in d["questions"])
    return Questionnaire(
        key=d["key"],
        title=text(d["title"]),
        intro=text(d.get("intro")),
        sections=tuple(Section(key=s["key"], title=text(s["title"])) for s in d["sections"]),
        questions=questions,
        extends=d.get("extends"),
        scales={q.scale.key: q.scale for q in questions if q.scale},
    )
