"""Answer cleaning: raw answers, from a form or typed, judged against a questionnaire."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .vocabulary import NOT_APPLICABLE

if TYPE_CHECKING:
    from .definitions import Choice, Question, QuestionnaireDef

#: How a yes/no answer may arrive; True and False hash as 1 and 0, so they are covered too.
_YES_NO = {"1": 1, "0": 0, "yes": 1, "no": 0, "oui": 1, "non": 0, 1: 1, 0: 0}
#: Removed from free text: every control character but tab and newline.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_answers(
    questionnaire: QuestionnaireDef, raw: Mapping[str, Any], *, areas: tuple[Choice, ...] = ()
) -> tuple[dict[str, Any], dict[str, tuple[str, dict]]]:
    """The work of `QuestionnaireDef.clean`, which says what it returns."""
    answers: dict[str, Any] = {}
    errors: dict[str, tuple[str, dict]] = {}
    for q in questionnaire.questions:
        value = raw.get(q.key)
        if _blank(value):
            if q.required:
                errors[q.key] = ("required", {})
            continue
        try:
            answers[q.key] = clean_value(q, value, areas)
        except InvalidAnswer as exc:
            errors[q.key] = (exc.code, exc.params)
    # A follow-up answered while its condition is not met is dropped, not refused:
    # without JavaScript every follow-up is on the page.
    for q in questionnaire.questions:
        if q.show_if and q.key in answers and answers.get(q.show_if.question) not in q.show_if.values:
            del answers[q.key]
    return answers, errors


class InvalidAnswer(Exception):
    """An answer refused: `code` and `params` say why, for the caller to word."""

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
        raise InvalidAnswer("invalid")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,3}", value.strip()):
        return int(value.strip())
    raise InvalidAnswer("invalid")


def clean_value(q: Question, value: Any, areas: tuple[Choice, ...]) -> Any:
    """One answer as stored (see `QuestionnaireDef.clean`); raises InvalidAnswer."""
    if q.type == "scale":
        if q.not_applicable and value == NOT_APPLICABLE:
            return NOT_APPLICABLE
        number = _as_int(value)
        if number not in q.scale.values:
            raise InvalidAnswer("out_of_range", low=q.scale.values[0], high=q.scale.values[-1])
        return number
    if q.type == "nps":
        number = _as_int(value)
        if not 0 <= number <= 10:
            raise InvalidAnswer("out_of_range", low=0, high=10)
        return number
    if q.type == "yesno":
        key = value.strip().lower() if isinstance(value, str) else value
        if key not in _YES_NO:
            raise InvalidAnswer("unknown_choice")
        return _YES_NO[key]
    if q.type == "single":
        codes = {c.code for c in choices_for(q, areas)}
        if value not in codes:
            raise InvalidAnswer("unknown_choice")
        return value
    if q.type == "multiple":
        values = (value,) if isinstance(value, str) else tuple(value)
        codes = [c.code for c in choices_for(q, areas)]
        if any(v not in codes for v in values):
            raise InvalidAnswer("unknown_choice")
        if q.max_choices and len(set(values)) > q.max_choices:
            raise InvalidAnswer("too_many", max=q.max_choices)
        return tuple(c for c in codes if c in values)  # definition order, no repeats
    if q.type == "text":
        if not isinstance(value, str):
            raise InvalidAnswer("invalid")
        # Control characters (NUL among them, which PostgreSQL refuses) carry nothing.
        text = CONTROL_CHARACTERS.sub("", value).strip()
        if len(text) > q.max_length:
            raise InvalidAnswer("too_long", max=q.max_length)
        return text
    raise InvalidAnswer("invalid")  # unreachable: types are checked at load time


def choices_for(q: Question, areas: tuple[Choice, ...] = ()) -> tuple[Choice, ...]:
    """The choices a resident sees, with the organisation's areas where asked."""
    if q.choices_from == "areas":
        return areas + q.choices
    return q.choices
