"""Analysis results drawn as SVG figures, in seaborn's calling style.

Each ``plot_*`` function takes a tidy frame (one row per point, columns documented on
the function) and an optional ``ax``, draws on it and returns it. The web layer creates
a :class:`matplotlib.figure.Figure` per chart through :func:`render_svg`; ``pyplot``,
whose global figure registry is not thread-safe, is never imported.

Charts must read in black and white (printed reports, colour blindness): series differ
by marker, line style and hatching, never by colour alone. Every chart is shown beside
the same data as an HTML table, its text alternative (RGAA 1.2 and 1.3).

:func:`render_svg` writes an SVG that can sit inline in a page served with a strict
Content-Security-Policy (no inline styles): matplotlib's ``style`` attributes become
presentation attributes, ids are prefixed so that several charts share a page, and the
root carries ``role="img"`` with a ``<title>`` and a ``<desc>``.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import matplotlib
import numpy as np
import pandas as pd
from flask_babel import gettext as _
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .caching import Lru

__all__ = ["plot_drivers", "plot_ipa", "plot_segments", "plot_trend", "render_svg", "svg_cache"]

# Text stays text in the SVG (smaller, selectable, read by screen readers with the
# page's zoom), and ids depend on the content only, so the same chart is the same bytes.
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "barometre"

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

#: Dark enough on white for WCAG's 3:1 for graphical objects; grey shades only.
INK = "#1e1e1e"
GREY = "#595959"
LIGHT = "#d9d9d9"
FONT_SIZE = 9

# Markers by role, so that no meaning rests on colour.
QUADRANT_MARKERS = {
    "concentrate_here": "v",
    "keep_up": "o",
    "low_priority": "s",
    "possible_overkill": "^",
    "uncertain": "D",
}


def _quadrant_names() -> dict[str, str]:
    """Short quadrant names written on the IPA chart (the full reading is in the table)."""
    return {
        "concentrate_here": _("Besoins mal couverts"),
        "keep_up": _("Points forts à maintenir"),
        "low_priority": _("Faible priorité"),
        "possible_overkill": _("Sur-qualité possible"),
    }


def _style(ax: Axes) -> None:
    ax.tick_params(labelsize=FONT_SIZE, colors=INK)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GREY)


def _percent_axis(ax: Axes, axis: str = "y") -> None:
    formatter = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v * 100:.0f} %")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def plot_trend(data: pd.DataFrame, *, ax: Axes | None = None, target: float | None = None) -> Axes:
    """Share of satisfied residents per period, with its 95% confidence band.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per period, oldest first: ``label`` (the period as written on the
        axis), ``value``, ``ci_low``, ``ci_high`` (proportions; NaN for a period whose
        estimate is not published), ``change`` ("up", "down" or None: a significant
        change since the previous period) and ``version`` (questionnaire version).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure's when omitted.
    target : float, optional
        The policy's satisfaction target, drawn as a dotted line.

    The line and the band break at an unpublished period and where the questionnaire
    version changes (a dashed vertical rule marks the break): values on either side of
    a new version are not the same measure.
    """
    ax = ax if ax is not None else Figure().add_subplot()
    _style(ax)
    x = np.arange(len(data))
    values = data["value"].to_numpy(dtype=float)
    low = data["ci_low"].to_numpy(dtype=float)
    high = data["ci_high"].to_numpy(dtype=float)
    versions = data["version"].to_numpy()
    breaks = [i for i in range(1, len(data)) if versions[i] != versions[i - 1]]
    for seg in np.split(np.arange(len(data)), breaks):
        ax.fill_between(
            x[seg], low[seg], high[seg], facecolor=LIGHT, edgecolor=GREY, hatch="///", linewidth=0, label=None
        )
        ax.plot(x[seg], values[seg], color=INK, marker="o", markersize=4, linewidth=1.5)
    for i in breaks:
        ax.axvline(i - 0.5, color=INK, linestyle="--", linewidth=1)
        ax.annotate(
            _("Nouvelle version du questionnaire"),
            (i - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            fontsize=FONT_SIZE - 1,
            va="top",
            color=INK,
        )
    changes = data["change"].to_numpy()
    for kind, marker in (("up", "^"), ("down", "v")):
        hit = np.array([c == kind for c in changes]) & np.isfinite(values)
        if hit.any():
            ax.plot(
                x[hit],
                values[hit],
                linestyle="none",
                color=INK,
                marker=marker,
                markersize=10,
                markerfacecolor="white",
                markeredgecolor=INK,
                markeredgewidth=1.5,
                label=_("Hausse significative") if kind == "up" else _("Baisse significative"),
            )
    if target is not None:
        ax.axhline(target, color=INK, linestyle=":", linewidth=1.2, label=_("Objectif"))
    ax.set_ylim(0, 1)
    _percent_axis(ax)
    ax.set_ylabel(_("Usagers satisfaits"), fontsize=FONT_SIZE, color=INK)
    step = max(1, int(np.ceil(len(data) / 12)))
    ax.set_xticks(x[::step], list(data["label"])[::step], rotation=45 if len(data) > 6 else 0, ha="right")
    ax.set_xlim(-0.5, max(len(data) - 0.5, 0.5))
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=FONT_SIZE - 1, frameon=False, loc="lower left")
    return ax


def plot_ipa(data: pd.DataFrame, *, ax: Axes | None = None, crosshairs: tuple[float, float]) -> Axes:
    """Importance-performance chart: performance (x) against derived importance (y).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per attribute: ``label``, ``performance`` (mean rating), ``importance``
        (share of R²), ``quadrant`` (a key of :data:`analysis.ipa.QUADRANT_LABELS`).
    crosshairs : (float, float)
        Where the axes cross (``attrs["crosshairs"]`` of :func:`analysis.ipa.quadrants`).

    Each quadrant has its own marker shape and its name written in its corner.
    """
    ax = ax if ax is not None else Figure().add_subplot()
    _style(ax)
    x0, y0 = crosshairs
    ax.axvline(x0, color=GREY, linestyle="--", linewidth=1)
    ax.axhline(y0, color=GREY, linestyle="--", linewidth=1)
    names = {**_quadrant_names(), "uncertain": _("Incertain")}
    for quadrant, rows in data.groupby("quadrant", sort=False):
        ax.scatter(
            rows["performance"],
            rows["importance"],
            marker=QUADRANT_MARKERS.get(quadrant, "o"),
            s=45,
            facecolors="white" if quadrant in ("keep_up", "low_priority") else INK,
            edgecolors=INK,
            linewidths=1.2,
            zorder=3,
            label=names.get(quadrant, quadrant),
        )
    perf, imp = data["performance"].to_numpy(float), data["importance"].to_numpy(float)
    # Room in the corners for the quadrant names, away from the points.
    span_x = max(perf.max(initial=x0), x0) - min(perf.min(initial=x0), x0)
    span_y = max(imp.max(initial=y0), y0) - min(imp.min(initial=y0), y0)
    pad_x, pad_y = max(0.3, span_x * 0.3), max(0.04, span_y * 0.3)
    ax.set_xlim(min(perf.min(initial=x0), x0) - pad_x, max(perf.max(initial=x0), x0) + pad_x)
    ax.set_ylim(min(imp.min(initial=y0), y0) - pad_y, max(imp.max(initial=y0), y0) + pad_y)
    _place_labels(ax, data)
    ax.figure.legend(fontsize=FONT_SIZE - 1, frameon=False, loc="outside lower center", ncol=3)
    corners = {
        "concentrate_here": (0.01, 0.99, "left", "top"),
        "keep_up": (0.99, 0.99, "right", "top"),
        "low_priority": (0.01, 0.01, "left", "bottom"),
        "possible_overkill": (0.99, 0.01, "right", "bottom"),
    }
    for key, (cx, cy, ha, va) in corners.items():
        ax.text(
            cx, cy, names[key], transform=ax.transAxes, ha=ha, va=va, fontsize=FONT_SIZE, color=GREY, style="italic"
        )
    # An importance is never negative: the padding below zero carries no tick label.
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v * 100:.0f} %" if v >= 0 else ""))
    ax.set_xlabel(_("Performance (note moyenne sur 5)"), fontsize=FONT_SIZE, color=INK)
    ax.set_ylabel(_("Importance (part du R²)"), fontsize=FONT_SIZE, color=INK)
    return ax


def _place_labels(ax: Axes, data: pd.DataFrame) -> None:
    """Write each attribute's name beside its point, on the first side where it overlaps
    no name already written (greedy; text sizes estimated from the font size)."""
    to_px = ax.figure.dpi / 72.0
    height = (FONT_SIZE - 1) * 1.3 * to_px
    placed: list[tuple[float, float, float, float]] = []
    frame = ax.bbox
    sides = ((5, 4, "left", "bottom"), (5, -4, "left", "top"), (-5, 4, "right", "bottom"), (-5, -4, "right", "top"))
    for _i, row in data.sort_values("importance", ascending=False).iterrows():
        x, y = ax.transData.transform((row["performance"], row["importance"]))
        width = len(str(row["label"])) * (FONT_SIZE - 1) * 0.55 * to_px
        choice = None
        for dx, dy, ha, va in sides:
            left = x + dx * to_px - (width if ha == "right" else 0)
            bottom = y + dy * to_px - (height if va == "top" else 0)
            box = (left, bottom, left + width, bottom + height)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                choice = (dx, dy, ha, va, box)
                break
        if choice is None:
            dx, dy, ha, va = sides[0]
            left, bottom = x + dx * to_px, y + dy * to_px
            choice = (dx, dy, ha, va, (left, bottom, left + width, bottom + height))
        dx, dy, ha, va, box = choice
        placed.append(box)
        ax.annotate(
            row["label"],
            (row["performance"], row["importance"]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=FONT_SIZE - 1,
            color=INK,
        )


def plot_drivers(data: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Relative importance of each attribute as its share of R², largest on top.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per attribute: ``label`` and ``share`` (0-1, summing to 1).
    """
    ax = ax if ax is not None else Figure().add_subplot()
    _style(ax)
    rows = data.sort_values("share")
    y = np.arange(len(rows))
    ax.barh(y, rows["share"], color=LIGHT, edgecolor=INK, hatch="..", linewidth=1)
    for yi, share in zip(y, rows["share"], strict=True):
        ax.text(share, yi, f" {share * 100:.0f} %", va="center", fontsize=FONT_SIZE - 1, color=INK)
    ax.set_yticks(y, list(rows["label"]))
    top = float(rows["share"].max()) if len(rows) else 0.5
    ax.set_xlim(0, top * 1.2 + 0.02)
    _percent_axis(ax, "x")
    ax.set_xlabel(_("Part de la satisfaction globale expliquée"), fontsize=FONT_SIZE, color=INK)
    return ax


def plot_segments(data: pd.DataFrame, *, ax: Axes | None = None, percent: bool = True) -> Axes:
    """Gap of each public to the rest of the respondents, with its 95% interval.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per public (suppressed publics left out): ``label``, ``gap``,
        ``ci_low``, ``ci_high`` and ``under_served`` (the gap survives the FDR).
    percent : bool
        Gaps in percentage points (shares) rather than points of a mean.

    Under-served publics get a filled marker, the others a hollow one; a vertical rule
    marks "no difference".
    """
    ax = ax if ax is not None else Figure().add_subplot()
    _style(ax)
    y = np.arange(len(data))[::-1]
    gap = data["gap"].to_numpy(float)
    err = np.vstack([gap - data["ci_low"].to_numpy(float), data["ci_high"].to_numpy(float) - gap])
    ax.axvline(0, color=GREY, linewidth=1)
    ax.errorbar(gap, y, xerr=err, fmt="none", color=INK, ecolor=INK, elinewidth=1.2, capsize=3)
    flagged = data["under_served"].to_numpy(bool)
    for mask, face, label in (
        (flagged, INK, _("Public moins satisfait (significatif)")),
        (~flagged, "white", _("Écart non significatif")),
    ):
        if mask.any():
            ax.plot(
                gap[mask],
                y[mask],
                linestyle="none",
                color=INK,
                marker="o" if face == "white" else "s",
                markersize=6,
                markerfacecolor=face,
                markeredgecolor=INK,
                label=label,
            )
    ax.set_yticks(y, list(data["label"]))
    scale = 100 if percent else 1
    unit = _("points de %") if percent else _("points")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v * scale:+.0f}"))
    ax.set_xlabel(_("Écart au reste des usagers (%(unit)s)", unit=unit), fontsize=FONT_SIZE, color=INK)
    if len(data):
        ax.legend(fontsize=FONT_SIZE - 1, frameon=False, loc="best")
    return ax


# ---------------------------------------------------------------------------- SVG


_STYLE_DECL = re.compile(r"\s*([a-z-]+)\s*:\s*([^;]+)")
_URL_REF = re.compile(r"url\(#([^)]+)\)")


def _presentation_attributes(element: ET.Element) -> None:
    """Turn matplotlib's ``style="a: b; c: d"`` into attributes a="b" c="d"."""
    style = element.attrib.pop("style", None)
    if not style:
        return
    for name, value in _STYLE_DECL.findall(style):
        element.set(name, value.strip())


def _clean_svg(svg: bytes, *, prefix: str, title: str, desc: str) -> str:
    root = ET.fromstring(svg)
    href = f"{{{XLINK_NS}}}href"
    for parent in root.iter():
        for child in list(parent):
            if child.tag in (f"{{{SVG_NS}}}metadata", f"{{{SVG_NS}}}style"):
                parent.remove(child)
    referenced = set()
    for el in root.iter():
        for name, value in el.attrib.items():
            referenced.update(_URL_REF.findall(value))
            if name in (href, "href") and value.startswith("#"):
                referenced.add(value[1:])
    for el in root.iter():
        _presentation_attributes(el)
        ident = el.attrib.pop("id", None)
        if ident in referenced:
            el.set("id", prefix + ident)
        for name, value in list(el.attrib.items()):
            if name in (href, "href") and value.startswith("#"):
                el.set(name, "#" + prefix + value[1:])
            elif "url(#" in value:
                el.set(name, _URL_REF.sub(lambda m: f"url(#{prefix}{m.group(1)})", value))
    for name in ("width", "height"):
        root.attrib.pop(name, None)
    root.set("stroke-linejoin", "round")
    root.set("stroke-linecap", "butt")
    root.set("role", "img")
    root.set("class", "chart")
    root.set("aria-labelledby", f"{prefix}title {prefix}desc")
    title_el = ET.Element(f"{{{SVG_NS}}}title", id=f"{prefix}title")
    title_el.text = title
    desc_el = ET.Element(f"{{{SVG_NS}}}desc", id=f"{prefix}desc")
    desc_el.text = desc
    root.insert(0, desc_el)
    root.insert(0, title_el)
    return ET.tostring(root, encoding="unicode")


def render_svg(
    draw: Callable[..., Axes],
    data: pd.DataFrame,
    *,
    title: str,
    desc: str,
    prefix: str = "chart-",
    size: tuple[float, float] = (7.0, 3.6),
    **options,
) -> str:
    """Draw ``draw(data, ax=..., **options)`` on a new Figure and return its SVG text.

    The SVG has no fixed size (it takes its container's width, at the figure's
    aspect ratio), no inline style, ids starting with ``prefix``, and ``title`` and
    ``desc`` as its accessible name and description.
    """
    figure = Figure(figsize=size, layout="constrained")
    draw(data, ax=figure.add_subplot(), **options)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _clean_svg(buffer.getvalue(), prefix=prefix, title=title, desc=desc)


#: The worker's chart cache, keyed by the chart, its scope (service, site), its parameters
#: and the data version of the read model: a new response makes new keys, not stale hits.
svg_cache = Lru(256)
