"""Reading: YAML files and a surveys folder, read and handed to the parsers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .definitions import Bundle, QuestionnaireDef
from .parsing import DefinitionError, parse_catalogue, parse_organisation, parse_questionnaire

#: The project's own surveys folder.
DEFAULT_ROOT = Path(__file__).resolve().parent.parent


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
    questionnaires: dict[str, QuestionnaireDef] = {}
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
