r"""Redeployment: which services to reinforce or reduce, and what a budget cut would do.

Three steps, each a pure function over tidy frames:

* :func:`recommend` gives every service one of ``reinforce``, ``reduce``, ``maintain``
  or ``watch``, with its evidence and one plain French sentence;
  :func:`effort_savings` names, inside a service, the attributes that perform far above
  what they weigh in satisfaction (where effort can be saved);
* :func:`elasticity` estimates how the share of satisfied residents moves with a
  service's budget, on the history of services × years with service fixed effects,
  or states the default it falls back on;
* :func:`scenarios` compares the even cut ("réduction indifférenciée": every service
  loses the same share) with the strategic cut ("réduction stratégique": an
  optimisation that respects each policy's floor and maximises the projected
  satisfaction of users), with the projection's uncertainty.

The projection model
--------------------
A service's share satisfied :math:`p` responds to its budget :math:`B` through a
constant elasticity of the odds of being satisfied,

.. math:: \operatorname{logit} p' = \operatorname{logit} p + \varepsilon \ln(B'/B),

so that :math:`\partial p/\partial B = \varepsilon\,p(1-p)/B`: a euro cut costs less
satisfaction where satisfaction is already near the top (over-quality) and where the
budget per user is high, and the projected share always stays in (0, 1).

References
----------
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. *JRSS B*,
57(1), 289-300.

Martilla, J. A. & James, J. C. (1977). Importance-performance analysis. *Journal of
Marketing*, 41(1), 77-79.

Cox, D. R. & Snell, E. J. (1989). *Analysis of Binary Data*, 2nd ed. Chapman & Hall,
section 3.3 (weighted least squares on empirical logits).

Wooldridge, J. M. (2010). *Econometric Analysis of Cross Section and Panel Data*, 2nd
ed. MIT Press, ch. 10 (fixed effects).

Dantzig, G. B. (1956). Recent advances in linear programming. *Management Science*,
2(2), 131-144 (separable concave objectives as linear programs over their chords).

Huangfu, Q. & Hall, J. A. J. (2018). Parallelizing the dual revised simplex method.
*Mathematical Programming Computation*, 10(1), 119-142 (HiGHS, as in
``scipy.optimize.linprog``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, sparse, stats
from scipy.special import expit, logit

from analysis.trends import adjust

__all__ = [
    "DEFAULT_ELASTICITY",
    "DEFAULT_MAX_CUT",
    "PRIORITY_LABELS",
    "RECOMMENDATIONS",
    "RECOMMENDATION_LABELS",
    "Elasticity",
    "Recommendations",
    "Scenarios",
    "Solution",
    "UnreachableSaving",
    "effort_savings",
    "elasticity",
    "recommend",
    "scenarios",
]

#: The four recommendations, in the order a director reads them.
RECOMMENDATIONS = ("reinforce", "reduce", "maintain", "watch")
#: Their plain-French names.
RECOMMENDATION_LABELS = MappingProxyType(
    {
        "reinforce": "Renforcer (besoins mal couverts)",
        "reduce": "Réduire (sur-qualité)",
        "maintain": "Maintenir",
        "watch": "À surveiller (pas assez de réponses)",
    }
)
#: Priority levels of the strategic framework (référentiel stratégique).
PRIORITY_LABELS = MappingProxyType({1: "essentielle", 2: "importante", 3: "secondaire"})

#: The elasticity of the odds of satisfaction to the budget assumed when the history is
#: too short to estimate it, and its range (low, high). It is a cautious assumption,
#: not an estimate: a cut is taken to lower satisfaction, never to raise it; 0.3 means a
#: 10 % cut lowers the odds of being satisfied by about 3 % (about 0.8 point at 50 %
#: satisfied); the low end, 0, is "the cut changes nothing residents notice", the high
#: end doubles the central effect.
DEFAULT_ELASTICITY = (0.3, 0.0, 0.6)
#: The deepest cut the strategic solution may make in one service, as a share of its
#: budget: over-quality services first, then by priority level; under-served services
#: are never cut. The even cut stays feasible up to the smallest of these (10 %).
DEFAULT_MAX_CUT = MappingProxyType({"reduce": 0.5, 3: 0.4, 2: 0.2, 1: 0.1})

_SUPPRESSED = ("suppressed", "hidden")
_PUBLISHED = ("ok", "caution")


# --------------------------------------------------------------------------------
# French numbers


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %"


def _points(d: float) -> str:
    return f"{100 * d:+.0f} points".replace("-", "−")


def _eur(x: float) -> str:
    return f"{x:,.0f} €".replace(",", "\u202f")


def _num(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}".replace(".", ",")


def _jsonable(value):
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------
# Recommendations


@dataclass(frozen=True)
class Recommendations:
    """Every service's recommendation, with its evidence.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per service, in the input's order: ``service, policy, priority,
        recommendation, reason, evidence`` (a dict of plain numbers, JSON-ready) and
        the test columns ``gap_target, p_target, gap_peers, p_peers, p_target_adjusted,
        p_peers_adjusted, cost_per_user, high_cost, over_quality, below_target``.
    cost_reference : float
        The cost per user above which a service counts as costly (the
        ``cost_quantile`` of the services compared).
    alpha, min_gap : float
        FDR level and smallest gap that counts.
    """

    table: pd.DataFrame
    cost_reference: float
    alpha: float
    min_gap: float

    def to_list(self) -> list[dict]:
        """``[{"service", "recommendation", "reason", "evidence"}]``, JSON-ready."""
        cols = ["service", "recommendation", "reason", "evidence"]
        return [_jsonable(dict(zip(cols, row, strict=True))) for row in self.table[cols].itertuples(index=False)]

    def of(self, recommendation: str) -> list[str]:
        """The services given ``recommendation``."""
        return self.table.loc[self.table["recommendation"] == recommendation, "service"].tolist()


def _as_list(value) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _peer_means(data: pd.DataFrame, testable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out mean of the other testable services of the same policy, and its SE
    (:math:`\\sqrt{\\sum_j SE_j^2}/k`); NaN where a service has no such peer."""
    peer = np.full(len(data), np.nan)
    peer_se = np.full(len(data), np.nan)
    values = data["value"].to_numpy(dtype=float)
    ses = data["se"].to_numpy(dtype=float)
    policies = data["policy"].to_numpy()
    for pol in pd.unique(policies):
        members = np.flatnonzero((policies == pol) & testable)
        if len(members) < 2:
            continue
        for i in members:
            others = members[members != i]
            peer[i] = values[others].mean()
            peer_se[i] = math.sqrt(float(np.sum(ses[others] ** 2))) / len(others)
    return peer, peer_se


def recommend(
    services: pd.DataFrame,
    *,
    alpha: float = 0.05,
    min_gap: float = 0.05,
    reduce_levels=(3,),
    reinforce_levels=(1, 2),
    cost_quantile: float = 0.5,
    labels: Mapping[str, str] | None = None,
    method: str = "fdr_bh",
) -> Recommendations:
    r"""Recommend, for each service, to reinforce, reduce, maintain or watch it.

    For each service with a published estimate (flag "ok" or "caution") of its share
    satisfied :math:`\hat p` with standard error :math:`SE`, two gaps are tested:

    * to its policy's target :math:`T`: :math:`z = (\hat p - T)/SE` (the target is a
      fixed number);
    * to its policy's peers, the mean :math:`\bar p_{-s}` of the other published
      services of the same policy: :math:`z = (\hat p - \bar p_{-s}) /
      \sqrt{SE^2 + \sum_j SE_j^2/k^2}` (independent samples).

    Two-sided normal p-values of every test of every service compared form one family,
    adjusted by Benjamini-Hochberg (:func:`analysis.trends.adjust`). A gap counts when
    it is significant after adjustment *and* at least ``min_gap`` (5 points by
    default): with thousands of responses a 1-point gap is significant but tells a
    director nothing.

    The rules, in this order:

    ``watch``
        the estimate is suppressed or hidden (too few responses), or missing: nothing
        is recommended from such a cell.
    ``reinforce`` (under-served, "besoins mal couverts")
        a policy of priority in ``reinforce_levels`` (1 essential or 2 important), and
        satisfaction significantly below the target, or a public significantly left
        behind (``under_served_publics``, found by :func:`analysis.segments.segment_gaps`
        with its own FDR control). The attributes that matter and are badly rated
        (``under_served_attributes``, IPA's "concentrate here") are named as what to
        reinforce.
    ``reduce`` (over-quality, "sur-qualité")
        a policy of priority in ``reduce_levels`` (3 secondary by default), satisfaction
        significantly above the target or the policy's peers, and a cost per user
        (budget / volume) above the ``cost_quantile`` (the median by default) of the
        services compared. An important policy (2) that over-delivers is not cut by
        this rule: the strategic framework said it matters; its evidence still says
        ``over_quality``.
    ``maintain``
        everything else.

    Whatever the recommendation (but ``watch``), the attributes rated far above what
    they weigh (``effort_savings``, from :func:`effort_savings`) are named as where
    effort can be saved.

    Parameters
    ----------
    services : pandas.DataFrame
        One row per service, not modified. Columns: ``service, policy, priority``
        (1, 2, 3 or missing), ``value, se, n, n_eff, flag`` (the share satisfied as an
        :class:`analysis.estimates.Estimate`), optionally ``ci_low, ci_high, domain,
        target`` (0-1, may be missing), ``cost_per_user`` or ``budget_eur`` and
        ``volume``, ``under_served_attributes``, ``under_served_publics`` and
        ``effort_savings`` (lists),
        and ``peer_value, peer_se`` to compare with other peers than the services of
        the same policy in the frame (e.g. the same policy in other organisations).
        The services compared should be comparable (one organisation, one period).
    alpha : float
        False discovery rate.
    min_gap : float
        Smallest gap (share) that counts.
    reduce_levels, reinforce_levels : sequences of int
        Priority levels a service may be reduced, or reinforced, on; disjoint.
    cost_quantile : float
        Quantile of the costs per user above which a service is costly.
    labels : mapping, optional
        Plain names of attributes and publics for the sentences (keys otherwise).
    method : str
        Multiple-testing method passed to :func:`analysis.trends.adjust`.

    Returns
    -------
    Recommendations

    References
    ----------
    Benjamini & Hochberg (1995); Martilla & James (1977).
    """
    if set(reduce_levels) & set(reinforce_levels):
        raise ValueError("reduce_levels and reinforce_levels must not share a level")
    required = ("service", "policy", "priority", "value", "se", "n", "n_eff", "flag")
    missing = [c for c in required if c not in services.columns]
    if missing:
        raise ValueError(f"column {missing[0]!r} is not in the frame")
    if services["service"].duplicated().any():
        raise ValueError(f"service {services['service'][services['service'].duplicated()].iloc[0]!r} appears twice")
    data = services.reset_index(drop=True)
    value = data["value"].to_numpy(dtype=float)
    se = data["se"].to_numpy(dtype=float)
    target = data["target"].to_numpy(dtype=float) if "target" in data else np.full(len(data), np.nan)
    priority = pd.to_numeric(data["priority"], errors="coerce").to_numpy(dtype=float)
    flag = data["flag"].astype(str).to_numpy()
    testable = np.isin(flag, _PUBLISHED) & np.isfinite(value) & np.isfinite(se) & (se > 0)

    if "cost_per_user" in data:
        cost = data["cost_per_user"].to_numpy(dtype=float)
    elif {"budget_eur", "volume"} <= set(data.columns):
        volume = data["volume"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(volume > 0, data["budget_eur"].to_numpy(dtype=float) / volume, np.nan)
    else:
        cost = np.full(len(data), np.nan)
    known_cost = cost[np.isfinite(cost)]
    cost_reference = float(np.quantile(known_cost, cost_quantile)) if len(known_cost) else float("nan")
    high_cost = np.isfinite(cost) & (cost > cost_reference)

    with np.errstate(invalid="ignore", divide="ignore"):
        gap_t = np.where(testable, value - target, np.nan)
        p_t = 2 * stats.norm.sf(np.abs(gap_t / se))
        peer, peer_se = _peer_means(data, testable)
        if {"peer_value", "peer_se"} <= set(data.columns):
            # Peers given by the caller (e.g. the same policy in other organisations).
            given = data["peer_value"].notna().to_numpy()
            peer = np.where(given, data["peer_value"].to_numpy(dtype=float), peer)
            peer_se = np.where(given, data["peer_se"].to_numpy(dtype=float), peer_se)
        gap_p = np.where(testable, value - peer, np.nan)
        p_p = 2 * stats.norm.sf(np.abs(gap_p / np.hypot(se, peer_se)))
    family = adjust(np.concatenate([p_t, p_p]), method=method, alpha=alpha)
    reject = family["reject"].to_numpy()
    p_adj = family["p_adjusted"].to_numpy()
    k = len(data)
    sig_t, sig_p = reject[:k], reject[k:]
    above_t = sig_t & (gap_t >= min_gap)
    below_t = sig_t & (gap_t <= -min_gap)
    above_p = sig_p & (gap_p >= min_gap)
    below_p = sig_p & (gap_p <= -min_gap)
    over_quality = testable & (above_t | above_p)
    publics = [_as_list(v) for v in data.get("under_served_publics", pd.Series([None] * k))]
    attributes = [_as_list(v) for v in data.get("under_served_attributes", pd.Series([None] * k))]
    savings = [_as_list(v) for v in data.get("effort_savings", pd.Series([None] * k))]
    left_behind = np.array([bool(p) for p in publics])
    is_reduce_level = np.isin(priority, list(reduce_levels))
    is_reinforce_level = np.isin(priority, list(reinforce_levels))

    rec = np.where(
        ~testable,
        "watch",
        np.where(
            is_reinforce_level & (below_t | left_behind),
            "reinforce",
            np.where(is_reduce_level & over_quality & high_cost, "reduce", "maintain"),
        ),
    )
    names = dict(labels or {})
    reference = "médiane" if cost_quantile == 0.5 else f"quantile {_num(cost_quantile, 2)}"
    reasons, evidence = [], []
    for i in range(k):
        ev = {
            "satisfied": value[i],
            "ci": [data["ci_low"].iloc[i], data["ci_high"].iloc[i]] if "ci_low" in data else None,
            "se": se[i],
            "n": data["n"].iloc[i],
            "n_eff": data["n_eff"].iloc[i],
            "flag": flag[i],
            "priority": None if np.isnan(priority[i]) else int(priority[i]),
            "target": target[i],
            "gap_target": gap_t[i],
            "p_target_adjusted": p_adj[i],
            "peer_mean": peer[i],
            "gap_peers": gap_p[i],
            "p_peers_adjusted": p_adj[k + i],
            "cost_per_user": cost[i],
            "cost_reference": cost_reference,
            "high_cost": bool(high_cost[i]),
            "over_quality": bool(over_quality[i]),
            "below_target": bool(testable[i] and below_t[i]),
            "below_peers": bool(testable[i] and below_p[i]),
            "under_served_attributes": attributes[i],
            "under_served_publics": publics[i],
            "effort_savings": savings[i],
        }
        ev = _jsonable(ev)  # missing numbers become None, for the sentence as for JSON
        evidence.append(ev)
        reasons.append(_reason(rec[i], ev, above_t[i], names, reference))
    out = pd.DataFrame(
        {
            "service": data["service"],
            "policy": data["policy"],
            "priority": data["priority"],
            "recommendation": rec,
            "reason": reasons,
            "evidence": evidence,
            "gap_target": gap_t,
            "p_target": p_t,
            "p_target_adjusted": p_adj[:k],
            "gap_peers": gap_p,
            "p_peers": p_p,
            "p_peers_adjusted": p_adj[k:],
            "cost_per_user": cost,
            "high_cost": high_cost,
            "over_quality": over_quality,
            "below_target": testable & below_t,
        }
    )
    return Recommendations(out, cost_reference, alpha, min_gap)


def _reason(rec: str, ev: dict, above_target: bool, names: dict, reference: str) -> str:
    """Plain French with the numbers behind a recommendation: one sentence, and one more
    naming where effort can be saved inside the service, if anywhere."""
    text = _verdict(rec, ev, above_target, names, reference)
    if rec != "watch" and ev["effort_savings"]:
        what = ", ".join(names.get(a, a) for a in ev["effort_savings"])
        rated = "très bien notés" if len(ev["effort_savings"]) > 1 else "très bien noté"
        text += f" Effort qui peut être allégé : {what}, {rated} mais presque sans effet sur la satisfaction globale."
    return text


def _verdict(rec: str, ev: dict, above_target: bool, names: dict, reference: str) -> str:
    """One plain French sentence with the numbers behind a recommendation."""
    if rec == "watch":
        if ev["satisfied"] is None or ev["flag"] not in _PUBLISHED:
            return (
                f"Pas assez de réponses pour conclure ({ev['n']} réponses, effectif utile "
                f"{_num(ev['n_eff'] or 0, 0)}) : la satisfaction de ce service n'est pas publiée, "
                "aucune recommandation n'en est tirée."
            )
        return "Satisfaction sans marge d'erreur calculable : aucune recommandation n'en est tirée."
    level = ev["priority"]
    policy = f"une politique {PRIORITY_LABELS[level]}" if level in PRIORITY_LABELS else "une politique sans priorité"
    ci = f" (IC 95 % : {_pct(ev['ci'][0])}–{_pct(ev['ci'][1])})" if ev["ci"] and None not in ev["ci"] else ""
    head = f"{_pct(ev['satisfied'])} d'usagers satisfaits{ci}"
    target = f"la cible de {_pct(ev['target'])}" if ev["target"] is not None else None
    if rec == "reinforce":
        parts = []
        if ev["below_target"]:
            parts.append(f"significativement sous {target} ({_points(ev['gap_target'])})")
        if ev["under_served_publics"]:
            who = ", ".join(names.get(p, p) for p in ev["under_served_publics"])
            parts.append(f"public nettement moins satisfait : {who}")
        text = f"{head}, {' ; '.join(parts)}, sur {policy}"
        if ev["under_served_attributes"]:
            what = ", ".join(names.get(a, a) for a in ev["under_served_attributes"])
            text += f" ; ce qui compte le plus et est mal noté : {what}"
        return text + " : besoins mal couverts, à renforcer."
    if rec == "reduce":
        ref = (
            f"au-dessus de {target} ({_points(ev['gap_target'])})"
            if above_target
            else f"au-dessus des services de la même politique ({_points(ev['gap_peers'])})"
        )
        return (
            f"{head}, significativement {ref}, sur {policy}, pour un coût de {_eur(ev['cost_per_user'])} "
            f"par usager ({reference} des services comparés : {_eur(ev['cost_reference'])}) : sur-qualité, "
            "les moyens peuvent être réduits."
        )
    # maintain
    if ev["over_quality"]:
        ref = target if above_target else "des services de la même politique"
        if level in (1, 2):
            why = f"mais sur {policy}"
        elif level is None:
            why = "mais la priorité de la politique n'est pas renseignée"
        else:
            why = (
                f"mais pour un coût par usager qui n'est pas élevé ({_eur(ev['cost_per_user'])} ; {reference} "
                f"{_eur(ev['cost_reference'])})"
                if ev["cost_per_user"] is not None
                else "mais sans coût par usager connu"
            )
        return f"{head}, significativement au-dessus de {ref}, {why} : à maintenir."
    if ev["below_target"]:
        return f"{head}, sous {target} ({_points(ev['gap_target'])}), sur {policy} : à maintenir, sans priorité de renfort."
    if target is None:
        return f"{head}, sans cible fixée ni écart significatif aux services de la même politique : à maintenir."
    return f"{head}, sans écart notable à {target} ni aux services de la même politique : à maintenir."


def effort_savings(ipa: pd.DataFrame, *, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    r"""The attributes of one service that perform far above what they weigh: where
    effort can be saved.

    From :func:`analysis.ipa.quadrants`, the attributes of the "possible overkill"
    quadrant (performance at or above the crosshair :math:`x_0`, importance below
    :math:`y_0`; never an "uncertain" one, whose interval crosses a crosshair), ranked
    by how far their performance exceeds the crosshair, :math:`x_a - x_0`.

    Parameters
    ----------
    ipa : pandas.DataFrame
        The result of :func:`analysis.ipa.quadrants` for one service (its
        ``attrs["crosshairs"]`` are read).
    labels : mapping, optional
        Plain names of the attributes for the sentences.

    Returns
    -------
    pandas.DataFrame
        Indexed by attribute: ``performance, importance, excess`` (:math:`x_a - x_0`),
        ``importance_gap`` (:math:`y_0 - y_a`) and ``reason`` (a French sentence),
        largest excess first; empty when nothing over-performs.

    References
    ----------
    Martilla & James (1977).
    """
    for c in ("performance", "importance", "quadrant"):
        if c not in ipa.columns:
            raise ValueError(f"column {c!r} is not in the frame (pass the result of analysis.ipa.quadrants)")
    if "crosshairs" not in ipa.attrs:
        raise ValueError("the frame has no crosshairs (pass the result of analysis.ipa.quadrants)")
    x0, y0 = ipa.attrs["crosshairs"]
    names = dict(labels or {})
    over = ipa[ipa["quadrant"] == "possible_overkill"]
    out = pd.DataFrame(
        {
            "performance": over["performance"],
            "importance": over["importance"],
            "excess": over["performance"] - x0,
            "importance_gap": y0 - over["importance"],
        }
    ).sort_values("excess", ascending=False)
    out["reason"] = [
        f"{names.get(a, a).capitalize()} : noté {_num(r.performance)} sur 5, au-dessus de la moyenne des "
        f"attributs ({_num(x0)}), pour un poids de {_pct(r.importance)} dans la satisfaction globale "
        f"(moyenne {_pct(y0)}) : un effort qui peut être allégé sans toucher à ce qui compte."
        for a, r in out.iterrows()
    ]
    return out


# --------------------------------------------------------------------------------
# Elasticity


@dataclass(frozen=True)
class Elasticity:
    r"""Elasticity of the odds of being satisfied to a service's budget.

    Attributes
    ----------
    value : float
        :math:`\varepsilon` in :math:`\operatorname{logit} p = \alpha_s + \gamma_t +
        \varepsilon \ln B`.
    ci_low, ci_high : float
        Its confidence interval when estimated; the stated range when a default.
    se : float or None
        Standard error when estimated.
    source : str
        "estimated", "default", or "given" (a number passed to :func:`scenarios`).
    reason : str
        In French, why this value: the fit, or why the history did not suffice.
    n_services, n_years, n_obs : int
        The panel used (or found too small).
    level : float
    """

    value: float
    ci_low: float
    ci_high: float
    se: float | None
    source: str
    reason: str
    n_services: int
    n_years: int
    n_obs: int
    level: float = 0.95

    @property
    def estimated(self) -> bool:
        return self.source == "estimated"

    def to_dict(self) -> dict:
        return _jsonable(
            {
                "value": self.value,
                "ci": [self.ci_low, self.ci_high],
                "se": self.se,
                "source": self.source,
                "reason": self.reason,
                "n_services": self.n_services,
                "n_years": self.n_years,
                "n_obs": self.n_obs,
            }
        )


def default_elasticity(reason: str, *, n_services: int = 0, n_years: int = 0, n_obs: int = 0) -> Elasticity:
    """The stated default :data:`DEFAULT_ELASTICITY`, with why it is used."""
    value, low, high = DEFAULT_ELASTICITY
    return Elasticity(
        value,
        low,
        high,
        None,
        "default",
        f"{reason} : valeur par défaut {_num(value)} (fourchette {_num(low)} à {_num(high)}), une hypothèse "
        "prudente et non une estimation.",
        n_services,
        n_years,
        n_obs,
    )


def elasticity(
    history: pd.DataFrame,
    *,
    service: str = "service",
    year: str = "year",
    budget: str = "budget_eur",
    value: str = "value",
    se: str = "se",
    min_years: int = 3,
    min_services: int = 5,
    min_df: int = 10,
    level: float = 0.95,
) -> Elasticity:
    r"""Allocation-satisfaction elasticity estimated on a panel of services × years.

    Fits, by weighted least squares on empirical logits (statsmodels),

    .. math:: \operatorname{logit}\hat p_{st} = \alpha_s + \gamma_t +
              \varepsilon \ln B_{st} + u_{st},\qquad
              w_{st} = 1/\widehat{V}(\operatorname{logit}\hat p_{st})
              = \big(\hat p_{st}(1-\hat p_{st})/SE_{st}\big)^2

    (delta method), with service fixed effects :math:`\alpha_s` (a service's own level,
    so that only its changes of budget over time identify :math:`\varepsilon`, not the
    fact that costly services differ from cheap ones) and year effects :math:`\gamma_t`
    (a change common to all services is not put on the budget). The residual scale is
    estimated but never below 1, as in :func:`analysis.trends.trend`: deviations beyond
    sampling error widen the interval, fewer never narrow it. The interval is Student t
    on the residual degrees of freedom.

    The estimate is used only with at least ``min_years`` distinct years, at least
    ``min_services`` services observed in two years or more with a budget that changed,
    and ``min_df`` residual degrees of freedom: with fewer, a fixed-effects slope rests
    on a handful of budget changes and its interval is too wide to steer by (two years
    give one change per service, which a single shock explains as well). Otherwise the
    result is :func:`default_elasticity`, and its ``reason`` says which condition failed.

    Parameters
    ----------
    history : pandas.DataFrame
        One row per service and year, not modified: ``service, year, budget_eur``, the
        share satisfied ``value`` and its ``se``. Rows with a suppressed or missing
        estimate (NaN), a share of 0 or 1, or a budget that is not positive are left out.
    min_years, min_services, min_df : int
        Thresholds above.
    level : float
        Confidence level.

    Returns
    -------
    Elasticity

    References
    ----------
    Cox & Snell (1989), 3.3; Wooldridge (2010), ch. 10.
    """
    for c in (service, year, budget, value, se):
        if c not in history.columns:
            raise ValueError(f"column {c!r} is not in the frame")
    data = pd.DataFrame(
        {
            "service": history[service].astype(str),
            "year": history[year],
            "budget": pd.to_numeric(history[budget], errors="coerce"),
            "p": pd.to_numeric(history[value], errors="coerce"),
            "se": pd.to_numeric(history[se], errors="coerce"),
        }
    )
    data = data[(data.p > 0) & (data.p < 1) & (data.se > 0) & (data.budget > 0)].dropna()
    n_years = int(data["year"].nunique())
    log_b = np.log(data["budget"])
    varies = log_b.groupby(data["service"]).agg(lambda s: len(s) >= 2 and s.max() - s.min() > 1e-9).astype(bool)
    n_services = int(varies.sum())
    data = data[data["service"].isin(varies.index[varies])]
    n_obs = len(data)
    counts = {"n_services": n_services, "n_years": n_years, "n_obs": n_obs}
    if n_years < min_years:
        return default_elasticity(f"historique de {n_years} année(s), il en faut {min_years}", **counts)
    if n_services < min_services:
        return default_elasticity(
            f"{n_services} service(s) dont le budget a varié sur plusieurs années, il en faut {min_services}", **counts
        )
    df_resid = n_obs - n_services - (data["year"].nunique() - 1) - 1
    if df_resid < min_df:
        return default_elasticity(f"{df_resid} degré(s) de liberté résiduels, il en faut {min_df}", **counts)
    data = data.assign(
        y=logit(data["p"]),
        log_budget=np.log(data["budget"]),
        w=(data["p"] * (1 - data["p"]) / data["se"]) ** 2,
        year=data["year"].astype(str),
    )
    # y ~ log_budget + C(service) + C(year), with the dummies built here: the formula
    # interface would cost every app start its import.
    design = pd.concat(
        [
            data[["log_budget"]],
            pd.get_dummies(data[["service", "year"]], drop_first=True, dtype=float),
        ],
        axis=1,
    )
    model = sm.WLS(data["y"], sm.add_constant(design, has_constant="add"), weights=data["w"])
    scale = max(1.0, float(model.fit().scale))
    fit = model.fit(cov_type="fixed scale", cov_kwds={"scale": scale})
    est = float(fit.params["log_budget"])
    s = float(fit.bse["log_budget"])
    q = stats.t.ppf(0.5 + level / 2, fit.df_resid)
    lo, hi = est - q * s, est + q * s
    return Elasticity(
        est,
        lo,
        hi,
        s,
        "estimated",
        f"estimée sur {n_obs} observations ({n_services} services, {n_years} années) avec effets fixes service "
        f"et année : {_num(est, 2)} (IC {level:.0%} : {_num(lo, 2)} à {_num(hi, 2)}).".replace("%", " %"),
        n_services,
        n_years,
        n_obs,
        level,
    )


# --------------------------------------------------------------------------------
# Scenarios


class UnreachableSaving(ValueError):
    """A saving that cannot be reached without breaking a floor or a maximum cut.

    ``reason`` says why in French; ``requested`` and ``reachable`` are in euros.
    """

    def __init__(self, reason: str, requested: float, reachable: float):
        self.reason, self.requested, self.reachable = reason, requested, reachable
        super().__init__(reason)


@dataclass(frozen=True)
class Solution:
    """One way to make the saving.

    Attributes
    ----------
    name : str
        "even" or "strategic".
    services : pandas.DataFrame
        ``service, policy, recommendation, before, after, change, satisfied_before,
        satisfied_after, satisfied_low, satisfied_high`` (allocations in euros).
    policies : pandas.DataFrame
        ``policy, before, after, floor, below_floor, below_floor_before,
        satisfied_before, satisfied_after, satisfied_low, satisfied_high``
        (``below_floor_before``: already below its floor before any cut; the strategic
        cut then leaves it as it is).
    total_after : float
    projected_satisfied : float
        Projected share satisfied over all services, weighted by volume (users).
    projected_satisfied_range : (float, float)
        The same at the low and high ends of the elasticity's interval.
    elasticity : float
        The elasticity this solution was computed with.
    """

    name: str
    services: pd.DataFrame
    policies: pd.DataFrame
    total_after: float
    projected_satisfied: float
    projected_satisfied_range: tuple[float, float]
    elasticity: float

    @property
    def below_floor(self) -> list[str]:
        """The policies this solution puts below their floor."""
        return self.policies.loc[self.policies["below_floor"], "policy"].tolist()

    def to_dict(self) -> dict:
        pol = self.policies
        return _jsonable(
            {
                "total_after": round(self.total_after, 2),
                "projected_satisfied": self.projected_satisfied,
                "projected_satisfied_range": list(self.projected_satisfied_range),
                "policies": [
                    {
                        "policy": r.policy,
                        "before": round(r.before, 2),
                        "after": round(r.after, 2),
                        "floor": None if np.isnan(r.floor) else round(r.floor, 2),
                        "below_floor": bool(r.below_floor),
                        "below_floor_before": bool(r.below_floor_before),
                        "projected_satisfied": r.satisfied_after,
                    }
                    for r in pol.itertuples(index=False)
                ],
                "services": [
                    {"service": r.service, "before": round(r.before, 2), "after": round(r.after, 2)}
                    for r in self.services.itertuples(index=False)
                ],
            }
        )


@dataclass(frozen=True)
class Scenarios:
    """The even and the strategic cut side by side.

    Attributes
    ----------
    total_before, saving, reinvested : float
        Euros; ``saving`` is net (the budget falls by exactly that much), ``reinvested``
        the part of the cut given to under-served services on top of it.
    satisfied_before : float
        Share satisfied over all services before any cut, weighted by volume.
    elasticity : Elasticity
    even, strategic : Solution
    sensitivity : mapping
        ``{"low": (even, strategic), "high": (even, strategic)}``: both solutions
        recomputed with the low and the high end of the elasticity's interval (the
        strategic allocation may move with it).
    notes : tuple of str
        Plain-French remarks (e.g. nothing to reinvest in).
    """

    total_before: float
    saving: float
    reinvested: float
    satisfied_before: float
    elasticity: Elasticity
    even: Solution
    strategic: Solution
    sensitivity: Mapping[str, tuple[Solution, Solution]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The JSON of ``flask barometer scenario``: ``{"total_before", "saving",
        "solutions": {"even": S, "strategic": S}}`` and the elasticity, the
        sensitivity and the notes."""
        return _jsonable(
            {
                "total_before": round(self.total_before, 2),
                "saving": round(self.saving, 2),
                "reinvested": round(self.reinvested, 2),
                "satisfied_before": self.satisfied_before,
                "elasticity": self.elasticity.to_dict(),
                "solutions": {"even": self.even.to_dict(), "strategic": self.strategic.to_dict()},
                "sensitivity": {
                    end: {
                        "elasticity": strategic.elasticity,
                        "even": {"projected_satisfied": even.projected_satisfied},
                        "strategic": {
                            "projected_satisfied": strategic.projected_satisfied,
                            "services": [
                                {"service": r.service, "after": round(r.after, 2)}
                                for r in strategic.services.itertuples(index=False)
                            ],
                        },
                    }
                    for end, (even, strategic) in self.sensitivity.items()
                },
                "notes": list(self.notes),
            }
        )


def _cents(x) -> np.ndarray:
    return np.rint(np.asarray(x, dtype=float) * 100).astype(np.int64)


def _project(p: np.ndarray, ratio: np.ndarray, eps: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return expit(logit(p) + eps * np.log(ratio))


@dataclass(frozen=True)
class _Problem:
    """The scenario's data as arrays (budgets in cents)."""

    services: np.ndarray
    policies: np.ndarray
    recommendation: np.ndarray
    budget: np.ndarray  # cents
    weight: np.ndarray  # volume, normalised to sum 1
    p: np.ndarray
    rank: np.ndarray  # 0 reduce, 1..3 by priority: the order the strategic cut takes from
    cap: np.ndarray  # deepest cut share
    reinforce: np.ndarray
    policy_index: np.ndarray
    policy_names: np.ndarray
    floors: np.ndarray  # cents, per policy (0 when none)
    has_floor: np.ndarray


def _problem(frame: pd.DataFrame, max_cut: Mapping) -> tuple[_Problem, list[str]]:
    notes = []
    for c in ("service", "policy", "budget_eur"):
        if c not in frame.columns:
            raise ValueError(f"column {c!r} is not in the frame")
    if frame["service"].duplicated().any():
        raise ValueError(f"service {frame['service'][frame['service'].duplicated()].iloc[0]!r} appears twice")
    data = frame.reset_index(drop=True)
    budget = _cents(data["budget_eur"])
    if (budget <= 0).any() or np.isnan(data["budget_eur"].to_numpy(dtype=float)).any():
        raise ValueError(f"service {data['service'][budget <= 0].iloc[0]!r} has no positive budget")
    n = len(data)
    rec = data["recommendation"].astype(str).to_numpy() if "recommendation" in data else np.full(n, "maintain")
    level = (
        pd.to_numeric(data["priority"], errors="coerce").to_numpy(dtype=float)
        if "priority" in data
        else np.full(n, np.nan)
    )
    level = np.where(np.isin(level, [1, 2, 3]), level, 2)  # no stated priority: "important"
    volume = data["volume"].to_numpy(dtype=float) if "volume" in data else np.full(n, np.nan)
    ok = np.isfinite(volume) & (volume > 0)
    if not ok.all():
        # A service of unknown volume is not free to cut: it counts as a typical one.
        volume = np.where(ok, volume, np.median(volume[ok]) if ok.any() else 1.0)
        notes.append(f"{int((~ok).sum())} service(s) sans volume connu comptent pour le volume médian.")
    p = data["value"].to_numpy(dtype=float) if "value" in data else np.full(n, np.nan)
    known = np.isfinite(p) & (p > 0) & (p < 1)
    if not known.all():
        fill = float(np.average(p[known], weights=volume[known])) if known.any() else 0.5
        p = np.where(known, p, fill)
        notes.append(
            f"{int((~known).sum())} service(s) sans satisfaction publiée comptent pour la moyenne ({_pct(fill)})."
        )
    reinforce = rec == "reinforce"
    rank = np.where(rec == "reduce", 0, 4 - level).astype(int)  # reduce, then 3, 2, 1
    cap = np.array([max_cut["reduce"] if r == "reduce" else max_cut[int(lv)] for r, lv in zip(rec, level, strict=True)])
    cap = np.where(reinforce, 0.0, cap)
    codes, names = pd.factorize(data["policy"], sort=False)
    floors = np.zeros(len(names), dtype=np.int64)
    has_floor = np.zeros(len(names), dtype=bool)
    if "floor_eur" in data:
        given = pd.to_numeric(data["floor_eur"], errors="coerce").groupby(codes)
        if (given.nunique() > 1).any():
            raise ValueError(f"policy {names[int(given.nunique().idxmax())]!r} has more than one floor")
        first = given.first().reindex(range(len(names)))
        has_floor = first.notna().to_numpy()
        floors = np.where(has_floor, _cents(first.fillna(0.0)), 0).astype(np.int64)
    return (
        _Problem(
            data["service"].to_numpy(),
            data["policy"].to_numpy(),
            rec,
            budget,
            volume / volume.sum(),
            p,
            rank,
            cap,
            reinforce,
            codes,
            np.asarray(names),
            floors,
            has_floor,
        ),
        notes,
    )


def _solution(name: str, prob: _Problem, after: np.ndarray, eps: Elasticity | float, eps_value: float) -> Solution:
    """Tabulate an allocation (cents) with its projected satisfaction."""
    ratio = after / prob.budget
    lo_eps, hi_eps = (eps.ci_low, eps.ci_high) if isinstance(eps, Elasticity) else (eps_value, eps_value)
    central = _project(prob.p, ratio, eps_value)
    ends = [_project(prob.p, ratio, e) for e in (lo_eps, hi_eps)]
    low, high = np.minimum(*ends), np.maximum(*ends)
    services = pd.DataFrame(
        {
            "service": prob.services,
            "policy": prob.policies,
            "recommendation": prob.recommendation,
            "before": prob.budget / 100,
            "after": after / 100,
            "change": (after - prob.budget) / 100,
            "satisfied_before": prob.p,
            "satisfied_after": central,
            "satisfied_low": low,
            "satisfied_high": high,
        }
    )
    idx = prob.policy_index
    m = len(prob.policy_names)
    w = prob.weight
    wsum = np.bincount(idx, w, m)

    def by_policy(values):
        return np.bincount(idx, w * values, m) / wsum

    before_p = np.bincount(idx, prob.budget.astype(float), m)
    after_p = np.bincount(idx, after.astype(float), m)
    policies = pd.DataFrame(
        {
            "policy": prob.policy_names,
            "before": before_p / 100,
            "after": after_p / 100,
            "floor": np.where(prob.has_floor, prob.floors / 100, np.nan),
            "below_floor": prob.has_floor & (after_p < prob.floors),
            "below_floor_before": prob.has_floor & (before_p < prob.floors),
            "satisfied_before": by_policy(prob.p),
            "satisfied_after": by_policy(central),
            "satisfied_low": by_policy(low),
            "satisfied_high": by_policy(high),
        }
    )
    return Solution(
        name,
        services,
        policies,
        float(after.sum()) / 100,
        float(w @ central),
        (float(w @ low), float(w @ high)),
        float(eps_value),
    )


def _even(prob: _Problem, target: int) -> np.ndarray:
    """Every service loses the same share; the cents left by rounding go to the largest."""
    after = np.floor(prob.budget * (target / prob.budget.sum())).astype(np.int64)
    rest = target - after.sum()
    order = np.argsort(-prob.budget, kind="stable")
    after[order[: int(rest)]] += 1
    return after


def _bounds(prob: _Problem, extra: int) -> tuple[np.ndarray, np.ndarray]:
    lower = np.where(prob.reinforce, prob.budget, np.ceil(prob.budget * (1 - prob.cap))).astype(np.int64)
    upper = np.where(prob.reinforce, prob.budget + extra, prob.budget).astype(np.int64)
    return lower, upper


def _effective_floors(prob: _Problem) -> np.ndarray:
    """A policy already below its floor is not cut further, rather than made infeasible."""
    current = np.bincount(prob.policy_index, prob.budget, len(prob.policy_names)).astype(np.int64)
    return np.where(prob.has_floor, np.minimum(prob.floors, current), 0)


def _max_cut(prob: _Problem, lower: np.ndarray, floors: np.ndarray) -> float:
    """Largest total cut (cents) over the services that may be cut, under the floors and
    the bounds, by linear programming."""
    cut = ~prob.reinforce
    m = len(prob.policy_names)
    # cut_s = B_s - x_s in [0, B_s - lower_s]; per policy sum cut <= B_P - floor_P.
    a = np.zeros((m, len(prob.budget)))
    a[prob.policy_index, np.arange(len(prob.budget))] = 1.0
    room = np.bincount(prob.policy_index, prob.budget, m) - floors
    res = optimize.linprog(
        -cut.astype(float),
        A_ub=a,
        b_ub=room.astype(float),
        bounds=list(zip(np.zeros(len(lower)), np.where(cut, prob.budget - lower, 0).astype(float), strict=True)),
        method="highs",
    )
    return float(-res.fun) if res.status == 0 else 0.0


#: Segments of each service's range in the piecewise-linear objective.
SEGMENTS = 24


def _solve(prob: _Problem, target: int, extra: int, eps: float) -> np.ndarray:
    r"""Strategic allocation (cents): maximise :math:`\sum_s w_s p_s'(x_s)` under the
    exact total, the reinvestment, the floors and the bounds, then round to the cent
    without breaking a constraint.

    Each service's concave :math:`w_s p_s'(x)` is replaced by its chords between
    breakpoints (``SEGMENTS`` equal steps of its range, plus the even cut's share), and
    :math:`x_s` by the sum of one variable per chord, so the problem is a linear program
    (HiGHS): since the chords' slopes decrease, the optimum fills them in order, and
    the chords equal the curve at the even cut's share, so the even cut's value is one
    of those compared exactly. The allocation is then projected on the curve itself.
    """
    b = prob.budget.astype(float)
    n, m = len(b), len(prob.policy_names)
    scale = float(b.sum())
    lower, upper = _bounds(prob, extra)
    floors = _effective_floors(prob)
    lo, hi = lower / b, upper / b
    even_share = target / scale
    steps = np.linspace(0.0, 1.0, SEGMENTS + 1)
    # Breakpoints per service (ratios x/B), the even share among them when in range.
    knots = lo[:, None] + (hi - lo)[:, None] * steps[None, :]
    knots = np.sort(np.column_stack([knots, np.clip(np.full(n, even_share), lo, hi)]), axis=1)
    with np.errstate(divide="ignore"):
        value = prob.weight[:, None] * _project(prob.p[:, None], knots, eps)
    width = np.diff(knots, axis=1) * (b / scale)[:, None]  # chord lengths, in shares of the total
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(width > 0, np.diff(value, axis=1) / width, 0.0)
    top = np.abs(slope).max(initial=0.0)
    # Tie-break, far below any projected difference: between allocations equally good
    # for users (e.g. a zero elasticity), keep money in essential policies first, then
    # important, then secondary, and take first from over-quality.
    tie = np.repeat((prob.rank / 3.0)[:, None], width.shape[1], axis=1)
    cost = -(slope / top + 1e-7 * tie) if top > 0 else -tie
    k = width.shape[1]
    rows_total = sparse.csr_matrix(np.ones((1, n * k)))
    service_of = np.repeat(np.arange(n), k)
    by_policy = sparse.csr_matrix((np.ones(n * k), (prob.policy_index[service_of], np.arange(n * k))), shape=(m, n * k))
    base = lower / scale
    a_eq, b_eq = [rows_total], [target / scale - base.sum()]
    if extra and prob.reinforce.any():
        a_eq.append(sparse.csr_matrix(prob.reinforce[service_of].astype(float)[None, :]))
        b_eq.append((b[prob.reinforce].sum() + extra) / scale - base[prob.reinforce].sum())
    res = optimize.linprog(
        cost.ravel(),
        A_ub=-by_policy,
        b_ub=-(floors / scale - np.bincount(prob.policy_index, base, m)),
        A_eq=sparse.vstack(a_eq),
        b_eq=np.array(b_eq),
        bounds=np.column_stack([np.zeros(n * k), width.ravel()]),
        method="highs",
    )
    if res.status != 0:  # the reachability check ran before: only numerical trouble lands here
        raise UnreachableSaving("aucune répartition ne respecte à la fois l'économie et les planchers", target, 0.0)
    x = lower + res.x.reshape(n, k).sum(axis=1) * scale
    return _round_feasible(prob, np.clip(x, lower, upper), target, extra, lower, upper, floors)


def _round_feasible(prob, x, target, extra, lower, upper, floors) -> np.ndarray:
    """Whole cents that keep the exact total, the exact reinvestment, the bounds and the
    floors: round, then move the few cents of rounding where there is room."""
    after = np.clip(np.rint(x).astype(np.int64), lower, upper)
    m = len(prob.policy_names)

    def adjust_group(members: np.ndarray, goal: int) -> None:
        # Add where there is headroom (adding never breaks a floor), or take where
        # both the service's bound and its policy's floor leave room; largest first.
        diff = goal - int(after[members].sum())
        for i in members[np.argsort(-(upper[members] - after[members]) if diff > 0 else prob.rank[members])]:
            if diff == 0:
                break
            if diff > 0:
                step = min(diff, int(upper[i] - after[i]))
            else:
                pol = prob.policy_index[i]
                room = int(np.bincount(prob.policy_index, after, m)[pol] - floors[pol])
                step = -min(-diff, int(after[i] - lower[i]), max(room, 0))
            after[i] += step
            diff -= step
        if diff:  # cannot happen when the problem was feasible before rounding
            raise UnreachableSaving("l'arrondi au centime ne respecte pas les planchers", goal / 100, 0.0)

    reinforce = np.flatnonzero(prob.reinforce)
    if len(reinforce):
        adjust_group(reinforce, int(prob.budget[reinforce].sum() + (extra if len(reinforce) else 0)))
    # Policies a rounding left short of their floor take cents back first.
    totals = np.bincount(prob.policy_index, after, m)
    for pol in np.flatnonzero(totals < floors):
        members = np.flatnonzero((prob.policy_index == pol) & ~prob.reinforce)
        need = int(floors[pol] - totals[pol])
        for i in members:
            step = min(need, int(upper[i] - after[i]))
            after[i] += step
            need -= step
    others = np.flatnonzero(~prob.reinforce)
    adjust_group(others, int(target - after[reinforce].sum()))
    return after


def scenarios(
    allocations: pd.DataFrame,
    *,
    saving: float,
    reinvest: float = 0.0,
    elasticity: Elasticity | float,
    max_cut: Mapping | None = None,
) -> Scenarios:
    r"""The even cut and the strategic cut that save ``saving``, side by side.

    **Solution 1, the even cut** ("réduction indifférenciée"): every service keeps the
    share :math:`1 - S/T` of its budget (:math:`T` the total, :math:`S` the saving),
    rounded to the cent with the remainder on the largest budgets. It ignores the
    floors, and reports the policies it puts below theirs: its known failure.

    **Solution 2, the strategic cut** ("réduction stratégique") solves

    .. math:: \max_x \sum_s w_s\, p_s'(x_s),\quad
              p_s'(x) = \operatorname{expit}\big(\operatorname{logit} p_s
              + \varepsilon \ln(x/B_s)\big)

    subject to :math:`\sum_s x_s = T - S` (the saving, exactly), for every policy with
    a floor :math:`F_P`, :math:`\sum_{s\in P} x_s \ge \min(F_P, B_P)` (a policy already
    below its floor is not cut further), and per service
    :math:`B_s(1-c_s) \le x_s \le B_s`, where :math:`c_s` is the deepest cut allowed
    (``max_cut``: over-quality services first, then by priority level). Under-served
    (``reinforce``) services are never cut; with ``reinvest`` :math:`r > 0` they share
    :math:`rS` more on top of their budget (as the optimisation places it), so the
    other services give :math:`(1+r)S` and the budget still falls by exactly
    :math:`S`. The weights :math:`w_s` are volumes (users), so the objective is the
    projected share of satisfied users. The objective is concave (for
    :math:`0\le\varepsilon<1`) and separable over linear constraints: it is solved as a
    linear program over its piecewise-linear version (HiGHS; see ``_solve``), then
    rounded to the cent with the rounding cents placed where the bounds and floors
    leave room.

    It takes first from over-quality and low-priority services for three reasons:
    their larger ``max_cut``; the projection itself, where a euro costs least
    satisfaction where :math:`p_s` is near 1 and where the budget per user is high;
    and, between allocations equally good for users (a zero elasticity), a tie-break
    that takes from over-quality services, then secondary, important and essential
    policies, in that order.
    When the even cut satisfies the strategic constraints (its share within every
    :math:`c_s`, no floor broken, no under-served service), it is one of the
    allocations the optimisation compares, so the strategic projection is at least as
    high; when the even cut breaks a floor, the comparison is between a plan that can
    be carried out and one that cannot.

    Parameters
    ----------
    allocations : pandas.DataFrame
        One row per service, not modified: ``service, policy, budget_eur``, and
        optionally ``volume`` (a service without one counts for the median volume),
        ``value`` (share satisfied now; a service without a published one counts for
        the volume-weighted mean), ``priority`` (1-3; missing counts as 2),
        ``recommendation`` (from :func:`recommend`; default "maintain") and
        ``floor_eur`` (the policy's floor, repeated on its services).
    saving : float
        Euros to save when 1 or more; a share of the total when between 0 and 1.
    reinvest : float
        Share of the saving given to under-served services (0-1).
    elasticity : Elasticity or float
        From :func:`elasticity`; a bare number has no range (low = high = it).
    max_cut : mapping, optional
        Deepest cut per service, by ``"reduce"`` and priority level 1-3; defaults to
        :data:`DEFAULT_MAX_CUT`.

    Returns
    -------
    Scenarios

    Raises
    ------
    UnreachableSaving
        When no allocation saves :math:`S` (plus the reinvestment) without breaking a
        policy's floor or a service's maximum cut; its French ``reason`` says which
        and how much can be saved.
    """
    caps = dict(DEFAULT_MAX_CUT)
    caps.update(max_cut or {})
    for key in ("reduce", 1, 2, 3):
        if not 0 <= caps[key] <= 1:
            raise ValueError(f"max_cut[{key!r}] must lie in [0, 1]")
    if not 0 <= reinvest <= 1:
        raise ValueError("reinvest must lie in [0, 1]")
    eps_value = elasticity.value if isinstance(elasticity, Elasticity) else float(elasticity)
    prob, notes = _problem(allocations, caps)
    total = int(prob.budget.sum())
    if not saving > 0:
        raise ValueError("saving must be positive")
    saving_c = int(round(total * saving)) if saving < 1 else int(_cents(saving))
    if saving_c >= total:
        raise UnreachableSaving(
            f"économie demandée ({_eur(saving_c / 100)}) supérieure ou égale au budget total ({_eur(total / 100)})",
            saving_c / 100,
            0.0,
        )
    extra = int(round(saving_c * reinvest))
    if extra and not prob.reinforce.any():
        notes.append("Aucun service à renforcer : rien n'est réinvesti.")
        extra = 0
    target = total - saving_c
    lower, _ = _bounds(prob, extra)
    floors = _effective_floors(prob)
    needed = saving_c + extra
    reachable = _max_cut(prob, lower, floors)
    if reachable + 0.5 < needed:
        floors_only = _max_cut(prob, np.zeros_like(lower), floors)
        why = (
            "sans descendre sous le plancher d'au moins une politique"
            if floors_only + 0.5 < needed
            else "sans réduire un service au-delà de la baisse maximale de son niveau de priorité"
        )
        what = f"{_eur(saving_c / 100)}" + (f" plus {_eur(extra / 100)} à réinvestir" if extra else "")
        raise UnreachableSaving(
            f"économie inatteignable : {what} demandés, mais au plus {_eur(reachable / 100)} peuvent être "
            f"économisés {why}.",
            needed / 100,
            reachable / 100,
        )

    def pair(eps: float, label_eps) -> tuple[Solution, Solution]:
        even = _solution("even", prob, _even(prob, target), label_eps, eps)
        strategic = _solution("strategic", prob, _solve(prob, target, extra, eps), label_eps, eps)
        return even, strategic

    even, strategic = pair(eps_value, elasticity)
    sensitivity = {}
    if isinstance(elasticity, Elasticity):
        for end, e in (("low", elasticity.ci_low), ("high", elasticity.ci_high)):
            sensitivity[end] = pair(e, e)
    satisfied_before = float(prob.weight @ prob.p)
    return Scenarios(
        total / 100,
        saving_c / 100,
        extra / 100,
        satisfied_before,
        elasticity
        if isinstance(elasticity, Elasticity)
        else Elasticity(eps_value, eps_value, eps_value, None, "given", "valeur donnée", 0, 0, 0),
        even,
        strategic,
        MappingProxyType(sensitivity),
        tuple(notes),
    )
