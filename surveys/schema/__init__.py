"""Survey definitions as data: frozen dataclasses, parsed and validated from YAML.

Pure Python (no Flask): the web form, the demo generator and the import paths all read
the same objects, and `QuestionnaireDef.clean` is the one place where an answer is judged
valid. The modules, from the bottom up:

- `vocabulary`: the words a definition may use, and those it may not take;
- `cleaning`: raw answers judged against a questionnaire;
- `definitions`: the frozen data classes;
- `parsing`: YAML documents turned into definitions, each fault named by its place;
- `reading`: YAML files and a whole surveys folder.
"""

from .cleaning import choices_for
from .definitions import (
    Bundle,
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
    questionnaire_from_dict,
)
from .parsing import DefinitionError, parse_catalogue, parse_organisation, parse_questionnaire
from .reading import DEFAULT_ROOT, load_bundle, load_yaml
from .vocabulary import (
    CHOICE_SOURCES,
    KEY_PATTERN,
    LANGUAGES,
    NOT_APPLICABLE,
    ORGANISATION_KINDS,
    PREFER_NOT_TO_SAY,
    PROFILE_KEYS,
    QUESTION_TYPES,
    RESERVED_QUESTION_KEYS,
    RESERVED_QUESTION_PREFIX,
    RESERVED_SITE_CODES,
    SCALE_DISPLAYS,
    SLUG_PATTERN,
    TEXT_MAX_LENGTH,
)

__all__ = [
    "CHOICE_SOURCES",
    "DEFAULT_ROOT",
    "KEY_PATTERN",
    "LANGUAGES",
    "NOT_APPLICABLE",
    "ORGANISATION_KINDS",
    "PREFER_NOT_TO_SAY",
    "PROFILE_KEYS",
    "QUESTION_TYPES",
    "RESERVED_QUESTION_KEYS",
    "RESERVED_QUESTION_PREFIX",
    "RESERVED_SITE_CODES",
    "SCALE_DISPLAYS",
    "SLUG_PATTERN",
    "TEXT_MAX_LENGTH",
    "Bundle",
    "Catalogue",
    "Choice",
    "DefinitionError",
    "DomainDef",
    "OrganisationDef",
    "Point",
    "PolicyDef",
    "Question",
    "QuestionnaireDef",
    "Scale",
    "Section",
    "ServiceDef",
    "ShowIf",
    "SiteDef",
    "Text",
    "choices_for",
    "load_bundle",
    "load_yaml",
    "parse_catalogue",
    "parse_organisation",
    "parse_questionnaire",
    "questionnaire_from_dict",
]
