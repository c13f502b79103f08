"""What the director's pages and commands read: per-service inputs of the redeployment
analysis, from the results read model and the strategic framework.

The share satisfied of each service comes from the read model's cells
(`results.cells_frame`) through `analysis.cells`, raked to the organisation's population
margins when it has them, never from the answers table. `analysis.redeploy` is not
imported here: it loads scipy's optimiser and statsmodels, which an app start must not
pay for; callers import it when they run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import func, select, true
from sqlalchemy.orm import joinedload

from analysis import cells as cellstats

from .. import results
from ..extensions import db
from ..models import Allocation, Organisation, Policy, Priority, Role, Service, User

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
        satisfied), ``value_previous, se_previous`` (last year's).
    history : pandas.DataFrame
        ``service, year, budget_eur, value, se`` for every year with an allocation: the
        panel `analysis.redeploy.elasticity` fits.
    notes : tuple of str
        Plain-French remarks (estimates left unweighted and why).
    """

    year: int | None
    services: pd.DataFrame
    history: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        """Whether no service in scope has a budget for the year."""
        return self.services.empty or not (self.services["budget_eur"].fillna(0) > 0).any()

    def scenario_frame(self) -> pd.DataFrame:
        """The services with a positive budget, as `analysis.redeploy.scenarios` takes them."""
        frame = self.services[self.services["budget_eur"].fillna(0) > 0]
        return frame[["service", "policy", "budget_eur", "volume", "value", "priority", "floor_eur"]].copy()


def _rake(cells: pd.DataFrame, margins) -> cellstats.CellRaking | None:
    """The raking of one service-year to the margins, or None when there are none or
    the sample cannot be raked (a margin category without a respondent)."""
    if not margins or cells.empty:
        return None
    try:
        return cellstats.rake_cells(cells, margins)
    except ValueError:
        return None


def _satisfied_by_year(cells: pd.DataFrame, margins) -> tuple[dict, int]:
    """Each (service id, year)'s share satisfied on ``overall`` as a dict of estimate
    fields, with the service-year's raking; returns them and how many service-years
    could not be raked."""
    out: dict[tuple[int, int], dict] = {}
    unraked = 0
    if cells.empty:
        return out, unraked
    yearly = cellstats.with_period(cells, "year")
    for (service_id, period), scope in yearly.groupby(["service_id", "period"], sort=True, observed=True):
        raking = _rake(scope, margins)
        unraked += bool(margins) and raking is None
        est = cellstats.estimate(scope, "overall", statistic="satisfied", raking=raking)
        # A suppressed estimate is never shown, nor passed on: only its counts are.
        shown = est.flag in PUBLISHED
        out[(int(service_id), int(period.year))] = {
            "value": est.value if shown else np.nan,
            "se": est.se if shown else np.nan,
            "ci_low": est.ci_low if shown else np.nan,
            "ci_high": est.ci_high if shown else np.nan,
            "n": est.n,
            "n_eff": est.n_eff,
            "flag": est.flag,
            "weighted": raking is not None,
            "raking": raking,
            "cells": scope,
        }
    return out, unraked


def _publics(estimates: dict, services: list[Service], year: int, labels: dict, alpha: float, min_gap: float):
    """The publics left behind in each service, tested as one family (services ×
    categories) under Benjamini-Hochberg: each service's own family would, over many
    services, flag some chance gap somewhere."""
    from analysis.trends import adjust

    frames = []
    for s in services:
        est = estimates.get((s.id, year))
        if est is None or est["flag"] not in PUBLISHED:
            continue
        try:
            gaps = cellstats.segment_gaps(
                est["cells"], "overall", list(PUBLIC_COLUMNS), statistic="satisfied", raking=est["raking"]
            )
        except ValueError:
            continue
        frames.append(gaps.assign(service_id=s.id))
    if not frames:
        return {}
    gaps = pd.concat(frames, ignore_index=True)
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
    cells = results.cells_frame(ids, start=date(min(years), 1, 1), end=date(year, 12, 1), keys=["overall"])
    notes: list[str] = []
    estimates: dict = {}
    unraked = 0
    margins_of = {}
    by_org: dict[int, list[int]] = {}
    for s in services:
        by_org.setdefault(s.organisation_id, []).append(s.id)
    any_margins = False
    for org_id, members in by_org.items():
        margins_of[org_id] = results.population_margins(org_id)
        any_margins |= bool(margins_of[org_id])
        scope = cells[cells["service_id"].isin(members).to_numpy()] if not cells.empty else cells
        found, missed = _satisfied_by_year(scope, margins_of[org_id])
        estimates.update(found)
        unraked += missed
    if not any_margins:
        notes.append("Réponses non pondérées : la collectivité n'a pas saisi les marges de sa population.")
    elif unraked:
        notes.append(
            f"{unraked} estimation(s) service × année non pondérée(s) : l'échantillon ne permet pas de les redresser "
            "sur les marges de la population (une catégorie sans répondant)."
        )
    under_served = _publics(estimates, services, year, _public_labels(services), alpha, min_gap) if publics else {}
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
    return SteeringInputs(
        year, frame, pd.DataFrame(history, columns=["service", "year", "budget_eur", "value", "se"]), tuple(notes)
    )
