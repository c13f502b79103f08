"""Synthetic but realistic demo data, with planted effects the analyses must find.

Every response is generated as raw answers, checked by `QuestionnaireDef.clean` and
written by `storage.store_responses`, exactly like a resident's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import delete, func, select

from surveys.schema import NOT_APPLICABLE, choices_for

from .extensions import db
from .models import (
    Allocation,
    Answer,
    Channel,
    Organisation,
    Priority,
    Response,
    Role,
    Service,
    User,
)
from .respond.services import get_survey, new_token
from .results import pack_services, rebuild_service
from .storage import Submission, store_responses

DEMO_ORGANISATION = "saint-aubin-des-pres"


@dataclass(frozen=True)
class Planted:
    """An effect put into the demo data on purpose."""

    kind: str
    service: str
    detail: str
    #: The attribute (over-quality, under-served) or the public (segment) concerned.
    target: str | None = None
    #: For a segment: the profile column of `target`.
    dimension: str | None = None


#: The planted effects, in one place: the command's help and the tests read them.
PLANTED = (
    Planted(
        "over_quality",
        "etat-civil",
        "accueil très bien noté mais sans effet sur la satisfaction globale",
        target="courtesy",
    ),
    Planted(
        "under_served",
        "urbanisme",
        "délais mal notés alors qu'ils pèsent le plus sur la satisfaction",
        target="waiting_time",
    ),
    Planted("declining_trend", "piscine", "satisfaction globale en baisse régulière sur toute la période"),
    Planted(
        "less_satisfied_public",
        "france-services",
        "les 75 ans et plus nettement moins satisfaits",
        target="a75_plus",
        dimension="age_band",
    ),
    # Service-level effects the director's recommendations must find.
    Planted(
        "over_quality_service",
        "conservatoire",
        "satisfaction bien au-dessus de la cible d'une politique secondaire, pour un coût par usager élevé "
        "(sur-qualité), et des horaires très bien notés mais sans effet sur la satisfaction globale",
        target="opening_hours",
    ),
    Planted(
        "under_served_service",
        "urbanisme",
        "satisfaction sous la cible d'une politique essentielle, sur ce qui compte le plus (besoins mal couverts)",
        target="waiting_time",
    ),
    Planted(
        "too_few_responses",
        "cimetiere",
        "questionnaire ouvert depuis deux mois seulement, trop peu de réponses pour conclure",
    ),
)
PLANTED_SERVICES = frozenset(p.service for p in PLANTED)

#: The strategic framework of the demo: the planted services' policies are set, every
#: other policy draws a level. Neutral services satisfy about 51 % of their users (the
#: generator's baseline), so that is their target, and chance alone rarely puts one
#: 5 points away from it; the under-served service's essential policy aims higher.
PLANTED_PRIORITIES = {
    "enseignements-artistiques": (3, 0.51),  # the over-quality service's policy
    "urbanisme-reglementaire": (1, 0.70),  # the under-served service's policy
}
NEUTRAL_TARGET = 0.51
#: A policy's floor, as a share of its last allocation, by priority level: an 8 % even
#: cut puts essential policies below theirs.
FLOOR_SHARE = {1: 0.95, 2: 0.9, 3: 0.6}
#: Lift of the over-quality service's overall score (to about 76 % satisfied).
OVER_QUALITY_LIFT = 0.8
#: The service with too few responses answers only in the last months, this many a month.
FEW_MONTHS, FEW_PER_MONTH = 2, 10

# Sample composition differs from the population margins on purpose: older people
# and men answer less, so weighting has something to correct.
AGE_BANDS = ("a15_29", "a30_44", "a45_59", "a60_74", "a75_plus", "nsp")
AGE_P = (0.15, 0.25, 0.28, 0.20, 0.07, 0.05)
SEXES = ("f", "m", "nsp")
SEX_P = (0.58, 0.37, 0.05)
AREA_P = (0.30, 0.20, 0.22, 0.18, 0.07)  # over the organisation's areas, in order
FREQUENCIES = ("first", "occasional", "regular", "nsp")
FREQUENCY_P = (0.2, 0.5, 0.25, 0.05)
CHANNELS = (Channel.qr, Channel.link, Channel.sms, Channel.email)
CHANNEL_P = (0.55, 0.25, 0.1, 0.1)
NOT_APPLICABLE_RATE = 0.05
HALO = 0.3  # correlation between attributes: residents who like one thing like others

COMMENTS = (
    "Personnel très aimable, merci.",
    "Beaucoup trop d'attente ce matin.",
    "Les horaires ne sont pas adaptés quand on travaille.",
    "Rien à redire, service efficace.",
    "Les informations sur le site internet ne sont pas à jour.",
    "Il faudrait plus de places de stationnement à proximité.",
    "Démarche rapide et simple.",
    "Je n'ai pas compris quels documents apporter.",
    "Merci de me rappeler au 06 12 34 56 78 pour mon dossier.",
    "Écrivez-moi à jean.dupont@example.org, je n'ai pas eu de réponse.",
)


def _month_starts(months: int, end: date) -> list[date]:
    """The first days of the `months` months before the month of `end`, oldest first.

    The month of `end` itself is left out: spreading its responses over the whole
    month would date some of them after `end`.
    """
    out = []
    y, m = end.year, end.month
    for _ in range(months):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        out.append(date(y, m, 1))
    return out[::-1]


def _design(service: str, drivers: tuple[str, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean rating (performance) and weight in overall (importance) of each attribute.

    Without a planted effect the two go together (what matters is done well), so an
    importance-performance analysis finds nothing to redeploy.
    """
    k = len(drivers)
    ranks = rng.permutation(k) / max(k - 1, 1)
    beta = 0.08 + 0.32 * ranks
    mu = 3.3 + 1.0 * ranks
    for p in PLANTED:
        if p.service == service and p.target in drivers:
            j = drivers.index(p.target)
            if p.kind in ("over_quality", "over_quality_service"):
                beta[j], mu[j] = 0.0, 4.7
            elif p.kind in ("under_served", "under_served_service"):
                beta[j], mu[j] = 0.65, 2.3
    return mu, beta


def generate(
    *,
    seed: int = 1,
    months: int = 24,
    per_month: int = 3000,
    end: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    organisation: str = DEMO_ORGANISATION,
) -> int:
    """Fill the demo commune (or another loaded `organisation`, by slug: its services get
    the same design, without planted effects unless they bear a planted service's slug)
    with responses over the `months` full months before the month of `end` (default:
    now), then packs those months of the read model; returns how many were stored."""
    rng = np.random.default_rng(seed)
    org = db.session.execute(select(Organisation).where(Organisation.slug == organisation)).scalar_one_or_none()
    if org is None:
        raise ValueError(
            "la commune de démonstration n'est pas chargée : lancez d'abord `flask barometer load-surveys`"
            if organisation == DEMO_ORGANISATION
            else f"la collectivité {organisation} n'est pas chargée"
        )
    services = [
        s
        for s in db.session.execute(
            select(Service).where(Service.organisation_id == org.id, Service.is_open.is_(True)).order_by(Service.slug)
        ).scalars()
    ]
    contexts = {s.slug: get_survey(s.slug) for s in services}
    site_ids = {s.slug: [site.id for site in s.sites] for s in services}
    area_codes = [a["code"] for a in org.areas]
    area_p = np.array(AREA_P[: len(area_codes)] + (0.01, 0.02))
    area_p /= area_p.sum()
    areas = tuple(area_codes) + ("outside", "nsp")
    # Busier services get more answers; the total per month is about `per_month`.
    weights = rng.uniform(0.5, 1.5, len(services))
    weights[[i for i, s in enumerate(services) if s.slug in PLANTED_SERVICES]] = 1.6
    lam = per_month * weights / weights.sum()
    few = {p.service for p in PLANTED if p.kind == "too_few_responses"}
    lam[[i for i, s in enumerate(services) if s.slug in few]] = FEW_PER_MONTH
    designs = {s.slug: _design(s.slug, contexts[s.slug].questionnaire.drivers, rng) for s in services}
    month_list = _month_starts(months, (end or datetime.now(UTC)).date())
    stored = 0
    for m_index, month in enumerate(month_list):
        subs: list[Submission] = []
        for s_index, service in enumerate(services):
            n = int(rng.poisson(lam[s_index]))
            if service.slug in few and m_index < len(month_list) - FEW_MONTHS:
                n = 0
            if n:
                subs.extend(
                    _service_month(
                        rng,
                        service,
                        contexts[service.slug],
                        designs[service.slug],
                        site_ids[service.slug],
                        n,
                        month,
                        m_index,
                        len(month_list),
                        areas,
                        area_p,
                    )
                )
        stored += store_responses(subs)
        if progress:
            progress(m_index + 1, len(month_list))
    # Its months are past: packed now for the pages' first reader.
    pack_services([s.id for s in services])
    return stored


def _service_month(rng, service, context, design, sites, n, month, m_index, n_months, areas, area_p):
    q = context.questionnaire
    drivers = q.drivers
    mu, beta = design
    k = len(drivers)
    # Latent attribute scores with a common "halo" factor.
    halo = rng.standard_normal((n, 1))
    latent = np.sqrt(HALO) * halo + np.sqrt(1 - HALO) * rng.standard_normal((n, k))
    ratings = np.clip(np.rint(mu + 0.9 * latent), 1, 5).astype(int)
    age = rng.choice(AGE_BANDS, n, p=AGE_P)
    sex = rng.choice(SEXES, n, p=SEX_P)
    area = rng.choice(areas, n, p=area_p)
    frequency = rng.choice(FREQUENCIES, n, p=FREQUENCY_P)
    score = 3.55 + latent @ beta + 0.55 * rng.standard_normal(n)
    for p in PLANTED:
        if p.service != service.slug:
            continue
        if p.kind == "declining_trend":
            score += -0.045 * (m_index - (n_months - 1) / 2)
        elif p.kind == "less_satisfied_public":
            score -= 1.2 * (age == p.target)
        elif p.kind == "over_quality_service":
            score += OVER_QUALITY_LIFT
    overall = np.clip(np.rint(score), 1, 5).astype(int)
    na = rng.random((n, k)) < NOT_APPLICABLE_RATE
    recommend = np.clip(np.rint(2.2 * overall - 1 + rng.normal(0, 1.2, n)), 0, 10).astype(int)
    days = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - month
    offsets = rng.uniform(0, days.days * 86400, n)
    comment_pick = rng.integers(0, len(COMMENTS), n)
    has_comment = rng.random(n) < 0.15
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    site_pick = rng.integers(0, max(len(sites), 1), n)
    stated_p = beta / beta.sum() if beta.sum() else None
    stated_codes = _choice_codes(q, "important_attributes")
    extras = _extras(q, context.areas)
    subs = []
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    for i in range(n):
        raw = {
            "overall": int(overall[i]),
            "recommend": int(recommend[i]),
            "age_band": age[i],
            "sex": sex[i],
            "area": area[i],
            "frequency": frequency[i],
        }
        for j, key in enumerate(drivers):
            raw[key] = NOT_APPLICABLE if na[i, j] else int(ratings[i, j])
        if stated_p is not None and rng.random() < 0.6:
            chosen = rng.choice(k, size=min(3, k), replace=False, p=stated_p)
            codes = [drivers[j] for j in chosen if drivers[j] in stated_codes]
            if codes:
                raw["important_attributes"] = codes
        if has_comment[i]:
            raw["comment"] = COMMENTS[comment_pick[i]]
        for key, maker in extras:
            value = maker(rng, raw)
            if value is not None:
                raw[key] = value
        answers, errors = q.clean(raw, areas=context.areas)
        if errors:  # the generator must respect the definition like anyone else
            raise ValueError(f"réponse de démonstration invalide pour {service.slug} : {errors}")
        subs.append(
            Submission(
                service_id=context.service_id,
                site_id=sites[site_pick[i]] if sites else None,
                version_id=context.version_id,
                token=new_token(),
                questionnaire=q,
                answers=answers,
                channel=CHANNELS[channel[i]],
                submitted_at=start + timedelta(seconds=float(offsets[i])),
            )
        )
    return subs


def _choice_codes(q, key: str) -> set[str]:
    try:
        return {c.code for c in q.question(key).choices}
    except KeyError:
        return set()


def _extras(q, areas=()):
    """Plausible answers to the non-driver questions of service extensions; a question
    on the organisation's areas (`choices_from: areas`) picks among them too."""
    out = []
    for question in q.questions:
        if question.role is not None or question.key in {"overall", "recommend", "comment", "important_attributes"}:
            continue
        if question.type == "yesno":
            out.append((question.key, lambda rng, raw: int(rng.random() < 0.3)))
        elif question.type in ("single", "multiple"):
            codes = [c.code for c in choices_for(question, areas)]
            cond = question.show_if

            def pick(rng, raw, codes=codes, cond=cond, multiple=question.type == "multiple"):
                if cond and raw.get(cond.question) not in cond.values:
                    return None
                if multiple:
                    return list(rng.choice(codes, size=int(rng.integers(1, len(codes) + 1)), replace=False))
                return codes[int(rng.integers(0, len(codes)))]

            out.append((question.key, pick))
    return out


def add_allocations(rng, service_id: int, base: float, fte: float, volume: int, *, years: int, last_year: int) -> float:
    """A service's allocations for the `years` years up to `last_year`, drifting by about
    1 % a year from `base` euros, `fte` staff and `volume` users; returns the last
    year's budget."""
    for k, year in enumerate(range(last_year - years + 1, last_year + 1)):
        drift = (1 + rng.normal(0.01, 0.02)) ** k
        db.session.add(
            Allocation(
                service_id=service_id,
                year=year,
                budget_eur=Decimal(f"{base * drift:.2f}"),
                staff_fte=Decimal(f"{fte * drift:.2f}"),
                volume=int(volume * drift),
            )
        )
    return base * drift


def add_budgets(*, seed: int = 1, years: int = 3, last_year: int | None = None) -> None:
    """Allocations (budget, staff, volume) for each demo service, and policy priorities."""
    rng = np.random.default_rng(seed + 1000)
    last_year = last_year or datetime.now(UTC).year
    org = db.session.execute(select(Organisation).where(Organisation.slug == DEMO_ORGANISATION)).scalar_one()
    services = (
        db.session.execute(select(Service).where(Service.organisation_id == org.id).order_by(Service.slug))
        .scalars()
        .all()
    )
    db.session.execute(delete(Allocation).where(Allocation.service_id.in_([s.id for s in services])))
    over_quality = {p.service for p in PLANTED if p.kind == "over_quality_service"}
    last_budget: dict[int, float] = {}
    for s in services:
        base = float(rng.uniform(150_000, 2_500_000))
        if s.slug == "etat-civil":  # over-quality costs money
            base *= 1.4
        fte = base / 55_000
        volume = int(rng.uniform(2_000, 60_000))
        if s.slug in over_quality:  # a costly service for few users: over 1,000 € each
            base, volume = max(base, 1_500_000.0), 1_200
        # The last year's budget sets the policy's floor.
        last = add_allocations(rng, s.id, base, fte, volume, years=years, last_year=last_year)
        last_budget[s.policy_id] = last_budget.get(s.policy_id, 0.0) + last
    prioritised = set(db.session.execute(select(Priority.policy_id)).scalars())
    slugs = {s.policy_id: s.policy.slug for s in services}
    for pid in sorted({s.policy_id for s in services} - prioritised):
        level = int(rng.integers(1, 4))
        level, target = PLANTED_PRIORITIES.get(slugs[pid], (level, NEUTRAL_TARGET))
        db.session.add(
            Priority(
                policy_id=pid,
                level=level,
                floor_eur=Decimal(f"{FLOOR_SHARE[level] * last_budget[pid]:.2f}"),
                satisfaction_target=target,
                deadline=date(last_year + 1, 12, 31),
            )
        )
    db.session.commit()


def add_users() -> dict[str, str]:
    """Demo staff accounts with random passwords; returns {e-mail: password}."""
    org = db.session.execute(select(Organisation).where(Organisation.slug == DEMO_ORGANISATION)).scalar_one()
    accounts = {
        "admin@demo.invalid": Role.admin,
        "direction@demo.invalid": Role.director,
        "piscine@demo.invalid": Role.manager,
    }
    out = {}
    for email, role in accounts.items():
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is None:
            user = User(email=email, role=role, organisation_id=org.id)
            db.session.add(user)
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        if role == Role.manager:
            user.services = list(db.session.execute(select(Service).where(Service.slug == "piscine")).scalars())
        out[email] = password
    db.session.commit()
    return out


def has_responses(*, beyond_demo: bool = False) -> bool:
    """Whether the database holds any response (`beyond_demo`: of another organisation
    than the demo commune)."""
    query = select(func.count()).select_from(Response)
    if beyond_demo:
        query = query.where(Response.service_id.not_in(_demo_services()))
    return db.session.execute(query).scalar_one() > 0


def _demo_services():
    """The ids of the demo commune's services, as a subquery."""
    return select(Service.id).join(Service.organisation).where(Organisation.slug == DEMO_ORGANISATION)


def delete_responses() -> int:
    """Delete the responses of the demo commune's services, and only them; returns how many."""
    services = _demo_services()
    responses = select(Response.id).where(Response.service_id.in_(services))
    count = db.session.execute(select(func.count()).select_from(responses.subquery())).scalar_one()
    db.session.execute(delete(Answer).where(Answer.response_id.in_(responses)))
    db.session.execute(delete(Response).where(Response.service_id.in_(services)))
    connection = db.session.connection()
    for service_id in db.session.execute(services).scalars().all():  # their results, emptied with them
        rebuild_service(connection, service_id)
    db.session.commit()
    return count
