"""What the director's pages and commands read: per-service inputs of the redeployment
analysis, from the results read model and the strategic framework.

The share satisfied of each service comes from the read model's cells
(`results.cells_frame`) through `analysis.cells`, raked to the organisation's population
margins when it has them, never from the answers table. `analysis` is imported
when a function runs, not with this module: it loads scipy and statsmodels, which an app
start must not pay for.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from flask_babel import force_locale
from sqlalchemy import func, select, true
from sqlalchemy.orm import joinedload

from .. import results
from ..caching import Lru
from ..extensions import db
from ..models import Allocation, Organisation, Policy, Priority, Role, Service, User


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; it is translated where shown."""
    return message


#: The remarks of `SteeringInputs.notes`, in French; pages show them translated.
NOTE_MESSAGES = {
    "no_margins": N_("Réponses non pondérées : la collectivité n'a pas saisi les marges de sa population."),
    "unraked": N_(
        "%(n)s estimation(s) non pondérée(s) : l'échantillon ne permet pas de les redresser sur les marges de la "
        "population (une catégorie sans répondant)."
    ),
}

#: Profile columns tested for publics left behind (`analysis.cells.segment_gaps`).
PUBLIC_COLUMNS = ("age_band", "sex", "area", "frequency")
#: The flags of an estimate that may be shown (`analysis.estimates`); the others are
#: suppressed (too few responses).
PUBLISHED = ("ok", "caution")
#: The estimate of a service without responses in the year: never published.
_EMPTY = {"value": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0, "n_eff": 0.0, "flag": "hidden"}


def may_steer(user: User) -> bool:
    """Whether a user may see the director's pages: directors and admins only."""
    return user.is_authenticated and user.role in (Role.director, Role.admin)


def organisation_filter(user: User | None):
    """The SQL condition on Service for a director's scope: their organisation's
    services, or every organisation's when they belong to none (or from the command
    line, `user` None)."""
    if user is None or user.organisation_id is None:
        return true()
    return Service.organisation_id == user.organisation_id


def organisations_in_scope(user: User | None) -> list[Organisation]:
    """The organisations a director sees."""
    query = select(Organisation).order_by(Organisation.name)
    if user is not None and user.organisation_id is not None:
        query = query.where(Organisation.id == user.organisation_id)
    return list(db.session.execute(query).scalars())


def services_in_scope(user: User | None) -> list[Service]:
    """The services a director sees, with their policy and domain loaded, in catalogue order."""
    query = (
        select(Service)
        .join(Policy, Policy.id == Service.policy_id)
        .where(organisation_filter(user))
        .options(joinedload(Service.policy).joinedload(Policy.domain), joinedload(Service.organisation))
    )
    services = list(db.session.execute(query).unique().scalars())
    services.sort(key=lambda s: (s.policy.domain.position, s.policy.position, s.name))
    return services


def latest_year(service_ids) -> int | None:
    """The last year with an allocation among these services (the year steered by default)."""
    ids = list(service_ids)
    if not ids:
        return None
    return db.session.execute(select(func.max(Allocation.year)).where(Allocation.service_id.in_(ids))).scalar()


@dataclass(frozen=True)
class SteeringInputs:
    """The inputs of `analysis.redeploy` for one year.

    Attributes
    ----------
    year : int or None
        The year (None when no allocation exists).
    services : pandas.DataFrame
        One row per service: ``service`` (slug), ``name, organisation, domain,
        domain_name, policy, policy_name, priority, target, floor_eur, deadline,
        budget_eur, fte, volume, budget_previous``, the share satisfied on ``overall``
        (``value, se, ci_low, ci_high, n, n_eff, flag``), ``weighted`` (raked to the
        margins), ``under_served_publics`` (labels of publics significantly less
        satisfied), ``under_served_attributes`` (keys of the attributes residents
        weigh most and rate low: the importance-performance quadrant "concentrate
        here"), ``effort_savings`` (keys of the attributes rated far above what they
        weigh, where effort can be saved, largest excess first:
        `analysis.redeploy.effort_savings`), ``value_previous, se_previous`` (last year's).
    history : pandas.DataFrame
        ``service, year, budget_eur, value, se`` for every year with an allocation: the
        panel `analysis.redeploy.elasticity` fits.
    policies : pandas.DataFrame
        One row per organisation, policy and year of the history: ``organisation_id,
        policy, year, value, se, ci_low, ci_high, n, n_eff, flag``, the share satisfied
        of the policy's services' users together (its own raking).
    notes : tuple of (str, int)
        Remarks as (code, count): ``("no_margins", 0)`` (estimates unweighted: no
        population margins), ``("unraked", k)`` (k estimates the sample could not rake).
    attribute_labels : mapping
        The French labels of the attributes named in ``services``, by key (for the
        recommendations' sentences).
    """

    year: int | None
    services: pd.DataFrame
    history: pd.DataFrame
    policies: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    attribute_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether no service in scope has a budget for the year."""
        return self.services.empty or not (self.services["budget_eur"].fillna(0) > 0).any()

    def scenario_frame(self) -> pd.DataFrame:
        """The services with a positive budget, as `analysis.redeploy.scenarios` takes them."""
        frame = self.services[self.services["budget_eur"].fillna(0) > 0]
        return frame[["service", "policy", "budget_eur", "volume", "value", "priority", "floor_eur"]].copy()


def _publics(gaps: pd.DataFrame, labels: dict, alpha: float, min_gap: float) -> dict[int, list[str]]:
    """The publics left behind in each service, tested as one family (services ×
    categories) under Benjamini-Hochberg: each service's own family would, over many
    services, flag some chance gap somewhere. ``gaps``: `analysis.cells.segment_gaps`
    of each service whose estimate is published, with its ``service_id``."""
    from analysis.trends import adjust

    if gaps.empty:
        return {}
    gaps = gaps.reset_index(drop=True)
    gaps["p_family"] = adjust(gaps["p"], alpha=alpha)["p_adjusted"].to_numpy()
    hit = gaps[
        (gaps["gap"] <= -min_gap) & (gaps["p_family"] < alpha) & ~gaps["flag"].isin(["suppressed", "hidden"]).to_numpy()
    ]
    out: dict[int, list[str]] = {}
    for r in hit.itertuples(index=False):
        out.setdefault(r.service_id, []).append(labels.get((r.column, str(r.category)), f"{r.column} {r.category}"))
    return out


def _public_labels(services: list[Service]) -> dict:
    """Plain French names of the profile categories, from an open service's questionnaire."""
    from surveys.schema import choices_for

    from ..respond.services import get_survey

    labels = {}
    for s in services:
        if not s.is_open:
            continue
        context = get_survey(s.slug)
        for column in PUBLIC_COLUMNS:
            try:
                question = context.questionnaire.question(column)
            except KeyError:
                continue
            for choice in choices_for(question, context.areas):
                labels[(column, choice.code)] = choice.label.get("fr")
        break
    return labels


def _fields(est, raking) -> dict:
    """An estimate of the share satisfied as the fields the steering keeps: a suppressed
    estimate is never shown, nor passed on: only its counts are."""
    shown = est.flag in PUBLISHED
    return {
        "value": est.value if shown else np.nan,
        "se": est.se if shown else np.nan,
        "ci_low": est.ci_low if shown else np.nan,
        "ci_high": est.ci_high if shown else np.nan,
        "n": est.n,
        "n_eff": est.n_eff,
        "flag": est.flag,
        "weighted": raking is not None,
    }


def _estimates(services, by_org, margins_of, first_year: int, year: int, alpha, min_gap, publics):
    """The share satisfied of every service and policy by year, from the read model,
    each raked to its organisation's margins; the publics left behind; the notes.

    A service's year is the reports' family part of that year (`reports.services.org_family`
    at the year grain; for a past year its estimates alone, `year_satisfied`): computed
    once, cached by the data version of that year alone, and shared with the reports; so
    a response to this year leaves the past years' parts as they are. A policy of several services pools their users, raked together (cached the
    same way)."""
    from ..reports import services as reports

    estimates: dict = {}
    pooled: dict = {}
    unraked = 0
    gaps = []
    for y in range(first_year, year + 1):
        start, end = date(y, 1, 1), date(y, 12, 31)
        for org_id, members in by_org.items():
            margins = margins_of[org_id]
            with force_locale("fr"):  # its notes are sentences (unused here); also on the command line
                # The past years need the estimates only, the current one its gaps too.
                family = (
                    reports.org_family(org_id, "year", start, end) if y == year else reports.year_satisfied(org_id, y)
                )
            for s in members:
                est = family["satisfied"].get(s.id)
                if est is None or est.n == 0:
                    continue
                raking, _note = family["raking"].get(s.id, (None, None))
                unraked += bool(margins) and raking is None
                estimates[(s.id, y)] = _fields(est, raking)
            if y == year and publics and len(family["gaps"]):
                published = {s.id for s in members if estimates.get((s.id, y), _EMPTY)["flag"] in PUBLISHED}
                own = family["gaps"][family["gaps"]["service_id"].isin(published).to_numpy()]
                gaps.append(own[[c for c in own.columns if c not in ("p_family", "under_served")]])
            # A policy of one service is that service; the others pool their services' users.
            policies: dict[str, list[int]] = {}
            for s in members:
                policies.setdefault(s.policy.slug, []).append(s.id)
            shared = {policy: tuple(sids) for policy, sids in policies.items() if len(sids) > 1}
            for policy, sids in policies.items():
                if len(sids) == 1 and (sids[0], y) in estimates:
                    pooled[(org_id, policy, y)] = estimates[(sids[0], y)]
            for policy, found in _pooled_policies(shared, margins, start, end).items():
                if found is not None:
                    pooled[(org_id, policy, y)] = found
    notes: list[tuple[str, int]] = []
    if not any(margins_of.values()):
        notes.append(("no_margins", 0))
    elif unraked:
        notes.append(("unraked", int(unraked)))
    frame = pd.concat(gaps, ignore_index=True) if gaps else pd.DataFrame()
    under_served = _publics(frame, _public_labels(services), alpha, min_gap) if publics else {}
    return estimates, pooled, under_served, tuple(notes)


def _pooled_policies(policies: dict[str, tuple[int, ...]], margins, start: date, end: date) -> dict:
    """The share satisfied of the users of each policy's services pooled over a year,
    raked together, by policy; each cached by the data versions of that year of its
    services, those not cached computed from one read of the read model, raked and
    estimated as a service's year is (`reports.services.satisfied_part`)."""
    from ..reports.services import satisfied_part

    versions = results.range_versions(sorted({i for ids in policies.values() for i in ids}), start, end)
    margins_key = tuple((d, tuple(sorted(c.items()))) for d, c in sorted(margins.items()))
    keys = {
        policy: ("policy", ids, start, end, tuple(versions[i] for i in ids), margins_key)
        for policy, ids in policies.items()
    }
    out = {policy: _POOLED.peek(key, _MISSING) for policy, key in keys.items()}
    missing = [policy for policy, found in out.items() if found is _MISSING]
    if not missing:
        return out
    ids = sorted({i for policy in missing for i in policies[policy]})
    cells = results.cells_frame(ids, start=start, end=end, keys=["overall"])
    services = cells["service_id"].to_numpy()
    for policy in missing:
        scope = cells[np.isin(services, policies[policy])] if len(cells) else cells
        if scope.empty:
            found = None
        else:
            part = satisfied_part(margins, scope)
            found = _fields(part["satisfied"], part["raking"][0])
        out[policy] = found
        _POOLED.put(keys[policy], found)
    return out


def _attributes(services: list[Service], year: int) -> tuple[dict, dict, dict]:
    """Each service's under-served attributes and those where effort can be saved over
    the year, as keys by service id, and their French labels: the importance-performance
    quadrants of the reports' home (`attribute_quadrants`, cached there by data version)."""
    from analysis.redeploy import effort_savings

    from ..reports.services import attribute_quadrants

    quadrants = attribute_quadrants(services, start=date(year, 1, 1), end=date(year, 12, 31), lang="fr")
    under: dict[int, list[str]] = {}
    savings: dict[int, list[str]] = {}
    labels: dict[str, str] = {}
    for service_id, found in quadrants.items():
        under[service_id] = [key for key, _label in found.under_served]
        # effort_savings ranks the "possible overkill" attributes: none, nothing to rank.
        savings[service_id] = list(effort_savings(found.ipa).index) if found.over_quality else []
        labels.update((key, _in_sentence(label)) for key, label in found.under_served + found.over_quality)
    return under, savings, labels


def _in_sentence(label: str) -> str:
    """A question's label as it reads after a colon: lower case first, unless it starts
    with an acronym."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


#: The estimates of recent scopes and years, per process.
_ESTIMATES = Lru(16)
#: A value a cache may hold (None: a policy without answers) told from no value.
_MISSING = object()
#: Policies' pooled estimates by year, per process.
_POOLED = Lru(4096)
#: Recommendations and scenarios by the figures of their inputs, per process.
_RECOMMENDED = Lru(16)
_SCENARIOS = Lru(64)


def clear_cache() -> None:
    """Forget the cached estimates, and the reports' summaries they read (tests that
    empty the database: its data versions start again from zero)."""
    from ..reports.services import clear_caches

    for cache in (_ESTIMATES, _POOLED, _RECOMMENDED, _SCENARIOS):
        cache.clear()
    clear_caches()


def steering_inputs(
    user: User | None = None,
    *,
    year: int | None = None,
    alpha: float = 0.05,
    min_gap: float = 0.05,
    publics: bool = True,
) -> SteeringInputs:
    """The per-service inputs of `analysis.redeploy.recommend` and `scenarios` for
    ``year`` (default: the last year with an allocation), and the allocation history
    `elasticity` needs, for the services a director sees (``user`` None: all)."""
    services = services_in_scope(user)
    ids = [s.id for s in services]
    year = year if year is not None else latest_year(ids)
    if not services or year is None:
        return SteeringInputs(
            year, pd.DataFrame(), pd.DataFrame(columns=["service", "year", "budget_eur", "value", "se"])
        )
    allocations = pd.DataFrame(
        db.session.execute(
            select(
                Allocation.service_id, Allocation.year, Allocation.budget_eur, Allocation.staff_fte, Allocation.volume
            )
            .where(Allocation.service_id.in_(ids))
            .order_by(Allocation.service_id, Allocation.year)
        ).all(),
        columns=["service_id", "year", "budget_eur", "fte", "volume"],
    ).astype({"budget_eur": float, "fte": float})
    priorities = {
        p.policy_id: p
        for p in db.session.execute(
            select(Priority).where(Priority.policy_id.in_({s.policy_id for s in services}))
        ).scalars()
    }
    years = sorted(set(allocations["year"]) | {year})
    by_org: dict[int, list[Service]] = {}
    for s in services:
        by_org.setdefault(s.organisation_id, []).append(s)
    margins_of = {org_id: results.population_margins(org_id) for org_id in by_org}
    # What the estimates depend on: the data (versions), the margins, the years and the
    # options; the budgets and priorities are read again each time (two small queries).
    key = (
        tuple(ids),
        tuple(sorted(results.range_versions(ids, date(min(years), 1, 1), date(year, 12, 31)).items())),
        tuple((o, tuple((d, tuple(sorted(c.items()))) for d, c in sorted(m.items()))) for o, m in margins_of.items()),
        (min(years), year),
        tuple((s.id, s.policy_id) for s in services),
        (alpha, min_gap, publics),
    )
    estimates, pooled, under_served, notes, attributes = _ESTIMATES.get_or_make(
        key,
        lambda: (
            *_estimates(services, by_org, margins_of, min(years), year, alpha, min_gap, publics),
            _attributes(services, year),
        ),
    )
    under_served_attributes, effort_saving, attribute_labels = attributes
    alloc = {(r.service_id, r.year): r for r in allocations.itertuples(index=False)}
    rows = []
    for s in services:
        prio = priorities.get(s.policy_id)
        now = alloc.get((s.id, year))
        before = alloc.get((s.id, year - 1))
        est = estimates.get((s.id, year), _EMPTY)
        prev = estimates.get((s.id, year - 1), _EMPTY)
        rows.append(
            {
                "service": s.slug,
                "name": s.name,
                "organisation": s.organisation.name,
                "organisation_id": s.organisation_id,
                "domain": s.policy.domain.slug,
                "domain_name": s.policy.domain.name,
                "policy": s.policy.slug,
                "policy_name": s.policy.name,
                "priority": prio.level if prio else np.nan,
                "target": prio.satisfaction_target if prio and prio.satisfaction_target is not None else np.nan,
                "floor_eur": float(prio.floor_eur) if prio and prio.floor_eur is not None else np.nan,
                "deadline": prio.deadline if prio else None,
                "budget_eur": now.budget_eur if now else np.nan,
                "fte": now.fte if now else np.nan,
                "volume": float(now.volume) if now and now.volume is not None else np.nan,
                "budget_previous": before.budget_eur if before else np.nan,
                **{k: est[k] for k in ("value", "se", "ci_low", "ci_high", "n", "n_eff", "flag")},
                "weighted": bool(est.get("weighted", False)),
                "under_served_publics": under_served.get(s.id, []),
                "under_served_attributes": under_served_attributes.get(s.id, []),
                "effort_savings": effort_saving.get(s.id, []),
                "value_previous": prev["value"] if prev["flag"] in PUBLISHED else np.nan,
                "se_previous": prev["se"] if prev["flag"] in PUBLISHED else np.nan,
            }
        )
    frame = pd.DataFrame(rows)
    slug = {s.id: s.slug for s in services}
    history = [
        {
            "service": slug[r.service_id],
            "year": r.year,
            "budget_eur": r.budget_eur,
            "value": estimates[(r.service_id, r.year)]["value"]
            if estimates.get((r.service_id, r.year), _EMPTY)["flag"] in PUBLISHED
            else np.nan,
            "se": estimates.get((r.service_id, r.year), _EMPTY)["se"],
        }
        for r in allocations.itertuples(index=False)
        if r.year <= year
    ]
    fields = ("value", "se", "ci_low", "ci_high", "n", "n_eff", "flag")
    policies = pd.DataFrame(
        [
            {"organisation_id": o, "policy": p, "year": y, **{k: est[k] for k in fields}}
            for (o, p, y), est in pooled.items()
        ],
        columns=["organisation_id", "policy", "year", *fields],
    )
    return SteeringInputs(
        year,
        frame,
        pd.DataFrame(history, columns=["service", "year", "budget_eur", "value", "se"]),
        policies,
        tuple(notes),
        attribute_labels,
    )


def note_text(code: str, count: int, translate=None) -> str:
    """A note of `SteeringInputs.notes` as a sentence, translated by ``translate``
    (gettext) on a page, in French on the command line."""
    message = NOTE_MESSAGES[code]
    return translate(message, n=count) if translate else message % {"n": count}


# ------------------------------------------------------------------ recommendations


def _figures(*frames: pd.DataFrame, extra=()) -> str:
    """A digest of some frames' figures (and of ``extra``), to key what is computed
    from them alone: the steering's inputs are made anew by each call, the same
    figures giving the same recommendations and scenarios."""
    digest = hashlib.sha256(repr(extra).encode())
    for frame in frames:
        digest.update(
            frame.to_json(orient="split", date_format="iso", double_precision=15, default_handler=str).encode()
        )
    return digest.hexdigest()


def recommend_by_organisation(inputs: SteeringInputs) -> list:
    """`analysis.redeploy.recommend` run on each organisation's services: a service is
    compared with its own organisation's (its peers, its costs), never another's.
    Cached by the inputs' figures (the overview, the board and each scenario ask)."""
    from analysis import redeploy

    if inputs.services.empty:
        return []
    key = ("recommend", _figures(inputs.services, extra=(inputs.year, sorted(inputs.attribute_labels.items()))))
    return _RECOMMENDED.get_or_make(
        key,
        lambda: [
            redeploy.recommend(frame.reset_index(drop=True), labels=inputs.attribute_labels)
            for _, frame in inputs.services.groupby("organisation_id", sort=False)
        ],
    )


def recommendation_table(inputs: SteeringInputs) -> pd.DataFrame:
    """The services' inputs with their ``recommendation, reason, evidence`` columns."""
    parts = [r.table[["service", "recommendation", "reason", "evidence"]] for r in recommend_by_organisation(inputs)]
    if not parts:
        return inputs.services.assign(recommendation=[], reason=[], evidence=[])
    return inputs.services.merge(pd.concat(parts, ignore_index=True), on="service", how="left")


# ------------------------------------------------------------------ indicators board

#: The statuses of an objective, in the board's order of urgency.
STATUSES = ("late", "on_track", "reached", "no_data", "no_target")
#: Trend words: a change from last year significant at 5 % (two-sided z test).
TRENDS = ("up", "down", "stable")


def _finite(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def trend(value, se, previous, previous_se) -> tuple[float | None, str | None]:
    """Change from last year and its direction: ``up`` or ``down`` when
    :math:`|\\Delta| / \\sqrt{SE_1^2 + SE_0^2} > 1.96`, ``stable`` otherwise; None
    without two published years."""
    value, se, previous, previous_se = map(_finite, (value, se, previous, previous_se))
    if None in (value, se, previous, previous_se):
        return None, None
    change = value - previous
    z = change / np.hypot(se, previous_se) if se or previous_se else 0.0
    return change, ("up" if z > 1.96 else "down" if z < -1.96 else "stable")


def status(value, ci_high, target, deadline: date | None, direction: str | None, today: date) -> str:
    """Where an objective stands.

    ``no_data`` without a published estimate; ``no_target`` without a target;
    ``reached`` when the estimate is at or above the target; ``late`` when it is below
    and the deadline has passed, or when the target lies above the whole confidence
    interval and satisfaction is not rising; ``on_track`` otherwise (below, but within
    the margin of error or rising, before the deadline).
    """
    value, ci_high, target = map(_finite, (value, ci_high, target))
    if value is None:
        return "no_data"
    if target is None:
        return "no_target"
    if value >= target:
        return "reached"
    if deadline is not None and deadline < today:
        return "late"
    if (ci_high is not None and ci_high >= target) or direction == "up":
        return "on_track"
    return "late"


@dataclass(frozen=True)
class BoardRow:
    """One line of the indicators board: a domain, a policy or a service."""

    level: str
    key: str
    name: str
    organisation: str
    target: float | None = None
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    flag: str | None = None
    change: float | None = None
    trend: str | None = None
    budget: float | None = None
    budget_change: float | None = None
    deadline: date | None = None
    status: str | None = None
    recommendation: str | None = None
    priority: int | None = None


def _budget_change(now: float, before: float) -> float | None:
    now, before = _finite(now), _finite(before)
    return None if now is None or not before else now / before - 1


def board(inputs: SteeringInputs, recs: pd.DataFrame | None = None, *, today: date | None = None) -> list[BoardRow]:
    """The indicators board: domains, then their policies, then their services, each
    with its objective, indicator, allocation, deadline and status."""
    today = today or date.today()
    frame = inputs.services
    if frame.empty:
        return []
    rec_of = dict(zip(recs["service"], recs["recommendation"], strict=True)) if recs is not None else {}
    pol = inputs.policies
    pooled = {(r.organisation_id, r.policy, r.year): r for r in pol.itertuples(index=False)} if not pol.empty else {}
    several = frame["organisation_id"].nunique() > 1
    rows: list[BoardRow] = []
    for (_org, domain), in_domain in frame.groupby(["organisation_id", "domain"], sort=False):
        first = in_domain.iloc[0]
        rows.append(
            BoardRow(
                "domain",
                domain,
                first["domain_name"],
                first["organisation"] if several else "",
                budget=_finite(in_domain["budget_eur"].sum(min_count=1)),
                budget_change=_budget_change(
                    in_domain["budget_eur"].sum(min_count=1), in_domain["budget_previous"].sum(min_count=1)
                ),
            )
        )
        for policy, members in in_domain.groupby("policy", sort=False):
            head = members.iloc[0]
            now = pooled.get((head["organisation_id"], policy, inputs.year))
            before = pooled.get((head["organisation_id"], policy, inputs.year - 1))
            shown = now is not None and now.flag in PUBLISHED
            prev_shown = before is not None and before.flag in PUBLISHED
            change, direction = (
                trend(now.value, now.se, before.value, before.se) if shown and prev_shown else (None, None)
            )
            deadline = head["deadline"] if isinstance(head["deadline"], date) else None
            rows.append(
                BoardRow(
                    "policy",
                    policy,
                    head["policy_name"],
                    head["organisation"] if several else "",
                    target=_finite(head["target"]),
                    value=now.value if shown else None,
                    ci_low=now.ci_low if shown else None,
                    ci_high=now.ci_high if shown else None,
                    n=int(now.n) if now is not None else 0,
                    flag=now.flag if now is not None else "hidden",
                    change=change,
                    trend=direction,
                    budget=_finite(members["budget_eur"].sum(min_count=1)),
                    budget_change=_budget_change(
                        members["budget_eur"].sum(min_count=1), members["budget_previous"].sum(min_count=1)
                    ),
                    deadline=deadline,
                    status=status(
                        now.value if shown else None,
                        now.ci_high if shown else None,
                        head["target"],
                        deadline,
                        direction,
                        today,
                    ),
                    priority=None if pd.isna(head["priority"]) else int(head["priority"]),
                )
            )
            for r in members.itertuples(index=False):
                change, direction = trend(r.value, r.se, r.value_previous, r.se_previous)
                deadline = r.deadline if isinstance(r.deadline, date) else None
                rows.append(
                    BoardRow(
                        "service",
                        r.service,
                        r.name,
                        r.organisation if several else "",
                        target=_finite(r.target),
                        value=_finite(r.value),
                        ci_low=_finite(r.ci_low),
                        ci_high=_finite(r.ci_high),
                        n=int(r.n),
                        flag=r.flag,
                        change=change,
                        trend=direction,
                        budget=_finite(r.budget_eur),
                        budget_change=_budget_change(r.budget_eur, r.budget_previous),
                        deadline=deadline,
                        status=status(r.value, r.ci_high, r.target, deadline, direction, today),
                        recommendation=rec_of.get(r.service),
                        priority=None if pd.isna(r.priority) else int(r.priority),
                    )
                )
    return rows


# ------------------------------------------------------------------ overview


@dataclass(frozen=True)
class HeatmapRow:
    """A policy's share satisfied against its target, year by year."""

    domain: str
    policy: str
    label: str
    target: float | None
    #: Per year: (value or None when not published, flag).
    cells: tuple[tuple[float | None, str], ...]


@dataclass(frozen=True)
class Alert:
    """Something a director should look at: ``kind`` says what (translated in the page)."""

    kind: str
    name: str
    value: float | None = None
    other: float | None = None
    when: date | None = None


@dataclass(frozen=True)
class AttributeFinding:
    """A service whose attributes the importance-performance analysis sets apart."""

    service: str
    name: str
    recommendation: str
    #: Labels, in the reader's language, of the attributes rated far above what they
    #: weigh in satisfaction: where effort can be saved (largest excess first).
    effort_savings: tuple[str, ...]
    #: Labels of the attributes residents weigh most and rate low.
    under_served: tuple[str, ...]


@dataclass(frozen=True)
class OrganisationCell:
    """A policy in one organisation: the share satisfied of its services' users and
    their budget per user."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    #: Why the share is not shown (too few responses), None when it is.
    withheld: str | None
    cost_per_user: float | None


@dataclass(frozen=True)
class PolicyAcross:
    """The same policy in each organisation of the scope."""

    policy: str
    name: str
    target: float | None
    #: One per organisation of `Overview.organisations`; None where it has no service of the policy.
    cells: tuple[OrganisationCell | None, ...]


@dataclass(frozen=True)
class Overview:
    """What the director's overview shows."""

    year: int | None
    years: tuple[int, ...]
    heatmap: tuple[HeatmapRow, ...]
    recommendations: pd.DataFrame
    alerts: tuple[Alert, ...]
    notes: tuple[tuple[str, int], ...]
    counts: dict
    attributes: tuple[AttributeFinding, ...] = ()
    #: The organisations compared (by name), when the scope holds several; else empty.
    organisations: tuple[str, ...] = ()
    #: The policies present in two organisations or more, compared across them.
    across: tuple[PolicyAcross, ...] = ()


#: Years of history the overview's heatmap shows.
HEATMAP_YEARS = 3


def _attribute_findings(recs: pd.DataFrame, lang: str) -> tuple[AttributeFinding, ...]:
    """The services with attributes where effort can be saved or that are under-served,
    named in the reader's language (with their organisation's name when there are several)."""
    from ..respond.services import get_survey

    several = recs["organisation_id"].nunique() > 1
    out = []
    for r in recs.itertuples(index=False):
        if not (r.effort_savings or r.under_served_attributes):
            continue
        questionnaire = get_survey(r.service).questionnaire

        def names(keys, questionnaire=questionnaire):
            return tuple(_question_name(questionnaire, k, lang) for k in keys)

        name = f"{r.name} ({r.organisation})" if several else r.name
        out.append(
            AttributeFinding(
                r.service, name, r.recommendation, names(r.effort_savings), names(r.under_served_attributes)
            )
        )
    return tuple(out)


def _question_name(questionnaire, key: str, lang: str) -> str:
    """A question's label in ``lang``; its key when the current version has no such question."""
    try:
        return questionnaire.question(key).label.get(lang)
    except KeyError:
        return key


def _cost_per_user(members: pd.DataFrame) -> float | None:
    """Budget per user of some services: their budgets over their volumes, counting
    only the services that have both."""
    known = members[(members["budget_eur"] > 0) & (members["volume"] > 0)]
    return float(known["budget_eur"].sum() / known["volume"].sum()) if not known.empty else None


def _across(inputs: SteeringInputs) -> tuple[tuple[str, ...], tuple[PolicyAcross, ...]]:
    """The policies of two organisations or more of the scope, compared: each
    organisation's share satisfied of the policy's users (its own raking) and budget
    per user. Nothing when the scope holds one organisation."""
    from analysis.estimates import Estimate

    from ..reports.services import suppression_reason

    frame = inputs.services
    if frame["organisation_id"].nunique() < 2:
        return (), ()
    organisations = frame[["organisation_id", "organisation"]].drop_duplicates().sort_values("organisation")
    pol = inputs.policies
    pooled = {(r.organisation_id, r.policy, r.year): r for r in pol.itertuples(index=False)} if not pol.empty else {}
    rows = []
    for policy, members in frame.groupby("policy", sort=False):
        if members["organisation_id"].nunique() < 2:
            continue
        cells = []
        for org_id in organisations["organisation_id"]:
            mine = members[members["organisation_id"] == org_id]
            if mine.empty:
                cells.append(None)
                continue
            est = pooled.get((org_id, policy, inputs.year))
            n, n_eff, flag = (int(est.n), float(est.n_eff), est.flag) if est is not None else (0, 0.0, "hidden")
            shown = flag in PUBLISHED
            nan = float("nan")
            withheld = None if shown else suppression_reason(Estimate(nan, nan, nan, nan, n, n_eff, nan, flag, nan))
            cells.append(
                OrganisationCell(
                    _finite(est.value) if shown else None,
                    _finite(est.ci_low) if shown else None,
                    _finite(est.ci_high) if shown else None,
                    n,
                    withheld,
                    _cost_per_user(mine),
                )
            )
        head = members.iloc[0]
        rows.append(PolicyAcross(policy, head["policy_name"], _finite(head["target"]), tuple(cells)))
    return tuple(organisations["organisation"]), tuple(rows)


def overview(user: User | None, *, year: int | None = None, today: date | None = None, lang: str = "fr") -> Overview:
    """The director's overview: every policy's satisfaction against its target (the
    heatmap), the recommendations with the attributes they rest on, the same policy
    across the organisations of the scope, and the alerts (``lang``: the reader's
    language, for the attributes' names)."""
    inputs = steering_inputs(user, year=year)
    if inputs.empty:
        return Overview(inputs.year, (), (), pd.DataFrame(), (), inputs.notes, {})
    recs = recommendation_table(inputs)
    rows = board(inputs, recs, today=today)
    years = tuple(y for y in range(inputs.year - HEATMAP_YEARS + 1, inputs.year + 1))
    pol = inputs.policies
    pooled = {(r.organisation_id, r.policy, r.year): r for r in pol.itertuples(index=False)} if not pol.empty else {}
    several = inputs.services["organisation_id"].nunique() > 1
    heat = []
    for (org_id, policy), members in inputs.services.groupby(["organisation_id", "policy"], sort=False):
        head = members.iloc[0]
        cells = []
        for y in years:
            est = pooled.get((org_id, policy, y))
            if est is None:
                cells.append((None, "hidden"))
            else:
                cells.append((float(est.value) if est.flag in PUBLISHED else None, est.flag))
        label = head["policy_name"] + (f" ({head['organisation']})" if several else "")
        heat.append(HeatmapRow(head["domain_name"], policy, label, _finite(head["target"]), tuple(cells)))
    alerts = []
    for r in rows:
        if r.level == "policy" and r.status == "late":
            alerts.append(Alert("late", r.name, r.value, r.target, r.deadline))
        if r.level != "domain" and r.trend == "down":
            alerts.append(Alert("falling", r.name, r.change))
    floors = inputs.services.groupby(["organisation_id", "policy"], sort=False).agg(
        name=("policy_name", "first"), budget=("budget_eur", "sum"), floor=("floor_eur", "first")
    )
    for r in floors.itertuples(index=False):
        if _finite(r.floor) is not None and r.budget < r.floor:
            alerts.append(Alert("below_floor", r.name, float(r.budget), float(r.floor)))
    counts = recs["recommendation"].value_counts().to_dict()
    organisations, across = _across(inputs)
    return Overview(
        inputs.year,
        years,
        tuple(heat),
        recs,
        tuple(alerts),
        inputs.notes,
        counts,
        _attribute_findings(recs, lang),
        organisations,
        across,
    )


# ------------------------------------------------------------------ scenarios


class ScenarioRefused(ValueError):
    """A scenario that cannot be run; ``reason`` says why in French."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def years_with_allocations(user: User | None) -> list[int]:
    """The years a director can steer: those with an allocation, last first."""
    return list(
        db.session.execute(
            select(Allocation.year)
            .join(Service, Service.id == Allocation.service_id)
            .where(organisation_filter(user))
            .distinct()
            .order_by(Allocation.year.desc())
        ).scalars()
    )


def run_scenario(
    user: User | None,
    *,
    saving: float,
    reinvest: float = 0.0,
    year: int | None = None,
    organisation_id: int | None = None,
) -> dict:
    """Run the even and the strategic cut on the budgets of one organisation and year,
    and return the scenario document the page shows, saves and exports
    (`scenario_document`). Raises `ScenarioRefused` for an unreachable saving (its
    French reason) or when the scope holds several organisations and none is chosen."""
    inputs = steering_inputs(user, year=year)
    if inputs.empty:
        raise ScenarioRefused("aucune allocation pour cette année : importez d'abord les budgets.")
    # The same scenario on the same figures (shown, then saved, then exported) is solved once.
    key = (
        "scenario",
        _figures(inputs.services, inputs.history, extra=(inputs.year, sorted(inputs.attribute_labels.items()))),
        float(saving),
        float(reinvest),
        organisation_id,
    )
    document = _SCENARIOS.get_or_make(
        key, lambda: _scenario(inputs, saving=saving, reinvest=reinvest, organisation_id=organisation_id)
    )
    return copy.deepcopy(document)  # the caller's to change


def _scenario(inputs: SteeringInputs, *, saving: float, reinvest: float, organisation_id: int | None) -> dict:
    from analysis import redeploy

    frame = recommendation_table(inputs)
    orgs = frame.loc[frame["budget_eur"].fillna(0) > 0, "organisation_id"].unique()
    if organisation_id is None and len(orgs) > 1:
        raise ScenarioRefused("plusieurs collectivités : choisissez celle dont les budgets sont réduits.")
    organisation_id = organisation_id if organisation_id is not None else int(orgs[0])
    frame = frame[frame["organisation_id"] == organisation_id]
    scoped = SteeringInputs(inputs.year, frame, inputs.history[inputs.history["service"].isin(frame["service"])])
    allocations = scoped.scenario_frame().merge(frame[["service", "recommendation"]], on="service", how="left")
    if allocations.empty:
        raise ScenarioRefused("aucune allocation pour cette année : importez d'abord les budgets.")
    eps = _elasticity(scoped.history)
    try:
        result = redeploy.scenarios(allocations, saving=saving, reinvest=reinvest, elasticity=eps)
    except redeploy.UnreachableSaving as exc:
        raise ScenarioRefused(exc.reason) from exc
    return scenario_document(
        result, frame, year=inputs.year, organisation_id=organisation_id, saving=saving, reinvest=reinvest
    )


def _elasticity(history: pd.DataFrame):
    """`analysis.redeploy.elasticity` of a history, cached by the history's figures: a
    panel of some hundreds of service-years is a fixed-effects fit worth keeping between
    scenarios, and it changes only with the budgets or the yearly satisfaction."""
    from analysis import redeploy

    frame = history.sort_values(["service", "year"]).reset_index(drop=True)
    figures = frame.astype(object).where(frame.notna(), None)  # NaN is never equal to itself
    key = ("elasticity", tuple(frame.columns), tuple(map(tuple, figures.to_numpy().tolist())))
    return _POOLED.get_or_make(key, lambda: redeploy.elasticity(frame))


def scenario_document(result, services: pd.DataFrame, *, year: int, organisation_id: int, saving, reinvest) -> dict:
    """A scenario as plain JSON: `Scenarios.to_dict` (the command's output) with what the
    page and the export show besides: names, each policy's projected range, each
    service's recommendation and projected satisfaction."""
    doc = result.to_dict()
    names = dict(zip(services["service"], services["name"], strict=True))
    policy_names = dict(zip(services["policy"], services["policy_name"], strict=True))
    for key, sol in (("even", result.even), ("strategic", result.strategic)):
        out = doc["solutions"][key]
        for row, pol in zip(out["policies"], sol.policies.itertuples(index=False), strict=True):
            row.update(
                name=policy_names.get(pol.policy, pol.policy),
                satisfied_before=_finite(pol.satisfied_before),
                satisfied_low=_finite(pol.satisfied_low),
                satisfied_high=_finite(pol.satisfied_high),
            )
        for row, svc in zip(out["services"], sol.services.itertuples(index=False), strict=True):
            row.update(
                name=names.get(svc.service, svc.service),
                policy=svc.policy,
                recommendation=svc.recommendation,
                satisfied_before=_finite(svc.satisfied_before),
                projected_satisfied=_finite(svc.satisfied_after),
            )
        out["below_floor"] = [policy_names.get(p, p) for p in sol.below_floor]
    doc.update(
        year=year,
        organisation_id=organisation_id,
        parameters={"year": year, "saving": saving, "reinvest": reinvest},
    )
    return doc


def save_scenario(user: User, name: str, document: dict):
    """Keep a scenario under a name for its organisation; returns it."""
    from ..models import Scenario

    scenario = Scenario(
        name=name.strip(),
        organisation_id=document["organisation_id"],
        parameters=document["parameters"],
        result=document,
        created_by_id=user.id,
    )
    db.session.add(scenario)
    db.session.commit()
    return scenario


def _scenario_scope(user: User):
    from ..models import Scenario

    if user.organisation_id is None:
        return true()
    return Scenario.organisation_id == user.organisation_id


def saved_scenarios(user: User) -> list:
    """The scenarios saved for the organisations a director sees, newest first."""
    from ..models import Scenario

    return list(
        db.session.execute(
            select(Scenario).where(_scenario_scope(user)).order_by(Scenario.created_at.desc(), Scenario.id.desc())
        ).scalars()
    )


def get_scenario(user: User, scenario_id: int):
    """A saved scenario the director may see, or None."""
    from ..models import Scenario

    return db.session.execute(
        select(Scenario).where(Scenario.id == scenario_id, _scenario_scope(user))
    ).scalar_one_or_none()


def parse_saving(value: str) -> float:
    """An economy as typed: euros (1 or more), a share (below 1) or a percentage ("8 %");
    French decimal commas and spaces between thousands accepted. ``ValueError`` with a
    French reason otherwise."""
    text = value.strip()
    percent = text.endswith("%")
    cleaned = text.rstrip("%€ \u00a0\u202f")
    for space in (" ", "\u00a0", "\u202f"):
        cleaned = cleaned.replace(space, "")
    try:
        saving = float(cleaned.replace(",", "."))
    except ValueError:
        raise ValueError(f"« {value} » n'est pas un montant ni une part.") from None
    if percent:
        saving /= 100
    if not (np.isfinite(saving) and saving > 0):
        raise ValueError("l'économie doit être un nombre positif.")
    if percent and saving >= 1:
        raise ValueError("une part de 100 % ou plus n'est pas une économie possible.")
    return saving
