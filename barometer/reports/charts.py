"""The report's charts: which data each draws, its accessible name, and its cache key."""

from __future__ import annotations

from flask_babel import gettext as _

from ..charts import plot_drivers, plot_ipa, plot_segments, plot_trend, render_svg, svg_cache
from .services import ServiceReport

#: The charts of a report, in page order.
CHARTS = ("trend", "ipa", "drivers", "publics")


def chart_svg(report: ServiceReport, name: str) -> str | None:
    """The SVG of one chart of ``report``, or None when its section has nothing to draw."""
    key = (
        name,
        report.service_slug,
        report.site_code,
        report.grain,
        report.start,
        report.end,
        report.lang,
        report.data_version,
    )
    spec = _spec(report, name)
    if spec is None:
        return None
    draw, data, options, title, size = spec
    desc = _("Les mêmes données figurent dans le tableau qui suit le graphique.")
    return svg_cache.get_or_make(
        key, lambda: render_svg(draw, data, title=title, desc=desc, prefix=f"chart-{name}-", size=size, **options)
    )


def _spec(report: ServiceReport, name: str):
    where = report.service_name + (f" – {report.site_name}" if report.site_name else "")
    if name == "trend":
        data = report.trend.frame()
        if data["value"].notna().sum() == 0:
            return None
        title = _(
            "Part d'usagers satisfaits par période, avec son intervalle de confiance à 95 %% : %(where)s", where=where
        )
        return plot_trend, data, {"target": report.headline.target}, title, (7.0, 3.4)
    if name == "ipa":
        data = report.attributes.ipa_frame()
        if report.attributes.crosshairs is None or data.empty:
            return None
        title = _("Importance et performance des critères : %(where)s", where=where)
        return plot_ipa, data, {"crosshairs": report.attributes.crosshairs}, title, (7.0, 4.2)
    if name == "drivers":
        data = report.drivers.frame()
        if data.empty:
            return None
        title = _("Ce qui explique la satisfaction globale (part du R²) : %(where)s", where=where)
        return plot_drivers, data, {}, title, (7.0, 0.8 + 0.35 * len(data))
    if name == "publics":
        data = report.publics.frame()
        if data.empty:
            return None
        title = _("Écart de satisfaction de chaque public au reste des usagers : %(where)s", where=where)
        return plot_segments, data, {}, title, (7.0, 1.0 + 0.3 * len(data))
    raise ValueError(f"unknown chart {name!r}")
