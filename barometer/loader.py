"""Upsert validated survey definitions (surveys/) into the database."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from surveys.schema import Bundle, DefinitionError, OrganisationDef, QuestionnaireDef, SiteDef, load_bundle

from .extensions import db
from .models import (
    Domain,
    Organisation,
    OrganisationKind,
    Policy,
    PopulationMargin,
    Questionnaire,
    QuestionnaireVersion,
    Service,
    Site,
)


@dataclass
class LoadReport:
    """What a load changed, for the command's summary."""

    created: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    #: Services and sites their file no longer lists: closed, never deleted (their
    #: responses stay).
    closed: list[str] = field(default_factory=list)
    #: Services and sites closed before, opened again by their file.
    reopened: list[str] = field(default_factory=list)
    #: Rows their file no longer lists and no response refers to (population margins).
    deleted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"créé : {x}" for x in self.created]
        out += [f"nouvelle version : {x}" for x in self.new_versions]
        out += [f"fermé : {x}" for x in self.closed]
        out += [f"rouvert : {x}" for x in self.reopened]
        out += [f"supprimé : {x}" for x in self.deleted]
        return out or ["aucun changement"]

    def summary(self) -> list[str]:
        """A few lines for the console: counts of what was created or deleted, then the rest."""
        out = [f"créés : {_counts(self.created)}"] if self.created else []
        out += [f"nouvelle version : {x}" for x in self.new_versions]
        out += [f"fermé : {x}" for x in self.closed]
        out += [f"rouvert : {x}" for x in self.reopened]
        out += [f"supprimés : {_counts(self.deleted)}"] if self.deleted else []
        return out or ["aucun changement"]


def _counts(items: list[str]) -> str:
    """Counts by kind, "2 × service, 1 × site", of labels that start with their kind."""
    kinds: dict[str, int] = {}
    for item in items:
        kind = item.split(" ", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n} × {kind}" for kind, n in kinds.items())


def load_surveys(root: Path | str) -> LoadReport:
    """Validate a whole surveys folder, then upsert it in one transaction.

    Validation happens before any write, so a bad file changes nothing.
    """
    bundle = load_bundle(root)
    report = LoadReport()
    try:
        _refuse_type_changes(bundle)
        _upsert(bundle, report)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return report


def _get_or_new(model, report: LoadReport, label: str, **key):
    obj = db.session.execute(select(model).filter_by(**key)).scalar_one_or_none()
    if obj is None:
        obj = model(**key)
        db.session.add(obj)
        report.created.append(label)
    return obj


def _upsert(bundle: Bundle, report: LoadReport) -> None:
    policies: dict[str, Policy] = {}
    for d_pos, d in enumerate(bundle.catalogue.domains):
        domain = _get_or_new(Domain, report, f"domaine {d.slug}", slug=d.slug)
        domain.name, domain.position = d.name, d_pos
        for p_pos, p in enumerate(d.policies):
            policy = _get_or_new(Policy, report, f"politique {p.slug}", slug=p.slug)
            policy.name, policy.position, policy.domain = p.name, p_pos, domain
            policies[p.slug] = policy

    questionnaires: dict[str, Questionnaire] = {}
    for key, definition in bundle.questionnaires.items():
        q = _get_or_new(Questionnaire, report, f"questionnaire {key}", key=key)
        db.session.flush()
        _upsert_version(q, definition, report)
        questionnaires[key] = q

    for o in bundle.organisations:
        org = _get_or_new(Organisation, report, f"collectivité {o.slug}", slug=o.slug)
        org.name, org.kind = o.name, OrganisationKind(o.kind)
        org.areas = [asdict(a) for a in o.areas]
        db.session.flush()
        for s in o.services:
            service = _get_or_new(Service, report, f"service {s.slug}", slug=s.slug)
            service.name, service.organisation = s.name, org
            service.policy, service.questionnaire = policies[s.policy], questionnaires[s.questionnaire]
            _set_open(service, s.open, f"service {s.slug}", report)
            db.session.flush()
            for site_def in s.sites:
                site = _get_or_new(
                    Site, report, f"site {s.slug}/{site_def.code}", service_id=service.id, code=site_def.code
                )
                site.name = site_def.name
                _set_open(site, site_def.open, f"site {s.slug}/{site_def.code}", report)
            _close_unlisted_sites(service, s.sites, report)
        for dim, shares in o.margins.items():
            for category, share in shares.items():
                m = _get_or_new(
                    PopulationMargin,
                    report,
                    f"marge {o.slug} {dim}={category}",
                    organisation_id=org.id,
                    dimension=dim,
                    category=category,
                )
                m.share = share
        _delete_unlisted_margins(org, o, report)
    _close_unlisted_services(bundle, report)


def _set_open(row: Service | Site, is_open: bool, label: str, report: LoadReport) -> None:
    """Open or close a service or site as its file says; a change of state is reported
    (a new row is reported as created, open or not)."""
    if row.id is not None and row.is_open != is_open:
        (report.reopened if is_open else report.closed).append(label)
    row.is_open = is_open


def _close_unlisted_services(bundle: Bundle, report: LoadReport) -> None:
    """Close the services an organisation's file no longer lists.

    Closed, not deleted: their responses stay, and the survey says it is closed.
    Services may move between files, so a service is unlisted only if no file lists it.
    """
    listed = [s.slug for o in bundle.organisations for s in o.services]
    unlisted = db.session.execute(
        select(Service)
        .join(Organisation)
        .where(Organisation.slug.in_([o.slug for o in bundle.organisations]), Service.slug.not_in(listed))
        .order_by(Service.slug)
    ).scalars()
    for service in unlisted:
        _set_open(service, False, f"service {service.slug}", report)


def _close_unlisted_sites(service: Service, listed: tuple[SiteDef, ...], report: LoadReport) -> None:
    """Close the sites a service's file no longer lists; their responses stay."""
    codes = [site.code for site in listed]
    for site in db.session.execute(
        select(Site).where(Site.service_id == service.id, Site.code.not_in(codes)).order_by(Site.code)
    ).scalars():
        _set_open(site, False, f"site {service.slug}/{site.code}", report)


def _delete_unlisted_margins(org: Organisation, definition: OrganisationDef, report: LoadReport) -> None:
    """Delete the margins the file no longer gives, so that each dimension sums as in the file."""
    listed = {(dim, category) for dim, shares in definition.margins.items() for category in shares}
    margins = db.session.execute(
        select(PopulationMargin)
        .where(PopulationMargin.organisation_id == org.id)
        .order_by(PopulationMargin.dimension, PopulationMargin.category)
    ).scalars()
    for m in margins:
        if (m.dimension, m.category) not in listed:
            db.session.delete(m)
            report.deleted.append(f"marge {definition.slug} {m.dimension}={m.category}")


def _refuse_type_changes(bundle: Bundle) -> None:
    """Refuse a new version that gives a question key another type than an earlier version.

    Answers are compared over time by key: a key that was a scale and becomes a yes/no
    would mix values that mean different things. Labels and scale points may change
    (a new version, a break in the series); a new type needs a new key. Checked before
    any write, like the files themselves.
    """
    rows = {
        q.key: q
        for q in db.session.execute(
            select(Questionnaire)
            .where(Questionnaire.key.in_(list(bundle.questionnaires)))
            .options(selectinload(Questionnaire.versions))
        ).scalars()
    }
    # In the bundle's order: a base questionnaire before the ones that extend it, so a
    # change to a core question is blamed on the core's file.
    for key, definition in bundle.questionnaires.items():
        row = rows.get(key)
        if row is None or not row.versions or row.current.checksum == definition.checksum:
            continue
        types = definition.types
        for version in reversed(row.versions):
            for question in version.definition["questions"]:
                old, new = question["type"], types.get(question["key"], question["type"])
                if new != old:
                    raise DefinitionError(
                        bundle.sources.get(key, f"questionnaire {key}"),
                        f"questions.{question['key']}.type",
                        f"type de question changé de {old} à {new} (version {version.number}) : "
                        "les réponses ne seraient plus comparables, utilisez une nouvelle clé",
                    )


def _upsert_version(q: Questionnaire, definition: QuestionnaireDef, report: LoadReport) -> None:
    """A changed definition always gets a new version.

    Versions are never edited in place, even before their first response: a worker
    may still be storing answers under the version it read a moment ago.
    """
    checksum = definition.checksum
    latest = q.versions[-1] if q.versions else None
    if latest is not None and latest.checksum == checksum:
        return
    number = 1 if latest is None else latest.number + 1
    db.session.add(
        QuestionnaireVersion(questionnaire=q, number=number, checksum=checksum, definition=definition.to_dict())
    )
    if latest is not None:
        report.new_versions.append(f"questionnaire {q.key} v{number}")
