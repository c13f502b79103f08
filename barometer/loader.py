"""Upsert validated survey definitions (surveys/) into the database."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select

from surveys.schema import Bundle, load_bundle

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

    def lines(self) -> list[str]:
        out = [f"créé : {x}" for x in self.created]
        out += [f"nouvelle version : {x}" for x in self.new_versions]
        return out or ["aucun changement"]

    def summary(self) -> list[str]:
        """A few lines for the console: counts of what was created, then the rest."""
        kinds: dict[str, int] = {}
        for item in self.created:
            kind = item.split(" ", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        out = [f"créés : {', '.join(f'{n} × {kind}' for kind, n in kinds.items())}"] if kinds else []
        out += [f"nouvelle version : {x}" for x in self.new_versions]
        return out or ["aucun changement"]


def load_surveys(root: Path | str) -> LoadReport:
    """Validate a whole surveys folder, then upsert it in one transaction.

    Validation happens before any write, so a bad file changes nothing.
    """
    bundle = load_bundle(root)
    report = LoadReport()
    try:
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
            service.policy, service.questionnaire, service.is_open = (
                policies[s.policy],
                questionnaires[s.questionnaire],
                s.open,
            )
            db.session.flush()
            for site_def in s.sites:
                site = _get_or_new(
                    Site, report, f"site {s.slug}/{site_def.code}", service_id=service.id, code=site_def.code
                )
                site.name = site_def.name
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


def _upsert_version(q: Questionnaire, definition, report: LoadReport) -> None:
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
