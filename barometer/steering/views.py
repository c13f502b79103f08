"""The director's pages: the overview, the budget scenarios and the indicators board."""

from __future__ import annotations

from datetime import date

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from ..auth.forms import LogoutForm
from . import bp
from .forms import ScenarioForm
from .services import (
    ScenarioRefused,
    board,
    get_scenario,
    may_steer,
    note_text,
    organisations_in_scope,
    overview,
    recommendation_table,
    run_scenario,
    save_scenario,
    saved_scenarios,
    steering_inputs,
    years_with_allocations,
)

#: Saved scenarios compared side by side at most.
MAX_COMPARED = 4

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.before_request
def only_directors():
    """Directors and admins only: anyone else signed in gets 403 and no number; a
    visitor not signed in is sent to the sign-in page."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not may_steer(current_user):
        abort(403)
    return None


@bp.context_processor
def steering_globals():
    return {
        # Never read from the request: its body may be the one refused (413).
        "logout_form": LogoutForm(formdata=None),
        "note_text": lambda code, n: note_text(code, n, _),
        "labels": {"status": status_labels(), "trend": trend_labels(), "recommendation": recommendation_labels()},
    }


def _year() -> int | None:
    return request.args.get("annee", type=int)


@bp.route("/")
def show_overview():
    """Every domain and policy at a glance, the recommendations and the alerts."""
    from .heatmap import heatmap_svg

    data = overview(current_user, year=_year(), lang=str(get_locale()))
    svg = (
        heatmap_svg(
            data.heatmap,
            data.years,
            title=_("Part d'usagers satisfaits par politique, écart à la cible en points"),
            no_data=_("non publié"),
            no_target=_("sans cible"),
        )
        if data.heatmap
        else None
    )
    return render_template(
        "steering/overview.html", data=data, heatmap_svg=svg, years=years_with_allocations(current_user)
    )


def _scenario_form() -> ScenarioForm:
    form = ScenarioForm()
    years = years_with_allocations(current_user)
    form.year.choices = [(y, str(y)) for y in years]
    if form.year.data is None and years:
        form.year.data = years[0]
    organisations = organisations_in_scope(current_user)
    form.organisation.choices = [(o.id, o.name) for o in organisations] if len(organisations) > 1 else []
    return form


@bp.route("/scenarios", methods=["GET", "POST"])
def run_scenarios():
    """The scenario form and, once sent, the even and the strategic cut side by side."""
    form = _scenario_form()
    document, refused, status = None, None, 200
    if form.validate_on_submit():
        try:
            document = run_scenario(
                current_user,
                saving=form.saving_value,
                reinvest=form.reinvest_value,
                year=form.year.data,
                organisation_id=form.organisation.data if form.organisation.choices else None,
            )
        except ScenarioRefused as exc:
            refused, status = exc.reason, 422
        else:
            if form.save.data:
                scenario = save_scenario(current_user, form.name.data, document)
                flash(_("Scénario « %(name)s » enregistré.", name=scenario.name))
                return redirect(url_for("steering.show_scenario", scenario_id=scenario.id))
    elif request.method == "POST":
        status = 422
    return (
        render_template(
            "steering/scenarios.html",
            form=form,
            document=document,
            refused=refused,
            saved=saved_scenarios(current_user),
            max_compared=MAX_COMPARED,
        ),
        status,
    )


@bp.route("/scenarios/<int:scenario_id>")
def show_scenario(scenario_id: int):
    """A saved scenario, as it was computed when saved."""
    return _render_scenario(get_scenario(current_user, scenario_id) or abort(404))


@bp.route("/scenarios/<int:scenario_id>.pdf")
def export_scenario_pdf(scenario_id: int):
    """A saved scenario as a PDF: its page, laid out for print."""
    from ..reports import pdf  # WeasyPrint is heavy: loaded on the first PDF, not with the app

    scenario = get_scenario(current_user, scenario_id) or abort(404)
    return pdf.pdf_response(_render_scenario(scenario), f"scenario-{scenario.id}.pdf")


def _render_scenario(scenario) -> str:
    """A saved scenario's page: shown in the browser, or laid out as the PDF."""
    return render_template("steering/scenario.html", scenario=scenario, document=scenario.result)


def _compared() -> list | None:
    """The saved scenarios of the request's ``id`` parameters the director may see; None
    when none is asked for. 404 when none of those asked for may be seen."""
    ids = request.args.getlist("id", type=int)[:MAX_COMPARED]
    if not ids:
        return None
    scenarios = [s for s in (get_scenario(current_user, i) for i in dict.fromkeys(ids)) if s is not None]
    return scenarios or abort(404)


def _nothing_to_compare() -> Response:
    flash(_("Cochez au moins un scénario enregistré à comparer."))
    return redirect(url_for("steering.run_scenarios"))


@bp.route("/scenarios/comparer")
def compare_scenarios():
    """Saved scenarios side by side: savings, projected satisfaction, floors broken."""
    scenarios = _compared()
    return _render_comparison(scenarios) if scenarios else _nothing_to_compare()


@bp.route("/scenarios/comparer.pdf")
def export_comparison_pdf():
    """Saved scenarios side by side, as a PDF."""
    from ..reports import pdf

    scenarios = _compared()
    if not scenarios:
        return _nothing_to_compare()
    return pdf.pdf_response(_render_comparison(scenarios), "scenarios-comparaison.pdf")


def _render_comparison(scenarios: list) -> str:
    """The comparison page: shown in the browser, or laid out as the PDF."""
    return render_template("steering/compare.html", scenarios=scenarios, today=date.today())


@bp.route("/scenarios/<int:scenario_id>.xlsx")
def export_scenario_xlsx(scenario_id: int):
    """A saved scenario as a spreadsheet: the summary, each policy and each service."""
    from .exports import workbook

    scenario = get_scenario(current_user, scenario_id) or abort(404)
    doc = scenario.result
    solutions = (("even", _("Réduction uniforme")), ("strategic", _("Réduction stratégique")))
    summary = [
        (_("Scénario"), scenario.name),
        (_("Année des budgets"), doc["year"]),
        (_("Budget total avant (€)"), doc["total_before"]),
        (_("Économie (€)"), doc["saving"]),
        (_("Réinvesti dans les services à renforcer (€)"), doc["reinvested"]),
        (_("Part d'usagers satisfaits avant"), doc["satisfied_before"]),
        (_("Élasticité"), doc["elasticity"]["value"]),
        (_("Élasticité : d'où vient-elle"), doc["elasticity"]["reason"]),
    ]
    for key, title in solutions:
        sol = doc["solutions"][key]
        summary += [
            (_("%(solution)s : satisfaction projetée", solution=title), sol["projected_satisfied"]),
            (_("%(solution)s : fourchette basse", solution=title), sol["projected_satisfied_range"][0]),
            (_("%(solution)s : fourchette haute", solution=title), sol["projected_satisfied_range"][1]),
            (_("%(solution)s : politiques sous leur plancher", solution=title), ", ".join(sol["below_floor"])),
        ]
    policies = [
        (p["name"], p["floor"], p["before"], even["after"], p["after"], even["below_floor"], p["below_floor"])
        for p, even in zip(doc["solutions"]["strategic"]["policies"], doc["solutions"]["even"]["policies"], strict=True)
    ]
    services = [
        (s["name"], s["policy"], s["recommendation"], s["before"], even["after"], s["after"])
        for s, even in zip(doc["solutions"]["strategic"]["services"], doc["solutions"]["even"]["services"], strict=True)
    ]
    content = workbook(
        [
            (_("Synthèse"), [_("Élément"), _("Valeur")], summary),
            (
                _("Politiques"),
                [
                    _("Politique"),
                    _("Plancher (€)"),
                    _("Avant (€)"),
                    _("Uniforme : après (€)"),
                    _("Stratégique : après (€)"),
                    _("Uniforme : sous le plancher"),
                    _("Stratégique : sous le plancher"),
                ],
                policies,
            ),
            (
                _("Services"),
                [
                    _("Service"),
                    _("Politique"),
                    _("Recommandation"),
                    _("Avant (€)"),
                    _("Uniforme : après (€)"),
                    _("Stratégique : après (€)"),
                ],
                services,
            ),
        ]
    )
    return _attachment(content, f"scenario-{scenario.id}.xlsx")


def _attachment(content: bytes, filename: str) -> Response:
    return Response(content, mimetype=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _board_data():
    inputs = steering_inputs(current_user, year=_year())
    recs = recommendation_table(inputs) if not inputs.empty else None
    return inputs, board(inputs, recs, today=date.today()) if not inputs.empty else []


@bp.route("/tableau")
def show_board():
    """The indicators board: domains, policies and services with objective, indicator,
    allocation, deadline and status."""
    return _render_board(*_board_data())


@bp.route("/tableau.pdf")
def export_board_pdf():
    """The indicators board as a PDF, for the year the page shows (``?annee=``)."""
    from ..reports import pdf

    inputs, rows = _board_data()
    return pdf.pdf_response(_render_board(inputs, rows), f"tableau-de-bord-{inputs.year or ''}.pdf")


def _render_board(inputs, rows) -> str:
    """The board's page: shown in the browser, or laid out as the PDF."""
    return render_template(
        "steering/board.html",
        year=inputs.year,
        rows=rows,
        notes=inputs.notes,
        years=years_with_allocations(current_user),
        today=date.today(),
    )


@bp.route("/tableau.xlsx")
def export_board_xlsx():
    """The indicators board as a spreadsheet, numbers as numbers."""
    from .exports import workbook

    inputs, rows = _board_data()
    levels = {"domain": _("Domaine"), "policy": _("Politique"), "service": _("Service")}
    statuses = status_labels()
    trends = trend_labels()
    content = workbook(
        [
            (
                _("Tableau de bord %(year)s", year=inputs.year or ""),
                [
                    _("Niveau"),
                    _("Nom"),
                    _("Collectivité"),
                    _("Objectif (part de satisfaits)"),
                    _("Part de satisfaits"),
                    _("IC 95 % bas"),
                    _("IC 95 % haut"),
                    _("Réponses"),
                    _("Évolution sur un an (points)"),
                    _("Tendance"),
                    _("Allocation (€)"),
                    _("Évolution de l'allocation"),
                    _("Échéance"),
                    _("Statut"),
                ],
                [
                    (
                        levels[r.level],
                        r.name,
                        r.organisation,
                        r.target,
                        r.value,
                        r.ci_low,
                        r.ci_high,
                        r.n if r.level != "domain" else None,
                        None if r.change is None else round(100 * r.change, 1),
                        trends.get(r.trend, ""),
                        r.budget,
                        r.budget_change,
                        r.deadline,
                        statuses.get(r.status, ""),
                    )
                    for r in rows
                ],
            )
        ]
    )
    return _attachment(content, f"tableau-de-bord-{inputs.year or ''}.xlsx")


def status_labels() -> dict[str, str]:
    """The board's statuses, in the reader's language."""
    return {
        "reached": _("atteint"),
        "on_track": _("en bonne voie"),
        "late": _("en retard"),
        "no_data": _("pas assez de données"),
        "no_target": _("sans objectif"),
    }


def trend_labels() -> dict[str, str]:
    """A change from last year, significant or not, in the reader's language."""
    return {"up": _("en hausse"), "down": _("en baisse"), "stable": _("stable")}


def recommendation_labels() -> dict[str, str]:
    """The four recommendations, in the reader's language."""
    return {
        "reinforce": _("Renforcer (besoins mal couverts)"),
        "reduce": _("Réduire (sur-qualité)"),
        "maintain": _("Maintenir"),
        "watch": _("À surveiller (pas assez de réponses)"),
    }
