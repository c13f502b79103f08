"""The words a survey definition may use: languages, question types, special choice
codes, and the keys and codes a definition may not take."""

import re

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
