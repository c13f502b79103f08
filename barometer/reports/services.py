"""What the service manager's pages show: scope, the service report, the home, comments.

Every statistic comes from `analysis/` (through `analysis.cells` on the read model of
`barometer.results`); this module only chooses what to estimate and gathers the results
into frozen objects that templates, charts and exports display as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from babel.dates import format_date
from flask import abort
from flask_babel import force_locale, format_decimal
from flask_babel import gettext as _
from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import aliased, joinedload, selectinload

from analysis import cells as cellstats
from analysis.estimates import DEFAULT_RULES, Estimate
from analysis.ipa import QUADRANT_LABELS, quadrants
from analysis.trends import Change, adjust, compare_periods, trend
from surveys.schema import choices_for

from .. import results
from ..caching import Lru
from ..extensions import db
from ..models import (
    Answer,
    Policy,
    Priority,
    QuestionnaireVersion,
    Response,
    ResultVersion,
    Role,
    Service,
    Site,
    User,
)
from ..respond.services import current_questionnaires, get_survey

#: Significance level of changes, trends and gaps, and the FDR of families of tests.
ALPHA = 0.05
#: Level of the importance-performance intervals of a report (one service's attributes).
IPA_LEVEL = 0.95
#: Level of the same intervals for the home's attribute alerts: the home screens every
#: service's attributes at once, so it asks for stronger evidence before naming one.
HOME_IPA_LEVEL = 0.99
#: Comments per page.
COMMENTS_PER_PAGE = 20
#: Profile columns shown as publics, in display order.
PUBLIC_COLUMNS = ("age_band", "sex", "area", "frequency")
#: The fewest other services pooled into a comparison row the reader may not see one by one.
MIN_POOLED_SERVICES = 2


# ----------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class ServiceRow:
    slug: str
    name: str
    policy: str
    is_open: bool
    responses: int
    last_response: object


def scope_filter(user: User):
    """The SQL condition on Service for what a user may see: the one place for the rule.

    Managers see the services they are given; directors and admins see their
    organisation's, or every organisation's when they belong to none.
    """
    if user.role == Role.manager:
        return Service.id.in_([s.id for s in user.services])
    if user.organisation_id is not None:
        return Service.organisation_id == user.organisation_id
    return true()


def services_in_scope(user: User) -> list[ServiceRow]:
    """The services a user may see, with how many responses each has (the read model's
    count, kept with it) and when the last one came (one index lookup per service)."""
    scope = scope_filter(user)
    last = select(func.max(Response.submitted_at)).where(Response.service_id == Service.id).scalar_subquery()
    query = (
        select(Service, func.coalesce(ResultVersion.responses, 0), last)
        .outerjoin(ResultVersion, ResultVersion.service_id == Service.id)
        .where(scope)
        .options(joinedload(Service.policy))
        .order_by(Service.name)
    )
    return [
        ServiceRow(s.slug, s.name, s.policy.name, s.is_open, n, last) for s, n, last in db.session.execute(query).all()
    ]


def service_in_scope(user: User, slug: str, site_code: str | None = None) -> tuple[Service, Site | None]:
    """The service (and site) a user asks for, or 404: a service outside the scope is
    answered exactly like one that does not exist."""
    service = db.session.execute(
        select(Service)
        .where(Service.slug == slug, scope_filter(user))
        .options(
            joinedload(Service.policy).joinedload(Policy.domain),
            joinedload(Service.organisation),
            selectinload(Service.sites),
        )
    ).scalar_one_or_none()
    if service is None:
        abort(404)
    site = None
    if site_code is not None:
        site = next((s for s in service.sites if s.code == site_code), None)
        if site is None:
            abort(404)
    return service, site


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """One period of a report at its grain."""

    key: pd.Period
    label: str
    start: date
    end: date


_FREQ = {"month": "M", "quarter": "Q", "year": "Y"}


def period_label(p: pd.Period, grain: str, lang: str) -> str:
    if grain == "month":
        return format_date(p.start_time.date(), "MMM y", locale=lang)
    if grain == "quarter":
        return _("T%(q)s %(y)s", q=p.quarter, y=p.year)
    return str(p.year)


def report_periods(grain: str, start: date, end: date, lang: str) -> list[Period]:
    """Whole periods of ``grain`` from the one holding ``start`` to the one holding ``end``."""
    freq = _FREQ[grain]
    out = []
    for p in pd.period_range(pd.Period(start, freq), pd.Period(end, freq), freq=freq):
        out.append(Period(p, period_label(p, grain, lang), p.start_time.date(), p.end_time.date()))
    return out


# ------------------------------------------------------------------ small LRU cache


_reports = Lru(64)
#: Services' summaries (the home's rows and the steering's attributes): small, one per
#: service, grain, range and language, for organisations of some hundreds of services.
_summary_cache = Lru(4096)
#: Services' importance-performance quadrants over a year (the steering's).
_quadrant_cache = Lru(4096)
_families = Lru(2048)
_family_tables = Lru(64)
#: Services' % satisfied and raking over a year without the rest of their family part
#: (`year_satisfied`): one per service and year.
_year_parts = Lru(4096)


def clear_caches() -> None:
    for cache in (_reports, _summary_cache, _quadrant_cache, _families, _family_tables, _year_parts):
        cache.clear()


def _cells_by_service(
    ids: Sequence[int], start: date, end: date, keys: Sequence[str] | None
) -> dict[int, pd.DataFrame]:
    """The read model's cells of several services in one query, split by service (see
    `_by_service`)."""
    if not ids:
        return {}
    return _by_service(results.cells_frame(list(ids), start=start, end=end, keys=keys), ids)


def _by_service(frame: pd.DataFrame, ids: Sequence[int]) -> dict[int, pd.DataFrame]:
    """Each service's rows of a frame of the read model read for ``ids``, by service id
    (no rows: an empty frame). The rows come ordered by service: each part is a slice.
    Its categorical columns keep the categories of the whole frame: `analysis.cells`
    reads their codes, where a category no row uses counts in nothing."""
    if len(ids) == 1:
        return {ids[0]: frame}
    services = frame["service_id"].to_numpy()
    if (np.diff(services) < 0).any():  # not the order of the read model: put it in place
        order = np.argsort(services, kind="stable")
        frame, services = frame.take(order), services[order]
    found, first = np.unique(services, return_index=True)
    last = np.append(first[1:], len(services))[: first.size]
    bounds = {int(sid): slice(int(a), int(b)) for sid, a, b in zip(found, first, last, strict=True)}
    return {sid: frame.iloc[bounds[sid]] if sid in bounds else frame.iloc[:0] for sid in ids}


def _own_categories(part: pd.DataFrame) -> pd.DataFrame:
    """A service's rows of a frame read for several, with only the categories it uses."""
    part = part.reset_index(drop=True)
    for column in part.columns:
        if isinstance(part[column].dtype, pd.CategoricalDtype):
            part[column] = part[column].cat.remove_unused_categories()
    return part


# ------------------------------------------------------------------ report objects


@dataclass(frozen=True)
class TrendPoint:
    period: Period
    satisfied: Estimate
    mean: Estimate
    #: Change of % satisfied since the previous period, when both are published.
    change: Change | None
    #: Whether that change survives the FDR over the series' changes.
    significant: bool
    #: Questionnaire versions that received answers in the period.
    versions: tuple[int, ...]

    @property
    def direction(self) -> str | None:
        if not self.significant or self.change is None:
            return None
        return "up" if self.change.delta > 0 else "down"


@dataclass(frozen=True)
class Headline:
    period: Period | None
    satisfied: Estimate | None
    mean: Estimate | None
    previous: Period | None
    change: Change | None
    significant: bool
    target: float | None

    @property
    def direction(self) -> str | None:
        """ "up", "down" (significant) or "flat"; None when no change can be computed."""
        if self.change is None:
            return None
        if not self.significant:
            return "flat"
        return "up" if self.change.delta > 0 else "down"

    @property
    def meets_target(self) -> bool | None:
        if self.target is None or self.satisfied is None or not self.satisfied.publishable:
            return None
        return self.satisfied.value >= self.target


@dataclass(frozen=True)
class TrendSection:
    points: tuple[TrendPoint, ...]
    #: WLS slope of % satisfied per period, when at least three periods are published.
    slope: object | None
    #: Whether the slope survives the FDR over the organisation's services.
    slope_significant: bool
    breaks: tuple[int, ...]
    #: Whether the last period's change is significant: over the organisation's services
    #: (FDR) for a service, alone for a site.
    last_significant: bool = False

    def frame(self) -> pd.DataFrame:
        """The chart's data: published values only."""
        rows = []
        for p in self.points:
            ok = p.satisfied.publishable
            rows.append(
                {
                    "label": p.period.label,
                    "value": p.satisfied.value if ok else np.nan,
                    "ci_low": p.satisfied.ci_low if ok else np.nan,
                    "ci_high": p.satisfied.ci_high if ok else np.nan,
                    "change": p.direction,
                    "version": max(p.versions) if p.versions else 0,
                }
            )
        frame = pd.DataFrame(rows, columns=["label", "value", "ci_low", "ci_high", "change", "version"])
        # A period without answers carries the version of the one before.
        frame["version"] = frame["version"].replace(0, np.nan).ffill().fillna(0)
        return frame


@dataclass(frozen=True)
class AttributeRow:
    key: str
    label: str
    performance: Estimate
    satisfied: Estimate
    #: Share of R² (LMG) and its jackknife interval; None when the model could not be fitted.
    importance: float | None
    importance_low: float | None
    importance_high: float | None
    quadrant: str | None
    #: The performance the importance-performance chart places it at: its mean over the
    #: complete responses, those its importance rests on (None outside the chart).
    ipa_performance: float | None = None

    @property
    def quadrant_label(self) -> str:
        return _quadrant_label(self.quadrant) if self.quadrant else ""


@dataclass(frozen=True)
class AttributesSection:
    rows: tuple[AttributeRow, ...]
    crosshairs: tuple[float, float] | None
    over_quality: tuple[str, ...]
    under_served: tuple[str, ...]
    #: Why the importance-performance analysis is not shown, if it is not.
    unavailable: str | None

    def ipa_frame(self) -> pd.DataFrame:
        rows = [
            {"label": r.label, "performance": r.ipa_performance, "importance": r.importance, "quadrant": r.quadrant}
            for r in self.rows
            if r.quadrant is not None
        ]
        return pd.DataFrame(rows, columns=["label", "performance", "importance", "quadrant"])

    @property
    def sentence(self) -> str:
        if self.unavailable:
            return self.unavailable
        parts = []
        if self.under_served:
            names = _join(self.under_served)
            parts.append(
                _(
                    "Besoins mal couverts : %(names)s, qui pèse beaucoup sur la satisfaction globale mais reste "
                    "mal noté.",
                    names=names,
                )
                if len(self.under_served) == 1
                else _(
                    "Besoins mal couverts : %(names)s, qui pèsent beaucoup sur la satisfaction globale mais restent "
                    "mal notés.",
                    names=names,
                )
            )
        if self.over_quality:
            names = _join(self.over_quality)
            parts.append(
                _(
                    "Sur-qualité possible : %(names)s, très bien noté mais presque sans effet sur la satisfaction "
                    "globale.",
                    names=names,
                )
                if len(self.over_quality) == 1
                else _(
                    "Sur-qualité possible : %(names)s, très bien notés mais presque sans effet sur la satisfaction "
                    "globale.",
                    names=names,
                )
            )
        if not parts:
            return _("Aucun critère n'est nettement sur-qualifié ni mal couvert : l'effort suit ce qui compte.")
        return " ".join(parts)


@dataclass(frozen=True)
class DriverRow:
    key: str
    label: str
    share: float
    importance: float


@dataclass(frozen=True)
class DriversSection:
    rows: tuple[DriverRow, ...]
    r2: float | None
    n: int
    unavailable: str | None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"label": r.label, "share": r.share} for r in self.rows], columns=["label", "share"])


@dataclass(frozen=True)
class PublicRow:
    column: str
    column_label: str
    category: str
    label: str
    estimate: Estimate
    gap: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    under_served: bool


@dataclass(frozen=True)
class PublicsSection:
    rows: tuple[PublicRow, ...]
    less_satisfied: tuple[str, ...]
    unavailable: str | None

    def frame(self) -> pd.DataFrame:
        rows = [
            {
                "label": f"{r.label} ({r.column_label.lower()})",
                "gap": r.gap,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "under_served": r.under_served,
            }
            for r in self.rows
            if r.estimate.publishable
        ]
        return pd.DataFrame(rows, columns=["label", "gap", "ci_low", "ci_high", "under_served"])

    @property
    def sentence(self) -> str:
        if self.unavailable:
            return self.unavailable
        if not self.less_satisfied:
            return _("Aucun public n'est significativement moins satisfait que les autres usagers.")
        return _("Publics moins satisfaits que les autres usagers : %(names)s.", names=_join(self.less_satisfied))


@dataclass(frozen=True)
class ComparisonRow:
    name: str
    #: "self", "service" (a named service the reader may see) or "pooled" (others pooled).
    kind: str
    group: str
    satisfied: Estimate
    services: int = 1


@dataclass(frozen=True)
class SiteRow:
    code: str
    name: str
    satisfied: Estimate
    mean: Estimate
    change: Change | None
    significant: bool


@dataclass(frozen=True)
class ServiceReport:
    """Everything the service report shows, computed once per scope and data version."""

    service_slug: str
    service_name: str
    policy_name: str
    domain_name: str
    organisation_name: str
    site_code: str | None
    site_name: str | None
    grain: str
    start: date
    end: date
    lang: str
    data_version: int
    weighted: bool
    #: Why responses are not raked, when they are not (no margins, or margins the sample cannot meet).
    weighting_note: str | None
    headline: Headline
    overall_satisfied: Estimate
    overall_mean: Estimate
    trend: TrendSection
    attributes: AttributesSection
    drivers: DriversSection
    publics: PublicsSection
    comparison: tuple[ComparisonRow, ...]
    sites: tuple[SiteRow, ...]
    periods: tuple[Period, ...] = field(default=())

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return report_alerts(self)


# ------------------------------------------------------------------------- helpers


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return _("%(first)s et %(last)s", first=", ".join(names[:-1]), last=names[-1])


def _quadrant_label(code: str) -> str:
    labels = {
        "concentrate_here": _("Concentrer les efforts ici (besoins mal couverts)"),
        "keep_up": _("Maintenir le niveau"),
        "low_priority": _("Faible priorité"),
        "possible_overkill": _("Sur-qualité possible"),
        "uncertain": _("Incertain (l'intervalle de confiance chevauche un axe)"),
    }
    assert set(labels) == set(QUADRANT_LABELS)
    return labels[code]


def empty_estimate() -> Estimate:
    """The estimate of a scope without a single answer: hidden, like any cell under 10."""
    nan = float("nan")
    return Estimate(nan, nan, nan, nan, 0, 0.0, nan, "hidden", nan)


def _usable(est: Estimate | None) -> bool:
    return est is not None and est.publishable and math.isfinite(est.se) and est.se > 0


def suppression_reason(est: Estimate) -> str:
    """Why a number is not shown, in the reader's language (the rules of analysis.estimates)."""
    rules = DEFAULT_RULES
    if est.flag == "hidden":
        return _("moins de %(n)s réponses", n=rules.hide_below)
    if est.n < rules.min_n:
        return _("moins de %(n)s réponses", n=rules.min_n)
    return _("effectif efficace inférieur à %(n)s", n=int(rules.min_n_eff))


def _get(table: cellstats.CellEstimates, *group) -> Estimate:
    try:
        return table.get(*group)
    except KeyError:
        return empty_estimate()


def _question_label(questionnaire, key: str, lang: str) -> str:
    try:
        return questionnaire.question(key).label.get(lang)
    except KeyError:
        return key


def _rake(cells: pd.DataFrame, margins) -> tuple[cellstats.CellRaking | None, str | None]:
    """Raking of a scope to the organisation's margins, or None and why not."""
    if not margins:
        return None, _("Réponses non pondérées : la collectivité n'a pas saisi les marges de sa population.")
    if cells.empty:
        return None, None
    try:
        return cellstats.rake_cells(cells, margins), None
    except ValueError:
        return None, _(
            "Réponses non pondérées : l'échantillon ne permet pas de le redresser sur les marges de la population "
            "(une catégorie sans répondant)."
        )


def _versions_by_period(service_id: int, periods: Sequence[Period], grain: str) -> dict[pd.Period, tuple[int, ...]]:
    """Questionnaire version numbers answered in each period, from the versions' date ranges."""
    rows = db.session.execute(
        select(Response.version_id, func.min(Response.submitted_at), func.max(Response.submitted_at))
        .where(Response.service_id == service_id)
        .group_by(Response.version_id)
    ).all()
    if not rows:
        return {}
    numbers = dict(
        db.session.execute(
            select(QuestionnaireVersion.id, QuestionnaireVersion.number).where(
                QuestionnaireVersion.id.in_([r[0] for r in rows])
            )
        ).all()
    )
    out: dict[pd.Period, tuple[int, ...]] = {}
    for p in periods:
        hit = []
        for vid, first, last in rows:
            first_day, last_day = _day(first), _day(last)
            if first_day <= p.end and last_day >= p.start:
                hit.append(numbers[vid])
        out[p.key] = tuple(sorted(hit))
    return out


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


# ------------------------------------------------------------------------- families


def _org_family(organisation_id: int, grain: str, start: date, end: date, cells: dict | None = None) -> dict:
    """Trend slopes and public gaps of every service of the organisation, with the FDR
    controlled over all of them at once: a service is not flagged because it happened to
    be tested alone, and every reader sees the same flags.

    Each service's part is cached by its own data version over the range, so a new
    response recomputes one service's part, and none when it answers another month; the parts missing are computed from one read of the read model
    for all of them (or from ``cells``, service id -> cells, when the caller has read
    them). The adjustment over the family is cached by the versions of all.
    """
    ids = _organisation_services(organisation_id)
    versions = results.range_versions(ids, start, end)
    table_key = (organisation_id, grain, start, end, tuple(versions[sid] for sid in ids))
    tables = _family_tables.peek(table_key)
    if tables is not None:
        return tables
    keys = {sid: (sid, grain, start, end, versions.get(sid, 0)) for sid in ids}
    parts = {sid: _families.peek(keys[sid]) for sid in ids}
    missing = [sid for sid in ids if parts[sid] is None]
    if missing:
        margins = results.population_margins(organisation_id)
        if cells is None or any(sid not in cells for sid in missing):
            cells = _cells_by_service(missing, start, end, ["overall"])
        for sid in missing:
            parts[sid] = _family_part(sid, grain, start, end, margins, cells.get(sid))
            _families.put(keys[sid], parts[sid])
    parts = [parts[sid] for sid in ids]
    slopes = [p["slope"] for p in parts if p["slope"] is not None]
    slope_frame = pd.DataFrame(slopes, columns=["service_id", "slope", "p", "trend"])
    slope_frame["significant"] = (
        adjust(slope_frame["p"], alpha=ALPHA)["reject"].to_numpy() if len(slope_frame) else pd.Series(dtype=bool)
    )
    changes = pd.DataFrame([p["change"] for p in parts if p["change"] is not None], columns=["service_id", "p"])
    changes["significant"] = (
        adjust(changes["p"], alpha=ALPHA)["reject"].to_numpy() if len(changes) else pd.Series(dtype=bool)
    )
    gaps = [p["gaps"] for p in parts if p["gaps"] is not None]
    gap_frame = pd.concat(gaps, ignore_index=True) if gaps else pd.DataFrame()
    if len(gap_frame):
        family = adjust(gap_frame["p"], alpha=ALPHA)
        gap_frame["p_family"] = family["p_adjusted"].to_numpy()
        gap_frame["under_served"] = (
            (gap_frame["gap"] < 0)
            & family["reject"].to_numpy()
            & ~gap_frame["flag"].isin(["suppressed", "hidden"]).to_numpy()
        )
    tables = {
        "slopes": slope_frame.set_index("service_id"),
        "gaps": gap_frame,
        "changes": changes.set_index("service_id"),
        # Each service's % satisfied over the range and its raking, for the comparison
        # and the report of the service itself.
        "satisfied": {sid: p["satisfied"] for sid, p in zip(ids, parts, strict=True)},
        "raking": {sid: p["raking"] for sid, p in zip(ids, parts, strict=True)},
        "by_period": {sid: p["by_period"] for sid, p in zip(ids, parts, strict=True)},
    }
    _family_tables.put(table_key, tables)
    return tables


def org_family(organisation_id: int, grain: str, start: date, end: date) -> dict:
    """The organisation's family of tests over a range (see `_org_family`): per service,
    ``satisfied`` (its % satisfied over the range, an `Estimate`) and ``raking``
    ((raking, note)), and the tables ``slopes``, ``changes`` and ``gaps`` (with raw and
    family-adjusted p-values); each service's part cached by its data version of the
    range. The steering reads a service's year from it."""
    return _org_family(organisation_id, grain, start, end)


def year_satisfied(organisation_id: int, year: int) -> dict:
    """Each service's % satisfied over a calendar ``year`` and its raking, as
    `org_family` at the year grain has them (``satisfied`` and ``raking``, by service id)
    without the trends and gaps it also computes: what the steering reads of the past
    years. A service's family part of that year is used when it is cached; otherwise its
    figures are computed as that part computes them (`satisfied_part`) and cached by
    the same data version."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    ids = _organisation_services(organisation_id)
    versions = results.range_versions(ids, start, end)
    parts = {}
    for sid in ids:
        key = (sid, "year", start, end, versions.get(sid, 0))
        parts[sid] = _families.peek(key) or _year_parts.peek(key)
    missing = [sid for sid in ids if parts[sid] is None]
    if missing:
        margins = results.population_margins(organisation_id)
        cells = _cells_by_service(missing, start, end, ["overall"])
        for sid in missing:
            parts[sid] = satisfied_part(margins, _overall_cells(cells.get(sid)))
            _year_parts.put((sid, "year", start, end, versions.get(sid, 0)), parts[sid])
    return {
        "satisfied": {sid: p["satisfied"] for sid, p in parts.items()},
        "raking": {sid: p["raking"] for sid, p in parts.items()},
    }


def _organisation_services(organisation_id: int) -> list[int]:
    return list(
        db.session.execute(select(Service.id).where(Service.organisation_id == organisation_id).order_by(Service.id))
        .scalars()
        .all()
    )


def _slope(mean_table: pd.DataFrame, service_id: int) -> dict | None:
    """WLS slope of the mean score per period (the planted and the real declines show
    first in the mean), over the published periods; None under three of them."""
    if len(mean_table) < 3:  # a range of one or two periods (the steering's years)
        return None
    published = mean_table[mean_table["flag"].isin(["ok", "caution"]) & (mean_table["se"] > 0)]
    if len(published) < 3:
        return None
    t = trend(published, period="period", value="value", se="se")
    return {"service_id": service_id, "slope": t.slope, "p": t.p, "trend": t}


def _overall_cells(cells: pd.DataFrame | None) -> pd.DataFrame | None:
    """The cells of ``overall`` and the responses (other keys left out)."""
    if cells is None:
        return None
    keys = cells["question_key"]
    wanted = {"overall", results.RESPONSES_KEY}
    if isinstance(keys.dtype, pd.CategoricalDtype) and set(keys.cat.categories) <= wanted:
        return cells  # read for these keys alone
    return cells[keys.isin(list(wanted)).to_numpy(dtype=bool)]


def satisfied_part(margins, cells: pd.DataFrame | None) -> dict:
    """The raking (raking, note) and % satisfied of a scope of cells (those of
    `_overall_cells`: a service's, or the pooled services of a policy)."""
    if cells is None or cells.empty:
        return {"raking": (None, None), "satisfied": empty_estimate()}
    raking, note = _rake(cells, margins)
    satisfied = cellstats.estimate(cells, "overall", statistic="satisfied", raking=raking)
    return {"raking": (raking, note), "satisfied": satisfied}


def _family_part(service_id: int, grain: str, start: date, end: date, margins, cells: pd.DataFrame | None) -> dict:
    """One service's trend slope and public gaps (unadjusted p-values), from its cells
    (``overall`` and the responses; other keys are left out here), with its
    `satisfied_part`."""
    cells = _overall_cells(cells)
    if cells is None or cells.empty:
        return {"slope": None, "gaps": None, "change": None, "by_period": None, **satisfied_part(margins, cells)}
    # The raking and the estimate over the whole scope do not depend on the periods.
    whole = satisfied_part(margins, cells)
    raking, _note = whole["raking"]
    cells = cellstats.with_period(cells, grain)
    sat = cellstats.estimates(cells, "overall", by="period", statistic="satisfied", raking=raking)
    mean = cellstats.estimates(cells, "overall", by="period", statistic="mean", raking=raking)
    slope = _slope(mean.table, service_id)
    periods = pd.period_range(pd.Period(start, _FREQ[grain]), pd.Period(end, _FREQ[grain]), freq=_FREQ[grain])
    change = None
    if len(periods) > 1:
        prev, cur = _get(sat, periods[-2]), _get(sat, periods[-1])
        if _usable(prev) and _usable(cur):
            change = {"service_id": service_id, "p": compare_periods(prev, cur).p}
    try:
        gaps = cellstats.segment_gaps(cells, "overall", list(PUBLIC_COLUMNS), statistic="satisfied", raking=raking)
        gaps = gaps.assign(service_id=service_id)
    except ValueError:
        gaps = None
    # The raking depends on the responses only: the service's report and summary reuse it,
    # and the % satisfied and mean score by period.
    return {"slope": slope, "gaps": gaps, "change": change, "by_period": (sat, mean), **whole}


# ----------------------------------------------------------------------- the report


def build_service_report(
    service: Service,
    *,
    grain: str,
    start: date,
    end: date,
    site: Site | None = None,
    lang: str = "fr",
    viewer_scope: frozenset[int] | None = None,
) -> ServiceReport:
    """The service report for a grain and date range, on the read model, cached by the
    data versions of the range (`results.range_versions`) of every service of the
    organisation: its family of tests and the comparison read them all.

    ``viewer_scope`` holds the ids of the services the reader may see one by one (None:
    all): the comparison names only those, and pools the others.
    """
    periods = report_periods(grain, start, end, lang)
    start, end = periods[0].start, periods[-1].end
    versions = results.range_versions(_organisation_services(service.organisation_id), start, end)
    # Raised by any change to the range of any of them (each version only grows).
    version = sum(versions.values())
    key = (service.id, site.id if site else None, grain, start, end, lang, tuple(versions.items()), viewer_scope)
    return _reports.get_or_make(
        key,
        lambda: _build(
            service, grain=grain, periods=periods, site=site, lang=lang, version=version, scope=viewer_scope
        ),
    )


def _build(service: Service, *, grain, periods, site, lang, version, scope) -> ServiceReport:
    start, end = periods[0].start, periods[-1].end
    context = get_survey(service.slug)
    questionnaire = context.questionnaire
    drivers = list(questionnaire.drivers)
    cells = results.cells_frame([service.id], start=start, end=end)
    if site is not None:
        cells = cells[cells["site_id"] == site.id]
    cells = cellstats.with_period(cells, grain)
    margins = results.population_margins(service.organisation_id)
    family = _org_family(service.organisation_id, grain, start, end)
    if site is None and service.id in family["raking"]:
        raking, note = family["raking"][service.id]  # the same responses, raked once
    else:
        raking, note = _rake(cells, margins)

    def by_period(statistic):
        if cells.empty:
            return None
        return cellstats.estimates(cells, "overall", by="period", statistic=statistic, raking=raking)

    if site is None and family["by_period"].get(service.id) is not None:
        sat_table, mean_table = family["by_period"][service.id]  # the same cells, estimated once
    else:
        sat_table, mean_table = by_period("satisfied"), by_period("mean")
    versions = _versions_by_period(service.id, periods, grain)
    trend_section = _trend_section(service, periods, sat_table, mean_table, versions, site, grain, family)
    headline = _headline(trend_section, _target(service))
    if cells.empty:
        overall_sat = overall_mean = empty_estimate()
    else:
        overall_sat = cellstats.estimate(cells, "overall", statistic="satisfied", raking=raking)
        overall_mean = cellstats.estimate(cells, "overall", statistic="mean", raking=raking)
    moments = _moments(service, site, start, end) if drivers else None
    drivers_section = _drivers(moments, drivers, questionnaire, lang, raking)
    attributes = _attributes(cells, moments, drivers, questionnaire, lang, raking)
    publics = _publics(service, site, cells, raking, context, lang, grain, start, end)
    comparison = _comparison(service, start, end, scope, margins, family["satisfied"])
    sites = _sites(service, site, cells, raking, periods) if site is None else ()
    return ServiceReport(
        service_slug=service.slug,
        service_name=service.name,
        policy_name=service.policy.name,
        domain_name=service.policy.domain.name,
        organisation_name=service.organisation.name,
        site_code=site.code if site else None,
        site_name=site.name if site else None,
        grain=grain,
        start=start,
        end=end,
        lang=lang,
        data_version=version,
        weighted=raking is not None,
        weighting_note=note,
        headline=headline,
        overall_satisfied=overall_sat,
        overall_mean=overall_mean,
        trend=trend_section,
        attributes=attributes,
        drivers=drivers_section,
        publics=publics,
        comparison=comparison,
        sites=sites,
        periods=tuple(periods),
    )


def _trend_section(service, periods, sat_table, mean_table, versions, site, grain, family=None) -> TrendSection:
    sats = [_get(sat_table, p.key) if sat_table is not None else empty_estimate() for p in periods]
    means = [_get(mean_table, p.key) if mean_table is not None else empty_estimate() for p in periods]
    changes: list[Change | None] = [None]
    for prev, cur in zip(sats, sats[1:], strict=False):
        changes.append(compare_periods(prev, cur) if _usable(prev) and _usable(cur) else None)
    pvalues = pd.Series([c.p if c is not None else np.nan for c in changes], dtype=float)
    significant = adjust(pvalues, alpha=ALPHA)["reject"].to_numpy()
    points = tuple(
        TrendPoint(p, s, m, c, bool(sig), versions.get(p.key, ()))
        for p, s, m, c, sig in zip(periods, sats, means, changes, significant, strict=True)
    )
    slope, slope_sig, last_sig = None, False, False
    if site is None:
        if family is None:
            family = _org_family(service.organisation_id, grain, periods[0].start, periods[-1].end)
        slopes, changes = family["slopes"], family["changes"]
        if service.id in slopes.index:
            slope = slopes.loc[service.id, "trend"]
            slope_sig = bool(slopes.loc[service.id, "significant"])
        last_sig = service.id in changes.index and bool(changes.loc[service.id, "significant"])
    elif mean_table is not None:
        part = _slope(mean_table.table, service.id)
        if part is not None:
            slope, slope_sig = part["trend"], part["p"] < ALPHA
        last_sig = changes[-1] is not None and changes[-1].p < ALPHA
    marks = [max(p.versions) if p.versions else None for p in points]
    known = [(i, v) for i, v in enumerate(marks) if v is not None]
    breaks = tuple(i for (_, a), (i, b) in zip(known, known[1:], strict=False) if a != b)
    return TrendSection(points, slope, slope_sig, breaks, last_sig)


def _target(service: Service) -> float | None:
    return db.session.execute(
        select(Priority.satisfaction_target).where(Priority.policy_id == service.policy_id)
    ).scalar_one_or_none()


def _headline(trend_section: TrendSection, target) -> Headline:
    points = trend_section.points
    last = points[-1] if points else None
    prev = points[-2] if len(points) > 1 else None
    return Headline(
        period=last.period if last else None,
        satisfied=last.satisfied if last else None,
        mean=last.mean if last else None,
        previous=prev.period if prev else None,
        change=last.change if last else None,
        significant=bool(last and last.change is not None and trend_section.last_significant),
        target=float(target) if target is not None else None,
    )


def _moments(service, site, start, end) -> pd.DataFrame:
    moments = results.moments_frame([service.id], start=start, end=end)
    if site is not None:
        moments = moments[moments["site_id"] == site.id]
    return moments


def _drivers(moments, drivers, questionnaire, lang, raking) -> DriversSection:
    if not drivers:
        return DriversSection((), None, 0, _("Ce questionnaire n'a pas de critères détaillés."))
    if moments.empty:
        return DriversSection((), None, 0, _("Pas assez de réponses complètes pour estimer ce qui compte."))
    variables = tuple(moments["variables"].iloc[-1])
    used = [d for d in variables[1:]]
    try:
        table = cellstats.relative_importance(moments, "overall", used, raking=raking)
    except (ValueError, np.linalg.LinAlgError):
        return DriversSection((), None, 0, _("Pas assez de réponses complètes pour estimer ce qui compte."))
    n = int(table.attrs["n"])
    if n < DEFAULT_RULES.min_n:
        return DriversSection((), None, n, _("moins de %(n)s réponses complètes", n=DEFAULT_RULES.min_n))
    rows = tuple(
        DriverRow(
            k, _question_label(questionnaire, k, lang), float(table.loc[k, "share"]), float(table.loc[k, "importance"])
        )
        for k in table.sort_values("share", ascending=False).index
    )
    return DriversSection(rows, float(table.attrs["r2"]), n, None)


def _attributes(cells, moments, drivers, questionnaire, lang, raking) -> AttributesSection:
    if not drivers:
        return AttributesSection((), None, (), (), _("Ce questionnaire n'a pas de critères détaillés."))
    ci = _ipa_intervals(moments, drivers, raking, IPA_LEVEL)
    quad = None if ci is None else quadrants(ci["performance"], ci["importance"], ci=ci)
    rows = []
    for key in drivers:
        if cells.empty or not (cells["question_key"] == key).any():
            perf = sat = empty_estimate()
        else:
            perf = cellstats.estimate(cells, key, statistic="mean", raking=raking)
            sat = cellstats.estimate(cells, key, statistic="satisfied", raking=raking)
        in_ipa = quad is not None and key in quad.index
        rows.append(
            AttributeRow(
                key=key,
                label=_question_label(questionnaire, key, lang),
                performance=perf,
                satisfied=sat,
                importance=float(ci.loc[key, "importance"]) if in_ipa else None,
                importance_low=float(ci.loc[key, "imp_low"]) if in_ipa else None,
                importance_high=float(ci.loc[key, "imp_high"]) if in_ipa else None,
                quadrant=str(quad.loc[key, "quadrant"]) if in_ipa else None,
                ipa_performance=float(ci.loc[key, "performance"]) if in_ipa else None,
            )
        )
    if quad is None:
        reason = _("Pas assez de réponses complètes pour situer les critères (moins de %(n)s).", n=DEFAULT_RULES.min_n)
        return AttributesSection(tuple(rows), None, (), (), reason)
    over = tuple(r.label for r in rows if r.quadrant == "possible_overkill")
    under = tuple(r.label for r in rows if r.quadrant == "concentrate_here")
    return AttributesSection(tuple(rows), tuple(quad.attrs["crosshairs"]), over, under, None)


def _category_labels(context, lang: str) -> dict[str, dict[str, str]]:
    out = {}
    for column in PUBLIC_COLUMNS:
        try:
            q = context.questionnaire.question(column)
        except KeyError:
            continue
        out[column] = {c.code: c.label.get(lang) for c in choices_for(q, context.areas)}
    return out


def _column_labels() -> dict[str, str]:
    return {
        "age_band": _("Âge"),
        "sex": _("Sexe"),
        "area": _("Quartier"),
        "frequency": _("Fréquentation"),
    }


def _publics(service, site, cells, raking, context, lang, grain, start, end, family=None) -> PublicsSection:
    """``cells``: the scope's cells; None for a whole service that has answers (its gaps
    come from the organisation's ``family`` of the range, which read them; looked up
    when not given)."""
    if cells is not None and len(cells) == 0:
        return PublicsSection((), (), _("Aucune réponse sur la période."))
    if site is None:
        if family is None:
            family = _org_family(service.organisation_id, grain, start, end)
        family = family["gaps"]
        gaps = family[family["service_id"] == service.id] if len(family) else family
        p_column = "p_family"
    else:
        try:
            gaps = cellstats.segment_gaps(cells, "overall", list(PUBLIC_COLUMNS), statistic="satisfied", raking=raking)
        except ValueError:
            gaps = pd.DataFrame()
        p_column = "p_adjusted"
    if gaps.empty:
        return PublicsSection((), (), _("Pas assez de réponses pour comparer les publics."))
    labels = _category_labels(context, lang)
    columns = _column_labels()
    rows = []
    for g in gaps.itertuples(index=False):
        flag = str(g.flag)
        est = Estimate(
            float(g.estimate),
            float(g.se),
            float("nan"),
            float("nan"),
            int(g.n),
            float(g.n_eff),
            float("nan"),
            flag,
            float("nan"),
        )
        rows.append(
            PublicRow(
                column=g.column,
                column_label=columns.get(g.column, g.column),
                category=str(g.category),
                label=labels.get(g.column, {}).get(str(g.category), str(g.category)),
                estimate=est,
                gap=float(g.gap),
                ci_low=float(g.ci_low),
                ci_high=float(g.ci_high),
                p_adjusted=float(getattr(g, p_column)),
                under_served=bool(g.under_served),
            )
        )
    order = {c: i for i, c in enumerate(PUBLIC_COLUMNS)}
    rows.sort(key=lambda r: (order.get(r.column, 99), r.category))
    less = tuple(f"{r.label} ({r.column_label.lower()})" for r in rows if r.under_served)
    return PublicsSection(tuple(rows), less, None)


def _pooled_estimate(ids: Sequence[int], start, end, margins, cells: pd.DataFrame | None = None) -> Estimate:
    """% satisfied of some services pooled, from ``cells`` (read for them, or for more:
    the rows of ``ids`` are kept) or from the read model."""
    if cells is None:
        cells = results.cells_frame(list(ids), start=start, end=end, keys=["overall"])
    else:
        cells = _own_categories(cells[cells["service_id"].isin(list(ids)).to_numpy(dtype=bool)])
    if cells.empty:
        return empty_estimate()
    raking, _note = _rake(cells, margins)
    return cellstats.estimate(cells, "overall", statistic="satisfied", raking=raking)


def _comparison(service, start, end, scope, margins, satisfied: Mapping[int, Estimate]) -> tuple[ComparisonRow, ...]:
    """The service beside the other services of its policy and of its domain; those the
    reader may not see one by one are pooled (never fewer than two in a pool).
    ``satisfied``: each service's % satisfied over the range (its family part); only the
    pools are read from the read model."""
    others = db.session.execute(
        select(Service)
        .join(Policy, Policy.id == Service.policy_id)
        .where(
            Service.organisation_id == service.organisation_id,
            Service.id != service.id,
            Policy.domain_id == service.policy.domain_id,
        )
        .order_by(Service.name)
    ).scalars()
    same_policy, same_domain = [], []
    for s in others:
        (same_policy if s.policy_id == service.policy_id else same_domain).append(s)
    pooled = [s for s in same_policy + same_domain if not (scope is None or s.id in scope)]
    # One read for every service that is pooled.
    cells = results.cells_frame([s.id for s in pooled], start=start, end=end, keys=["overall"]) if pooled else None

    def own(s: Service) -> Estimate:
        est = satisfied.get(s.id)
        return est if est is not None else empty_estimate()

    rows = [ComparisonRow(service.name, "self", _("ce service"), own(service))]
    for group_label, members in (
        (_("même politique (%(name)s)", name=service.policy.name), same_policy),
        (_("même domaine (%(name)s)", name=service.policy.domain.name), same_domain),
    ):
        visible = [s for s in members if scope is None or s.id in scope]
        hidden = [s for s in members if not (scope is None or s.id in scope)]
        for s in visible:
            rows.append(ComparisonRow(s.name, "service", group_label, own(s)))
        if len(hidden) >= MIN_POOLED_SERVICES:
            rows.append(
                ComparisonRow(
                    _("%(n)s autres services (regroupés)", n=len(hidden)),
                    "pooled",
                    group_label,
                    _pooled_estimate([s.id for s in hidden], start, end, margins, cells),
                    services=len(hidden),
                )
            )
    return tuple(rows)


def _sites(service, site, cells, raking, periods) -> tuple[SiteRow, ...]:
    if not service.sites or cells.empty:
        return ()
    last, prev = periods[-1], periods[-2] if len(periods) > 1 else None
    sat = cellstats.estimates(cells, "overall", by=["site_id", "period"], statistic="satisfied", raking=raking)
    mean = cellstats.estimates(cells, "overall", by=["site_id", "period"], statistic="mean", raking=raking)
    rows = []
    for s in service.sites:
        cur = _get(sat, s.id, last.key)
        before = _get(sat, s.id, prev.key) if prev else None
        change = compare_periods(before, cur) if _usable(before) and _usable(cur) else None
        rows.append(SiteRow(s.code, s.name, cur, _get(mean, s.id, last.key), change, bool(change and change.p < ALPHA)))
    return tuple(rows)


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    #: Higher is more urgent.
    severity: int
    text: str


def report_alerts(report: ServiceReport) -> tuple[Alert, ...]:
    """What needs the manager's attention in a report, most urgent first."""
    return alerts_for(report.headline, report.trend, report.attributes.under_served, report.publics.less_satisfied)


def alerts_for(h: Headline, t: TrendSection, under_served: Sequence[str], less_satisfied: Sequence[str]):
    """Alerts from a headline, a trend and the names of under-served attributes and publics."""
    alerts = []
    if h.direction == "down":
        alerts.append(
            Alert(
                5,
                _(
                    "Baisse significative de la satisfaction : %(delta)s points depuis %(prev)s.",
                    delta=format_decimal(h.change.delta * 100, format="+0;-0"),
                    prev=h.previous.label,
                ),
            )
        )
    if t.slope is not None and t.slope_significant and t.slope.slope < 0:
        alerts.append(Alert(4, _("Satisfaction en baisse régulière sur la période.")))
    if under_served:
        alerts.append(Alert(3, _("Besoins mal couverts : %(names)s.", names=_join(under_served))))
    if less_satisfied:
        alerts.append(Alert(3, _("Publics moins satisfaits : %(names)s.", names=_join(less_satisfied))))
    if h.satisfied is not None and not h.satisfied.publishable:
        alerts.append(
            Alert(
                2,
                _("Trop peu de réponses sur la dernière période (%(reason)s).", reason=suppression_reason(h.satisfied)),
            )
        )
    return tuple(sorted(alerts, key=lambda a: -a.severity))


@dataclass(frozen=True)
class Summary:
    """What the home shows of a service: its headline, its trend and its alerts."""

    headline: Headline
    trend: TrendSection
    alerts: tuple[Alert, ...]
    #: Attributes in the over-quality quadrant (not an alert: a saving to consider).
    over_quality: tuple[str, ...] = ()
    #: The attributes' importance-performance quadrants (`_ipa_point`), None when they
    #: could not be computed.
    ipa: pd.DataFrame | None = field(default=None, compare=False)
    #: The attributes' labels in the summary's language, by key.
    attribute_labels: Mapping[str, str] = field(default_factory=dict, compare=False)


def service_summary(service: Service, *, grain: str, start: date, end: date, lang: str) -> Summary:
    """A service's headline and alerts without the rest of its report, cached by data version."""
    return _summaries([service], grain=grain, start=start, end=end, lang=lang)[service.id]


def _summaries(services: Sequence[Service], *, grain: str, start: date, end: date, lang: str) -> dict[int, Summary]:
    """The summaries of several services: those not cached are computed from one read of
    the read model's cells and one of its moments for all of them."""
    periods = report_periods(grain, start, end, lang)
    start, end = periods[0].start, periods[-1].end
    versions = results.range_versions([s.id for s in services], start, end)
    keys = {s.id: ("summary", s.id, grain, start, end, lang, versions.get(s.id, 0)) for s in services}
    out = {s.id: _summary_cache.peek(keys[s.id]) for s in services}
    missing = [s for s in services if out[s.id] is None]
    if not missing:
        return out
    contexts = {s.id: get_survey(s.slug) for s in missing}
    # The overall score comes from the organisation's family (its % satisfied and mean
    # by period, its raking, its publics), the attributes from the moments.
    moments = _moments_by_service([s.id for s in missing], start, end)
    by_organisation: dict[int, list[Service]] = {}
    for s in missing:
        by_organisation.setdefault(s.organisation_id, []).append(s)
    for organisation_id, members in by_organisation.items():
        family = _org_family(organisation_id, grain, start, end)
        for s in members:
            out[s.id] = _summary(s, grain, periods, lang, contexts[s.id], moments[s.id], family)
            _summary_cache.put(keys[s.id], out[s.id])
    return out


def _moments_by_service(ids: Sequence[int], start: date, end: date) -> dict[int, pd.DataFrame]:
    """The read model's moments of several services in one query, split by service (see
    `_by_service`)."""
    return _by_service(results.moments_frame(list(ids), start=start, end=end), ids)


def _ipa_point(moments, drivers, raking) -> pd.DataFrame | None:
    """Importance-performance quadrants of the home's alerts (`_ipa_intervals` at
    `HOME_IPA_LEVEL`), or None."""
    ci = _ipa_intervals(moments, drivers, raking, HOME_IPA_LEVEL)
    return None if ci is None else quadrants(ci["performance"], ci["importance"], ci=ci)


def _ipa_intervals(moments, drivers, raking, level: float) -> pd.DataFrame | None:
    """Importance and performance of the attributes with their intervals, from the read
    model's moments alone (no respondent is read): over the complete responses (those
    that rate overall and every attribute), each attribute's LMG share of R² and its
    mean, with their delete-a-group jackknife intervals at ``level``
    (`analysis.cells.share_intervals`). An attribute whose interval crosses a crosshair
    is then "uncertain" (`analysis.ipa.quadrants`). The report and the home use the same
    intervals, so that they agree. None when the model cannot be fitted or rests on
    fewer complete responses than the suppression rules' minimum."""
    if moments is None or moments.empty:
        return None
    variables = tuple(moments["variables"].iloc[-1])
    used = [d for d in variables[1:] if d in drivers]
    if len(used) < 2:
        return None
    try:
        table = cellstats.share_intervals(moments, "overall", used, raking=raking, level=level)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if table.attrs["n"] < DEFAULT_RULES.min_n:
        return None
    ci = pd.DataFrame(
        {
            "performance": table["mean"].to_numpy(),
            "importance": table["share"].to_numpy(),
            "perf_low": table["mean_low"].to_numpy(),
            "perf_high": table["mean_high"].to_numpy(),
            "imp_low": table["share_low"].to_numpy(),
            "imp_high": table["share_high"].to_numpy(),
        },
        index=pd.Index(used),
    )
    ci.attrs["n"] = int(table.attrs["n"])
    return ci


def _summary(service: Service, grain, periods, lang, context, moments, family) -> Summary:
    """A service's summary from its part of the organisation's ``family`` and its moments."""
    start, end = periods[0].start, periods[-1].end
    drivers = list(context.questionnaire.drivers)
    raking, _note = family["raking"].get(service.id, (None, None))
    tables = family["by_period"].get(service.id) or (None, None)
    answered = family["satisfied"].get(service.id, empty_estimate()).n > 0
    trend_section = _trend_section(service, periods, *tables, {}, None, grain, family)
    headline = _headline(trend_section, _target(service))
    under = over = ()
    quad = None
    labels = {k: _question_label(context.questionnaire, k, lang) for k in drivers}
    if drivers and answered:
        quad = _ipa_point(moments, drivers, raking)
        if quad is not None:
            under, over = (
                tuple(labels[k] for k in quad.index[quad["quadrant"] == code])
                for code in ("concentrate_here", "possible_overkill")
            )
    publics = _publics(service, None, None if answered else (), raking, context, lang, grain, start, end, family)
    alerts = alerts_for(headline, trend_section, under, publics.less_satisfied)
    return Summary(headline, trend_section, alerts, over, quad, labels)


@dataclass(frozen=True)
class AttributeQuadrants:
    """A service's attributes the importance-performance analysis sets apart, as
    (key, label) pairs in questionnaire order."""

    #: "Possible overkill": rated well above the others, weighing little (over-quality).
    over_quality: tuple[tuple[str, str], ...]
    #: "Concentrate here": weighing much, rated low (under-served); never an "uncertain" one.
    under_served: tuple[tuple[str, str], ...]
    #: `analysis.ipa.quadrants` of the service, None when it could not be computed.
    ipa: pd.DataFrame | None = field(default=None, compare=False)


def attribute_quadrants(
    services: Sequence[Service], *, start: date, end: date, lang: str
) -> dict[int, AttributeQuadrants]:
    """Each service's over-quality and under-served attributes from ``start`` to
    ``end`` (whole years: the steering's), by service id: the home's importance-performance
    analysis (`_ipa_point`, on the raking of the organisation's family), without the rest
    of the home's summary. Cached by each service's data version over the range; those
    not cached are computed from one read of the moments for all of them."""
    periods = report_periods("year", start, end, lang)
    start, end = periods[0].start, periods[-1].end
    versions = results.range_versions([s.id for s in services], start, end)
    keys = {s.id: ("quadrants", s.id, start, end, lang, versions.get(s.id, 0)) for s in services}
    out = {s.id: _quadrant_cache.peek(keys[s.id]) for s in services}
    missing = [s for s in services if out[s.id] is None]
    if not missing:
        return out
    moments = _moments_by_service([s.id for s in missing], start, end)
    by_organisation: dict[int, list[Service]] = {}
    for s in missing:
        by_organisation.setdefault(s.organisation_id, []).append(s)
    questionnaires = current_questionnaires([s.id for s in missing])
    with force_locale(lang):
        for organisation_id, members in by_organisation.items():
            family = _org_family(organisation_id, "year", start, end)
            for s in members:
                out[s.id] = _attribute_quadrants(s, questionnaires[s.id], lang, moments[s.id], family)
                _quadrant_cache.put(keys[s.id], out[s.id])
    return out


def _attribute_quadrants(service: Service, questionnaire, lang: str, moments, family) -> AttributeQuadrants:
    """One service's quadrants, as its home summary finds them (`_summary`)."""
    drivers = list(questionnaire.drivers)
    raking, _note = family["raking"].get(service.id, (None, None))
    answered = family["satisfied"].get(service.id, empty_estimate()).n > 0
    quad = _ipa_point(moments, drivers, raking) if drivers and answered else None
    if quad is None:
        return AttributeQuadrants((), (), None)
    pairs = {
        code: tuple((k, _question_label(questionnaire, k, lang)) for k in quad.index[quad["quadrant"] == code])
        for code in ("possible_overkill", "concentrate_here")
    }
    return AttributeQuadrants(pairs["possible_overkill"], pairs["concentrate_here"], quad)


@dataclass(frozen=True)
class HomeRow:
    slug: str
    name: str
    policy: str
    is_open: bool
    responses: int
    last_response: object
    summary: Summary
    alerts: tuple[Alert, ...]

    @property
    def urgency(self) -> int:
        return sum(a.severity for a in self.alerts)


def home_rows(user: User, *, grain: str, start: date, end: date, lang: str) -> list[HomeRow]:
    """Each service in the user's scope with its headline and alerts, most urgent first."""
    services = (
        db.session.execute(
            select(Service)
            .where(scope_filter(user))
            .options(
                joinedload(Service.policy).joinedload(Policy.domain),
                joinedload(Service.organisation),
                selectinload(Service.sites),
            )
            .order_by(Service.name)
        )
        .scalars()
        .all()
    )
    counts = {r.slug: r for r in services_in_scope(user)}
    summaries = _summaries(services, grain=grain, start=start, end=end, lang=lang)
    rows = []
    for s in services:
        summary = summaries[s.id]
        c = counts[s.slug]
        rows.append(
            HomeRow(s.slug, s.name, s.policy.name, s.is_open, c.responses, c.last_response, summary, summary.alerts)
        )
    rows.sort(key=lambda r: (-r.urgency, r.name))
    return rows


def viewer_scope(user: User) -> frozenset[int] | None:
    """The services a user may see one by one, for comparisons (None: every service of
    every organisation the user may see)."""
    ids = db.session.execute(select(Service.id).where(scope_filter(user))).scalars().all()
    return frozenset(ids)


# ------------------------------------------------------------------------- comments


@dataclass(frozen=True)
class Comment:
    submitted_at: datetime
    text: str
    overall: float | None
    site: str | None


@dataclass(frozen=True)
class CommentPage:
    comments: tuple[Comment, ...]
    page: int
    pages: int
    total: int
    q: str


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def service_comments(
    service: Service, *, site: Site | None, start: date, end: date, q: str = "", page: int = 1
) -> CommentPage:
    """Residents' comments with the overall score each gave, newest first, a page at a time."""
    overall = aliased(Answer)
    start_at = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end_at = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    conditions = [
        Response.service_id == service.id,
        Answer.question_key == "comment",
        Answer.text.is_not(None),
        Response.submitted_at >= start_at,
        Response.submitted_at < end_at,
    ]
    if site is not None:
        conditions.append(Response.site_id == site.id)
    q = (q or "").strip()
    if q:
        conditions.append(Answer.text.ilike(_like_pattern(q), escape="\\"))
    base = select(Answer.id).join(Response, Response.id == Answer.response_id).where(*conditions)
    total = db.session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    pages = max(1, math.ceil(total / COMMENTS_PER_PAGE))
    page = min(max(page, 1), pages)
    rows = db.session.execute(
        select(Response.submitted_at, Answer.text, overall.value, Site.name)
        .join(Response, Response.id == Answer.response_id)
        .outerjoin(overall, and_(overall.response_id == Response.id, overall.question_key == "overall"))
        .outerjoin(Site, Site.id == Response.site_id)
        .where(*conditions)
        .order_by(Response.submitted_at.desc(), Response.id.desc())
        .limit(COMMENTS_PER_PAGE)
        .offset((page - 1) * COMMENTS_PER_PAGE)
    ).all()
    return CommentPage(
        tuple(Comment(at, text, value, site_name) for at, text, value, site_name in rows), page, pages, total, q
    )
