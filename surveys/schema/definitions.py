"""The definitions' frozen data classes: a questionnaire, the catalogue of domains and
policies, an organisation with its services and sites, and the bundle of a surveys folder.

A class named ``...Def`` defines what the loader writes as the database model of the same
name without the suffix: `QuestionnaireDef` becomes a `Questionnaire` and its versions,
`ServiceDef` a `Service`, and so on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .cleaning import clean_answers
from .vocabulary import TEXT_MAX_LENGTH


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
class QuestionnaireDef:
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
        return clean_answers(self, raw, areas=areas)


def questionnaire_from_dict(d: Mapping[str, Any]) -> QuestionnaireDef:
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
    return QuestionnaireDef(
        key=d["key"],
        title=text(d["title"]),
        intro=text(d.get("intro")),
        sections=tuple(Section(key=s["key"], title=text(s["title"])) for s in d["sections"]),
        questions=questions,
        extends=d.get("extends"),
        scales={q.scale.key: q.scale for q in questions if q.scale},
    )


def _plain(obj: Any, skip: frozenset | set = frozenset()) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__ if name not in skip}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class PolicyDef:
    """A public policy of the catalogue."""

    slug: str
    name: str


@dataclass(frozen=True)
class DomainDef:
    """A domain of the catalogue, with its policies in order."""

    slug: str
    name: str
    policies: tuple[PolicyDef, ...]


@dataclass(frozen=True)
class Catalogue:
    """The domains and their policies (catalogue.yaml)."""

    domains: tuple[DomainDef, ...]

    @property
    def policies(self) -> dict[str, PolicyDef]:
        return {p.slug: p for d in self.domains for p in d.policies}


@dataclass(frozen=True)
class SiteDef:
    """A counter or place of a service, where a QR code hangs."""

    code: str
    name: str
    #: A closed site's survey says so instead of taking answers.
    open: bool = True


@dataclass(frozen=True)
class ServiceDef:
    """A public service residents use, its policy and its questionnaire, by key."""

    slug: str
    name: str
    policy: str
    questionnaire: str
    sites: tuple[SiteDef, ...] = ()
    open: bool = True


@dataclass(frozen=True)
class OrganisationDef:
    """A collectivité and its services (one file under services/)."""

    slug: str
    name: str
    kind: str
    areas: tuple[Choice, ...]
    services: tuple[ServiceDef, ...]
    #: {dimension: {category: share}} population margins for weighting.
    margins: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Bundle:
    """Everything under a surveys folder, validated together."""

    catalogue: Catalogue
    questionnaires: Mapping[str, QuestionnaireDef]
    organisations: tuple[OrganisationDef, ...]
    #: The file each questionnaire comes from, by key, to name it in later refusals.
    sources: Mapping[str, str] = field(default_factory=dict)
